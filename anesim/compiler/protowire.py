"""A minimal protobuf wire-format reader (no schema compiler, no protobuf package).

A message is decoded into its fields: field number -> list of values in order, each an int
(varint), bytes (length-delimited) or raw 4/8 bytes (fixed). The caller applies the schema.
Every malformed byte raises :class:`ProgramError` naming the file and offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from anesim.errors import ProgramError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
MAX_DEPTH = 64


class Message:
    """The fields of one decoded message."""

    def __init__(self, data: bytes, file: str | None = None, base: int = 0) -> None:
        self.file = file
        self.base = base
        self.fields: dict[int, list[int | bytes]] = {}
        pos = 0
        end = len(data)
        while pos < end:
            key, pos = _varint(data, pos, file, base)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise ProgramError("malformed protobuf: field number 0", file=file, where=f"byte {base + pos:#x}")
            value: int | bytes
            if wire == VARINT:
                value, pos = _varint(data, pos, file, base)
            elif wire == LENGTH:
                size, pos = _varint(data, pos, file, base)
                if pos + size > end:
                    raise ProgramError("malformed protobuf: field runs past the end", file=file,
                                       where=f"byte {base + pos:#x}", expected=f"{size} bytes",
                                       found=f"{end - pos}")
                value = data[pos:pos + size]
                pos += size
            elif wire == FIXED64:
                value, pos = _fixed(data, pos, 8, file, base)
            elif wire == FIXED32:
                value, pos = _fixed(data, pos, 4, file, base)
            else:
                raise ProgramError("malformed protobuf: unknown wire type", file=file,
                                   where=f"byte {base + pos:#x}", found=wire)
            self.fields.setdefault(number, []).append(value)

    def all(self, number: int) -> list[int | bytes]:
        """Every value of a field (repeated fields), in order."""
        return self.fields.get(number, [])

    def get(self, number: int) -> int | bytes | None:
        """The last value of a field (proto3 semantics), or None."""
        values = self.fields.get(number)
        return values[-1] if values else None

    def has(self, number: int) -> bool:
        """Whether the field is present."""
        return number in self.fields

    def text(self, number: int, default: str = "") -> str:
        """A string field."""
        value = self.get(number)
        if value is None:
            return default
        if not isinstance(value, bytes):
            raise ProgramError("malformed protobuf: a string field holds a number", file=self.file)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProgramError("malformed protobuf: a string is not UTF-8", file=self.file) from None

    def int(self, number: int, default: int = 0, signed: bool = True) -> int:
        """An integer (varint) field; signed reads two's complement."""
        value = self.get(number)
        if value is None:
            return default
        if isinstance(value, bytes):
            raise ProgramError("malformed protobuf: a number field holds bytes", file=self.file)
        if signed and value >= 1 << 63:
            value -= 1 << 64
        return value

    def message(self, number: int) -> Message | None:
        """A sub-message field, decoded (None when absent)."""
        value = self.get(number)
        return None if value is None else self._sub(value)

    def messages(self, number: int) -> Iterator[Message]:
        """Every value of a repeated sub-message field, decoded."""
        for value in self.all(number):
            yield self._sub(value)

    def _sub(self, value: int | bytes) -> Message:
        if not isinstance(value, bytes):
            raise ProgramError("malformed protobuf: a message field holds a number", file=self.file)
        return Message(value, self.file, self.base)

    def packed_varints(self, number: int) -> list[int]:
        """A repeated integer field, packed or not."""
        out: list[int] = []
        for value in self.all(number):
            if isinstance(value, int):
                out.append(value)
                continue
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos, self.file, self.base)
                out.append(v)
        return out

    def packed_fixed(self, number: int, fmt: str) -> list[float]:
        """A repeated float ('f') or double ('d') field, packed or not."""
        size = struct.calcsize(fmt)
        out: list[float] = []
        for value in self.all(number):
            if isinstance(value, int) or len(value) % size:
                raise ProgramError("malformed protobuf: bad packed floats", file=self.file)
            out.extend(struct.unpack(f"<{len(value) // size}{fmt}", value))
        return out


def _varint(data: bytes, pos: int, file: str | None, base: int) -> tuple[int, int]:
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(data):
            raise ProgramError("malformed protobuf: truncated varint", file=file, where=f"byte {base + start:#x}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProgramError("malformed protobuf: varint too long", file=file, where=f"byte {base + start:#x}")


def _fixed(data: bytes, pos: int, size: int, file: str | None, base: int) -> tuple[bytes, int]:
    if pos + size > len(data):
        raise ProgramError("malformed protobuf: truncated fixed field", file=file, where=f"byte {base + pos:#x}")
    return data[pos:pos + size], pos + size
