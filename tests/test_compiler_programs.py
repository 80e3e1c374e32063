"""Every shipped program compiles for every chip, times on every chip, and computes the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anesim.chips import all_chips, load_chip
from anesim.cli import main
from anesim.compiler import compile_file, load_graph
from anesim.compiler.reference import fp16_inputs, run_graph, run_program

REPO = Path(__file__).resolve().parents[1]
# Task counts on the M1: a change here is a change of lowering, worth a look.
EXPECTED_TASKS_M1 = {
    "conv3x3": 1, "gemm_512": 1, "gemm_2048": 1, "elementwise_stream": 4, "conv1x1_chain": 8,
    "resnet_basic_block": 3, "resnet50": 72, "transformer_block": 115, "vit_b16": 1233,
}
# The kernels, blocks and reference networks above; the whole-model programs are compiled and
# timed on the M1 and the M5 Pro by tests/test_whole_models.py.
PROGRAMS = sorted(p for p in (REPO / "programs").glob("*.yaml") if p.stem in EXPECTED_TASKS_M1)
SMALL = ["conv3x3", "gemm_512", "elementwise_stream", "conv1x1_chain", "resnet_basic_block",
         "transformer_block"]


def test_every_example_is_shipped() -> None:
    assert {p.stem for p in PROGRAMS} >= set(EXPECTED_TASKS_M1)


HEAVY = {"vit_b16"}  # 1233 tasks on the M1 (its attention head by head): timed on one chip per generation here, on every chip under -m slow
ONE_PER_GENERATION = {c.name for c in {c.identity.generation: c for c in all_chips()}.values()}


def _compile_and_time(chip: str, programs: list[Path]) -> None:
    from anesim.timing import simulate

    config = load_chip(chip)
    for path in programs:
        result = compile_file(path, config)
        program = result.program
        assert program.tasks, path.name
        assert result.dispatches == 1 and not result.host_ops, f"{path.name} splits on {chip}"
        assert all(1 <= t.cores_used <= config.ne.cores.value for t in program.tasks)
        if path.stem in HEAVY and chip not in ONE_PER_GENERATION:
            continue
        timing = simulate(program, config)
        assert timing.latency_s > 0, f"{path.name} on {chip}"


@pytest.mark.parametrize("chip", [c.name for c in all_chips()])
def test_every_program_compiles_and_times_on_every_chip(chip: str) -> None:
    _compile_and_time(chip, PROGRAMS)


@pytest.mark.slow
@pytest.mark.parametrize("chip", [c.name for c in all_chips()])
def test_heavy_programs_time_on_every_chip(chip: str) -> None:
    from anesim.timing import simulate

    config = load_chip(chip)
    for path in PROGRAMS:
        if path.stem in HEAVY:
            assert simulate(compile_file(path, config).program, config).latency_s > 0


@pytest.mark.parametrize("name, count", sorted(EXPECTED_TASKS_M1.items()))
def test_task_counts_on_m1(name: str, count: int) -> None:
    assert len(compile_file(REPO / "programs" / f"{name}.yaml", "m1").program.tasks) == count


@pytest.mark.parametrize("name", SMALL)
def test_small_programs_compute_the_model(name: str) -> None:
    graph = load_graph(REPO / "programs" / f"{name}.yaml")
    result = compile_file(REPO / "programs" / f"{name}.yaml", "m1")
    inputs = fp16_inputs(graph, 5)
    ref = run_graph(graph, inputs)
    got = result.execute(inputs, run_program)
    for key, want in ref.items():
        err = float(np.max(np.abs(want - got[key]))) / (float(np.max(np.abs(want))) + 1e-6)
        assert err < 5e-3, f"{name}/{key}: relative error {err:.3g}"


@pytest.mark.parametrize("name", SMALL)
def test_functional_engine_runs_compiled_programs(name: str) -> None:
    from anesim.functional import execute

    chip = load_chip("m1")
    graph = load_graph(REPO / "programs" / f"{name}.yaml")
    result = compile_file(REPO / "programs" / f"{name}.yaml", chip)
    inputs = fp16_inputs(graph, 5)
    ref = run_graph(graph, inputs)
    got = result.execute(inputs, lambda prog, feeds: execute(prog, feeds, chip))
    for key, want in ref.items():
        out = np.asarray(got[key], np.float32)
        err = float(np.max(np.abs(want - out))) / (float(np.max(np.abs(want))) + 1e-6)
        assert err < 1e-2, f"{name}/{key}: relative error {err:.3g}"


def test_cli_compile_reports_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "resnet50.json"
    assert main(["compile", str(REPO / "programs" / "resnet50.yaml"), "--chip", "m1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "72 tasks in 1 segment(s)" in text and "pool-resident" in text and "passes" in text
    data = json.loads(out.read_text())
    assert data["format"].startswith("anesim-program-model") and len(data["tasks"]) == 72
    assert main(["compile", str(REPO / "programs" / "conv3x3.yaml"), "--chip", "m5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tasks"] == 1 and summary["generation"] == "H17"
