"""Helpers shared by the JSON form of decoded programs: opaque blobs, numbers, fixed names.

The JSON form is what ``anesim disasm --json`` prints and ``anesim asm`` reads back. Numbers
that are addresses or raw words are written as hex strings for people; the reader accepts
either hex strings or plain integers. Bytes the decoder does not interpret travel as *blobs*:
base64 of the bytes with trailing zeros cut off, plus the full size, so a 512 KiB all-zero
weight section costs a few bytes of JSON.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from anesim.errors import ProgramError

MAX_BLOB_BYTES = 1 << 30  # no blob of a real program comes near this; larger sizes are refused unallocated
MAX_STREAM_BYTES = 1 << 28  # command streams are kilobytes; gaps inside them are bounded by this


def blob(data: bytes) -> dict[str, Any]:
    """The JSON form of opaque bytes: size plus base64 of everything up to the last non-zero."""
    trimmed = data.rstrip(b"\0")
    out: dict[str, Any] = {"size": len(data)}
    if trimmed:
        out["base64"] = base64.b64encode(trimmed).decode("ascii")
    return out


def hexnum(value: int) -> str:
    """An integer as a 0x-prefixed hex string."""
    return f"{value:#x}"


class Doc:
    """A cursor into a JSON document that reports bad input with the key path where it sits."""

    def __init__(self, value: Any, path: str = "$", file: str | None = None) -> None:
        self.value = value
        self.path = path
        self.file = file

    def error(self, problem: str, *, expected: object = None, found: object = None) -> ProgramError:
        """A ProgramError at this key path."""
        return ProgramError(problem, file=self.file, where=self.path, expected=expected, found=found)

    def _child(self, value: Any, suffix: str) -> Doc:
        return Doc(value, self.path + suffix, self.file)

    def has(self, key: str) -> bool:
        """Whether this object has ``key``."""
        return isinstance(self.value, dict) and key in self.value

    def get(self, key: str, default: Any = ...) -> Doc:
        """The member ``key`` of this object (required unless a default is given)."""
        if not isinstance(self.value, dict):
            raise self.error("expected an object", found=type(self.value).__name__)
        if key not in self.value:
            if default is ...:
                raise self.error(f"missing key {key!r}")
            return self._child(default, f".{key}")
        return self._child(self.value[key], f".{key}")

    def only(self, *keys: str) -> Doc:
        """This object, refusing any member but ``keys`` (a key nobody reads is never ignored)."""
        if not isinstance(self.value, dict):
            raise self.error("expected an object", found=type(self.value).__name__)
        unknown = [k for k in self.value if k not in keys]
        if unknown:
            raise self._child(None, f".{unknown[0]}").error("unknown key", expected=", ".join(keys))
        return self

    def items(self) -> list[Doc]:
        """The elements of this array."""
        if not isinstance(self.value, list):
            raise self.error("expected an array", found=type(self.value).__name__)
        return [self._child(v, f"[{i}]") for i, v in enumerate(self.value)]

    def mapping(self) -> list[tuple[str, Doc]]:
        """The members of this object as (key, cursor) pairs."""
        if not isinstance(self.value, dict):
            raise self.error("expected an object", found=type(self.value).__name__)
        return [(str(k), self._child(v, f".{k}")) for k, v in self.value.items()]

    def int(self, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
        """This value as an integer in [lo, hi]; hex strings such as '0x1f800' are accepted."""
        v = self.value
        if isinstance(v, bool):
            raise self.error("expected an integer", found=v)
        if isinstance(v, str):
            try:
                v = int(v, 0)
            except ValueError:
                raise self.error("expected an integer or hex string", found=repr(self.value)) from None
        if not isinstance(v, int):
            raise self.error("expected an integer", found=type(v).__name__)
        if not lo <= v <= hi:
            raise self.error("value out of range", expected=f"{lo:#x}..{hi:#x}", found=hex(v))
        return v

    def str(self) -> str:
        """This value as a string."""
        if not isinstance(self.value, str):
            raise self.error("expected a string", found=type(self.value).__name__)
        return self.value

    def blob(self, max_size: int = MAX_BLOB_BYTES) -> bytes:
        """The bytes of a blob written by :func:`blob`; sizes over ``max_size`` are refused before allocating."""
        size = self.get("size").int(0, max(max_size, 0))
        text = self.get("base64", "").value
        if not isinstance(text, str):
            raise self.get("base64").error("expected a base64 string")
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise self.get("base64").error("not valid base64") from None
        if len(data) > size:
            raise self.error("blob holds more bytes than its size", expected=f"<= {size}", found=len(data))
        return data + bytes(size - len(data))


def fixed_name(raw: bytes) -> str | dict[str, str]:
    """A fixed-width, NUL-padded name field: a string when it is clean ASCII, else its hex bytes."""
    text = raw.rstrip(b"\0")
    if b"\0" not in text and all(32 <= c < 127 for c in text):
        return text.decode("ascii")
    return {"hex": raw.hex()}


def name_bytes(doc: Doc, width: int) -> bytes:
    """Encode a name written by :func:`fixed_name` back into ``width`` bytes."""
    if isinstance(doc.value, dict):
        try:
            raw = bytes.fromhex(doc.get("hex").str())
        except ValueError:
            raise doc.error("not a hex string") from None
    else:
        try:
            raw = doc.str().encode("ascii")
        except UnicodeEncodeError:
            raise doc.error("name must be ASCII") from None
    if len(raw) > width:
        raise doc.error("name too long", expected=f"<= {width} bytes", found=len(raw))
    return raw + bytes(width - len(raw))
