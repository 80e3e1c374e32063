"""The register maps are consistent data, and the H13 map is exactly Apple's printer layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anesim import hwx
from anesim.hwx.fuzzing import eiln_kernels
from anesim.hwx.generations import GENERATIONS, by_name, by_subtype
from anesim.hwx.regmaps import MAP_NAMES, load_map

# Start of each block's data in the canonical 0x274-byte H13 task, and the block's register base.
H13_TD_BLOCKS = {"KernelDMASrc": (0x2C, 0x1F800), "Common": (0x128, 0x0), "TileDMASrc": (0x16C, 0x13800),
                 "L2": (0x1E0, 0x4800), "PE": (0x22C, 0x8800), "NE": (0x240, 0xC800), "TileDMADst": (0x258, 0x17800)}


@pytest.mark.parametrize("name", MAP_NAMES)
def test_map_is_consistent(name: str) -> None:
    regmap = load_map(name)
    assert regmap.registers
    for reg in [*regmap.header, *regmap.registers.values()]:
        used = 0
        for f in reg.fields:
            assert 0 <= f.lo and f.width >= 1 and f.lo + f.width <= 32, (reg.name, f.name)
            assert not used & f.mask, f"{reg.name}.{f.name} overlaps another field"
            used |= f.mask
            assert f.conf in ("", "V", "C", "S", "D")
        assert reg.conf in ("", "V", "C", "S", "D")
    for reg in regmap.registers.values():
        block = regmap.block_of(reg.addr)
        assert block is not None and block.name == reg.block, reg.name
    for meaning, (reg_name, field) in regmap.semantics.items():
        reg = regmap.by_name(reg_name)
        assert reg is not None, meaning
        assert field == "" or field in {f.name for f in reg.fields}, meaning


def test_every_generation_has_a_map() -> None:
    for gen in GENERATIONS:
        assert load_map(gen.regmap).name == gen.regmap
        assert by_subtype(gen.cpusubtype) is gen
        assert by_name(gen.name.lower()) is gen
    assert by_name("M1").name == "H13"


def test_h13_map_matches_aneregs_json(shared_dir: Path) -> None:
    regmap = load_map("h13")
    header = {reg.name: reg for reg in regmap.header}
    entries = json.loads((shared_dir / "hwx" / "tinygrad" / "aneregs.json").read_text())
    assert len(entries) == 258
    for name, (offset, bit, width) in entries:
        lo = (offset & 3) * 8 + bit
        parts = name.split(".")
        if parts[0] == "aneTD":
            reg, field = header[parts[1]], parts[2]
            assert reg.addr == offset & ~3, name
        else:
            block, reg_name, field = parts[1], parts[2], parts[3]
            td_start, base = H13_TD_BLOCKS[block]
            reg = regmap.lookup(base + (offset & ~3) - td_start)
            assert reg is not None and reg.name == f"{block}.{reg_name}", name
        fdef = {f.name: f for f in reg.fields}[field]
        assert (fdef.lo, fdef.width) == (lo, width), name


def test_samples_write_only_mapped_registers(shared_dir: Path) -> None:
    """Every register any public sample writes has a name in its generation's map."""
    decoded = [hwx.load_hwx(p) for p in sorted((shared_dir / "hwx").glob("*/*.hwx*"))]
    decoded += [hwx.decode_bytes(data, file=rel, raw_buffer=True) for rel, data in eiln_kernels(shared_dir)]
    for d in decoded:
        unnamed = {a for t in d.stream.tasks for a, _ in t.writes if d.regmap.lookup(a) is None}
        assert not unnamed, (d.file, sorted(map(hex, unnamed)))
