"""Bounds-checked little-endian reads over a byte buffer.

Every read names the file and byte offset in the ``FormatError`` it raises, so no decoder ever
lets an ``IndexError`` or ``struct.error`` escape, and every count is checked against the bytes
that remain before anything is allocated for it.
"""

from __future__ import annotations

import struct

from anesim.errors import FormatError

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Reader:
    """A read-only view of a file's bytes that fails with FormatError instead of IndexError."""

    def __init__(self, data: bytes, file: str | None = None) -> None:
        self.data = bytes(data)
        self.file = file
        self.size = len(self.data)

    def error(self, problem: str, offset: int, *, expected: object = None, found: object = None) -> FormatError:
        """A FormatError for this file at ``offset``."""
        return FormatError(problem, file=self.file, where=f"byte {offset:#x}", expected=expected, found=found)

    def need(self, offset: int, length: int, what: str) -> None:
        """Fail unless ``length`` bytes starting at ``offset`` lie inside the file."""
        if offset < 0 or length < 0 or offset + length > self.size:
            have = max(self.size - offset, 0) if offset >= 0 else 0
            raise self.error(
                f"{what} runs past the end of the file",
                offset,
                expected=f"{length} bytes",
                found=f"{have} bytes left (file is {self.size} bytes)",
            )

    def u32(self, offset: int, what: str = "word") -> int:
        """The little-endian u32 at ``offset``."""
        self.need(offset, 4, what)
        return _U32.unpack_from(self.data, offset)[0]

    def u64(self, offset: int, what: str = "double word") -> int:
        """The little-endian u64 at ``offset``."""
        self.need(offset, 8, what)
        return _U64.unpack_from(self.data, offset)[0]

    def words(self, offset: int, count: int, what: str = "words") -> list[int]:
        """``count`` u32 values from ``offset``; the count is checked before anything is built."""
        if count < 0:
            raise self.error(f"negative count of {what}", offset, found=count)
        self.need(offset, 4 * count, what)
        return list(struct.unpack_from(f"<{count}I", self.data, offset))

    def take(self, offset: int, length: int, what: str = "bytes") -> bytes:
        """``length`` raw bytes from ``offset``."""
        self.need(offset, length, what)
        return self.data[offset:offset + length]

    def cstring(self, offset: int, limit: int, what: str = "string") -> bytes:
        """The NUL-terminated bytes at ``offset``, searching no further than ``limit``."""
        self.need(offset, 0, what)
        end = self.data.find(b"\0", offset, min(limit, self.size))
        return self.data[offset:(min(limit, self.size) if end < 0 else end)]


def pack_u32(values: list[int]) -> bytes:
    """Little-endian u32 words."""
    return struct.pack(f"<{len(values)}I", *values)


def u32_from(data: bytes, offset: int) -> int:
    """The u32 at ``offset`` of an in-memory buffer the caller has already bounds-checked."""
    return _U32.unpack_from(data, offset)[0]
