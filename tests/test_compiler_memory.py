"""The memory planner's pool residency: which intermediates stay on chip when not all of them fit."""

from __future__ import annotations

from anesim.compiler.lowering.memory import Access, plan_memory
from anesim.compiler.lowering.views import Buffer


def test_a_long_lived_tensor_that_saves_little_leaves_the_pool_to_short_lived_ones() -> None:
    """A block's input L (3 KiB, read again at the block's end) and a chain of 2 KiB tiles in a
    4 KiB pool: placed in order of first use, L took the pool for the whole block and every tile
    went to DRAM (four tiles' traffic to save one tensor's); L now goes to DRAM and the tiles,
    two live at a time, stay on chip."""
    rows = {"I": 8, "L": 48, "S1": 32, "S2": 32, "S3": 32, "S4": 32, "O": 8}  # 64 bytes a row
    roles = {"I": "input", "O": "output"}
    bufs = {name: Buffer(i, name, roles.get(name, "intermediate"), 1, c, 1, 32)  # type: ignore[arg-type]
            for i, (name, c) in enumerate(rows.items())}
    view = {name: b.view() for name, b in bufs.items()}
    chain = [("I", "L"), ("L", "S1"), ("S1", "S2"), ("S2", "S3"), ("S3", "S4")]
    accesses = [Access((view[src],), view[dst], "ne") for src, dst in chain]
    accesses.append(Access((view["S4"], view["L"]), view["O"], "ne"))
    placed, _ = plan_memory(list(bufs.values()), accesses, 4096, 1 << 20, ["O"], ["I"])
    where = {name: placed[b.id].space for name, b in bufs.items()}
    assert where == {"I": "dram", "L": "dram", "S1": "pool", "S2": "pool", "S3": "pool", "S4": "pool", "O": "dram"}
    # with room for all of them, L stays too
    placed, _ = plan_memory(list(bufs.values()), accesses, 8192, 1 << 20, ["O"], ["I"])
    assert {placed[bufs[n].id].space for n in ("L", "S1", "S2", "S3", "S4")} == {"pool"}
