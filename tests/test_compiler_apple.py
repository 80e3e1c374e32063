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


def test_h13_command_buffer_round_trips_through_the_decoder(tmp_path: Path) -> None:
    import json

    import numpy as np

    import anesim
    from anesim.compiler import Builder, compile_graph
    from anesim.compiler.backend.h13 import program_fields
    from anesim.compiler.backend.h13_emit import encode_raw

    b = Builder("round_trip")
    x = b.input("x", (1, 16, 8, 8))
    y = b.conv2d(x, 32, kernel=3, padding=1, activation="relu")
    z = b.activation("sigmoid", b.add(b.conv2d(y, 8, kernel=1), b.conv2d(x, 8, kernel=1)))
    b.output(b.concat([z, b.conv2d(x, 5, kernel=1)], axis=1))
    result = compile_graph(b.build(), "m1", chain=False)
    data, sidecar = encode_raw(result)
    (tmp_path / "p.bin").write_bytes(data)
    (tmp_path / "p.sidecar.json").write_text(json.dumps(sidecar))
    decoded = anesim.load(tmp_path / "p.bin", sidecar=tmp_path / "p.sidecar.json", raw_buffer=True)
    assert len(decoded.tasks) == len(result.program.tasks) and not decoded.notes
    ours = program_fields(result.program, [i.kernel_offset for i in result.task_info])
    for task, mine in zip(decoded.tasks, ours):
        diffs = {k for k, v in task.fields.items() if v != mine.get(k, 0) and "CoeffBaseAddr" not in k}
        assert not diffs, diffs
    execute = pytest.importorskip("anesim.functional.execute").execute
    x0 = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float16)
    a = execute(decoded, {"x": x0})
    c = execute(result.program, {"x": x0})
    assert all(np.array_equal(a[k], c[k]) for k in c)


def test_command_buffer_refuses_what_h13_cannot_express(tmp_path: Path) -> None:
    from anesim.compiler import Builder, compile_graph
    from anesim.compiler.backend.h13_emit import encode_raw
    from anesim.errors import UnsupportedError

    b = Builder("biased")
    b.output(b.conv2d(b.input("x", (1, 4, 4, 4)), 4, kernel=1, bias="normal"))
    with pytest.raises(UnsupportedError, match="bias"):
        encode_raw(compile_graph(b.build(), "m1", chain=False))
    with pytest.raises(UnsupportedError, match="H13 only"):
        encode_raw(compile_graph(b.build(), "m5"))
