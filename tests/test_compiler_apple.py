"""Compiled H13 tasks against Apple's: the tinygrad samples whose networks are published."""

from __future__ import annotations

from pathlib import Path

import pytest

from anesim.compiler import compile_file
from anesim.compiler.apple import SAMPLES, compare


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_fields_match_apple_apart_from_known_differences(shared_dir: Path, name: str) -> None:
    result, _ = compare(shared_dir, name)
    assert result.our_tasks == result.apple_tasks
    assert result.fields_compared >= 300 * result.apple_tasks
    assert not result.unexplained, [f"task {d.task} {d.field}: {d.apple} != {d.ours}" for d in result.unexplained]
    assert len(result.diffs) <= 4  # L2 bank padding (gemm, sum) and the concat alias flags


def test_geometry_matches_the_h13_samples(shared_dir: Path) -> None:
    _, conv = compare(shared_dir, "conv")
    _, gemm = compare(shared_dir, "gemm")
    task = conv.program.tasks[0]
    assert (task.cores_used, task.ocg_size) == (4, 1)  # ActiveNE 2, OCGSize 0
    task = gemm.program.tasks[0]
    assert (task.cores_used, task.ocg_size) == (16, 32)  # ActiveNE 4, OCGSize 5
    _, concat = compare(shared_dir, "concat")
    second = concat.program.tasks[1]
    assert second.result.offset_bytes == 0x100000  # written straight into the output's second part


def test_neuron_netplist_compiles(shared_dir: Path) -> None:
    result = compile_file(shared_dir / "hwx" / "tinygrad" / "plists_neuron.plist", "m1")
    assert result.dispatches == 1
    task = result.program.tasks[0]
    assert task.ne.activation == "lut" and task.ne.table.reduction == "exp2"
