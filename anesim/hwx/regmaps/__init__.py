"""Register maps per generation, loaded from the JSON data files beside this module.

Each map names the task-descriptor header words and the register blocks of one generation
family: block base address, and per register its offset, name, bit fields and a confidence mark
(V verified, C consistent, S single source, D derived from samples). A register may repeat
(``count`` copies ``stride`` bytes apart, named ``Name[i]``). A field is ``[name, lo, width]``
optionally followed by ``{"meaning", "values", "conf"}``. Registers absent from a map are still
decoded and shown as raw values; nothing is dropped. ``semantics`` names, per map, the register
and field that hold each quantity the program-model builder needs (input width, source row
stride, ...), so that builder is one piece of code for every generation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class FieldDef:
    """One bit field of a register word."""

    name: str
    lo: int
    width: int
    meaning: str = ""
    values: tuple[tuple[int, str], ...] = ()
    conf: str = ""

    @property
    def mask(self) -> int:
        """The field's bits, in place."""
        return ((1 << self.width) - 1) << self.lo

    def get(self, word: int) -> int:
        """This field's value in ``word``."""
        return (word >> self.lo) & ((1 << self.width) - 1)

    def label(self, value: int) -> str:
        """The enum name for ``value`` if the map has one, else ''."""
        return dict(self.values).get(value, "")


@dataclass(frozen=True)
class RegDef:
    """One 32-bit register (or header word) and its fields."""

    name: str  # e.g. "Common.InDim" or "Header[8]"
    addr: int  # byte address (header words: word index * 4)
    fields: tuple[FieldDef, ...] = ()
    meaning: str = ""
    conf: str = ""
    block: str = ""

    @property
    def known_mask(self) -> int:
        """Bits covered by named fields."""
        m = 0
        for f in self.fields:
            m |= f.mask
        return m

    def split(self, word: int) -> tuple[dict[str, int], int]:
        """The field values of ``word`` and the leftover bits no field covers."""
        return {f.name: f.get(word) for f in self.fields}, word & ~self.known_mask & 0xFFFFFFFF


@dataclass(frozen=True)
class Block:
    """A contiguous register block (one engine unit)."""

    name: str
    base: int
    words: int
    meaning: str = ""


@dataclass(frozen=True)
class RegisterMap:
    """Everything a decoder needs to name the words of one generation's task descriptors."""

    name: str
    title: str
    sources: str
    header_words: int
    ext_flag: tuple[int, int]  # (word, bit) that adds the optional extension word
    header: tuple[RegDef, ...]  # by word index, the optional extension word last
    blocks: tuple[Block, ...]
    registers: dict[int, RegDef]
    names: dict[str, RegDef]
    semantics: dict[str, tuple[str, str]]  # meaning (e.g. "cin") -> (register, field; "" = whole word)

    def lookup(self, addr: int) -> RegDef | None:
        """The register at byte address ``addr``, or None if the map does not name it."""
        return self.registers.get(addr)

    def block_of(self, addr: int) -> Block | None:
        """The block whose range holds ``addr``."""
        for b in self.blocks:
            if b.base <= addr < b.base + 4 * b.words:
                return b
        return None

    def by_name(self, name: str) -> RegDef | None:
        """The register called ``name`` (e.g. 'Common.Cin')."""
        return self.names.get(name)


def _field(spec: list[Any]) -> FieldDef:
    extra = spec[3] if len(spec) > 3 else {}
    values = tuple(sorted((int(k), str(v)) for k, v in extra.get("values", {}).items()))
    return FieldDef(str(spec[0]), int(spec[1]), int(spec[2]), extra.get("meaning", ""), values, extra.get("conf", ""))


def _build(data: dict[str, Any]) -> RegisterMap:
    hdr = data["header"]
    header = tuple(
        RegDef(r["name"], 4 * r["word"], tuple(_field(f) for f in r.get("fields", ())), r.get("meaning", ""), r.get("conf", ""), "Header")
        for r in hdr["registers"]
    )
    blocks = []
    registers: dict[int, RegDef] = {}
    for b in data["blocks"]:
        base = int(b["base"], 0)
        blocks.append(Block(b["name"], base, int(b["words"]), b.get("meaning", "")))
        for r in b["registers"]:
            fields = tuple(_field(f) for f in r.get("fields", ()))
            off = int(r["offset"], 0)
            count = int(r.get("count", 0))
            stride = int(r.get("stride", "0x4"), 0)
            for i in range(max(count, 1)):
                name = f"{b['name']}.{r['name']}" + (f"[{i}]" if count else "")
                addr = base + off + i * stride
                if addr in registers:
                    raise ValueError(f"register map {data['name']}: {name} overlaps {registers[addr].name}")
                registers[addr] = RegDef(name, addr, fields, r.get("meaning", ""), r.get("conf", ""), b["name"])
    ext = hdr["ext_flag"]
    return RegisterMap(data["name"], data.get("title", ""), data.get("sources", ""), int(hdr["words"]),
                       (int(ext["word"]), int(ext["bit"])), header, tuple(blocks), registers,
                       {r.name: r for r in registers.values()},
                       {k: (str(v[0]), str(v[1])) for k, v in data.get("semantics", {}).items()})


@lru_cache(maxsize=None)
def load_map(name: str) -> RegisterMap:
    """The register map in ``<name>.json`` (e.g. 'h13', 'v5', 'h14', 'h15', 'h16')."""
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return _build(json.loads(text))


MAP_NAMES = ("v5", "h13", "h14", "h15", "h16")
