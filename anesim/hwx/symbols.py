"""The container's symbol table: buffer symbols, the type catalogue and per-tensor shape stabs.

Every program declares a stabs-like type catalogue (``float16:t5=r1;2;0`` ...) and one stab per
I/O tensor listing, outermost first, each dimension's extent and byte stride, ending in the
element type id, e.g. ``A:t16=ar1;0;1;17=s128n:ar1;0;1;18=s128c:ar1;0;2;19=s64h:ar1;0;3;20=s2w:5``
= A[n=1, c=1, h=2, w=3] of type 5 (float16) with strides 128/128/64/2 bytes (command-stream.md §2.5).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from anesim.hwx.binary import Reader

NLIST = struct.Struct("<IBBHQ")
N_STAB_GSYM = 0x20
N_STAB_LSYM = 0x80

_DIM = re.compile(r"ar\d+;(-?\d+);(-?\d+);\d+=s(\d+)([a-z])")
_TYPE_DEF = re.compile(r"^([A-Za-z_][\w]*):t(\d+)=")
_TAIL_TYPE = re.compile(r":(\d+)$")


@dataclass(frozen=True)
class Symbol:
    """One nlist entry."""

    name: str
    type: int
    sect: int
    desc: int
    value: int


@dataclass(frozen=True)
class TensorStab:
    """A tensor's shape and strides as declared in the symbol table."""

    name: str
    dims: tuple[tuple[str, int, int], ...]  # (axis letter, extent, byte stride), outermost first
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Extents in declaration order (normally N, C, H, W)."""
        return tuple(d[1] for d in self.dims)


def read_symbols(reader: Reader, symoff: int, nsyms: int, stroff: int, strsize: int) -> list[Symbol]:
    """All symbols; counts and offsets are checked against the file before anything is read."""
    reader.need(symoff, 16 * nsyms, f"symbol table of {nsyms} entries")
    reader.need(stroff, strsize, "string table")
    out = []
    for i in range(nsyms):
        strx, typ, sect, desc, value = NLIST.unpack_from(reader.data, symoff + 16 * i)
        if strx >= strsize:
            raise reader.error("symbol name lies outside the string table", symoff + 16 * i,
                               expected=f"< {strsize}", found=strx)
        raw = reader.cstring(stroff + strx, stroff + strsize, "symbol name")
        out.append(Symbol(raw.decode("utf-8", "replace"), typ, sect, desc, value))
    return out


def type_catalogue(symbols: list[Symbol]) -> dict[int, str]:
    """Type id -> type name, from the stabs type definitions."""
    out = {}
    for s in symbols:
        if s.type == N_STAB_LSYM:
            m = _TYPE_DEF.match(s.name)
            if m:
                out[int(m.group(2))] = m.group(1)
    return out


def tensor_stabs(symbols: list[Symbol]) -> dict[str, TensorStab]:
    """Tensor name -> declared shape, strides and element type."""
    types = type_catalogue(symbols)
    out = {}
    for s in symbols:
        if s.type != N_STAB_GSYM or ":" not in s.name:
            continue
        name = s.name.split(":", 1)[0]
        dims = tuple((m.group(4), int(m.group(2)), int(m.group(3))) for m in _DIM.finditer(s.name))
        tail = _TAIL_TYPE.search(s.name)
        dtype = types.get(int(tail.group(1)), f"type{tail.group(1)}") if tail else "unknown"
        if dims:
            out[name] = TensorStab(name, dims, dtype)
    return out
