"""Every kind of input file ends in acceptance or one clean error naming the file, in bounded time and memory.

The fuzzer (anesim.fuzz) damages seed inputs of eight kinds and runs each case in a worker
process under a 2 GiB address-space cap and a time limit. The default suite runs a few cases of
every kind and checks that the harness itself catches each kind of failure; the slow job runs
ten thousand (benchmarks/fuzz_inputs.py runs any number and replays single cases).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from anesim.fuzz import KINDS, available, case_counts, sources
from anesim.fuzz.pool import FAILURES, case_rng, plan, replay, run_cases

REPO = Path(__file__).resolve().parents[1]
SEED = 1234
FULL_CASES = 10_000
FULL_PARTS = 4  # test items the ten thousand cases are split over


@pytest.fixture(scope="module")
def src() -> object:
    return sources(REPO)


def _describe(report: object) -> str:
    failures = "\n".join(f"{f.kind}:{f.index} {f.status}: {f.detail}" for f in report.failures[:10])  # type: ignore[attr-defined]
    return f"seed {report.seed}\n{report.table()}\n{failures}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_can_be_fuzzed_here(kind: str, src: object) -> None:
    reason = available(kind, src)
    if reason:
        pytest.skip(reason)
    assert case_counts(700, [kind], src) == {kind: 700}


@pytest.mark.cost(5)
def test_a_few_cases_of_every_kind(src: object) -> None:
    counts = {k: 8 for k in KINDS if available(k, src) is None}
    report = run_cases(plan(counts), SEED, src=src, workers=2)  # type: ignore[arg-type]
    assert report.cases == sum(counts.values())
    assert not report.failures, _describe(report)
    for kind in counts:  # the damage is varied enough that each kind sees both outcomes
        row = report.counts[kind]
        assert row["refused"] > 0, _describe(report)


def test_the_harness_counts_every_kind_of_failure(src: object) -> None:
    cases = [("selftest-hang", 0), ("selftest-memory", 0), ("selftest-escape", 0), ("selftest-unnamed", 0),
             ("selftest-crash", 0)]
    report = run_cases(cases, SEED, src=src, workers=2, case_seconds=3.0)  # type: ignore[arg-type]
    status = {f.kind: f.status for f in report.failures}
    assert status == {"selftest-hang": "hang", "selftest-memory": "memory", "selftest-escape": "escape",
                      "selftest-unnamed": "unnamed", "selftest-crash": "crash"}
    assert set(status.values()) <= set(FAILURES)


def test_cases_replay_alone(src: object) -> None:
    """A case depends on (seed, kind, index) only: replayed in this process it ends the same way."""
    assert case_rng(5, "npy", 3).random() == case_rng(5, "npy", 3).random()
    assert case_rng(5, "npy", 3).random() != case_rng(5, "npy", 4).random()
    for kind in ("npy", "program", "chip"):
        for index in range(4):
            first, second = replay(kind, index, SEED, src), replay(kind, index, SEED, src)  # type: ignore[arg-type]
            assert first.status == second.status
            assert first.detail.split(":")[0] == second.detail.split(":")[0]


@pytest.mark.slow
@pytest.mark.cost(30)
@pytest.mark.parametrize("part", range(FULL_PARTS))
def test_ten_thousand_cases_over_every_kind(src: object, part: int) -> None:
    """The cases of every kind whose index is ``part`` modulo FULL_PARTS: the parts together run
    all ten thousand, and side by side on several test workers."""
    missing = {k: available(k, src) for k in KINDS if available(k, src)}
    if missing:
        pytest.skip(f"not every kind can run here: {missing}")
    counts = case_counts(FULL_CASES, list(KINDS), src)
    assert sum(counts.values()) == FULL_CASES
    cases = [case for case in plan(counts) if case[1] % FULL_PARTS == part]  # (every kind in each part)
    report = run_cases(cases, SEED, src=src, workers=1)  # type: ignore[arg-type]
    print(_describe(report))
    assert report.cases == len(cases) and set(report.counts) == {k for k, n in counts.items() if n > part}
    assert not report.failures, _describe(report)


def test_mutations_leave_the_tables_of_awkward_values_alone() -> None:
    """A case depends on its own seed only, so no mutation may edit the shared tables it draws
    from: one that put a table's dict into a document and then edited inside it changed the
    table, and a later case of another kind escaped where it alone was accepted."""
    import random

    from anesim.fuzz.mutate import AWKWARD_VALUES, mutate_doc
    from anesim.hwx.fuzzing import AWKWARD_JSON, mutate_json

    values, json_values = repr(AWKWARD_VALUES), repr(AWKWARD_JSON)
    rng = random.Random(7)
    doc = {"a": {"b": [1, 2, {"c": 3}]}, "d": "x"}
    for _ in range(3000):
        doc = mutate_doc(doc, rng, edits=4) if rng.random() < 0.9 else {"a": {"b": [1]}, "d": "x"}
        mutate_json({"a": {"b": [1, {"c": 2}]}}, rng)
    assert repr(AWKWARD_VALUES) == values
    assert repr(AWKWARD_JSON) == json_values


def test_the_model_file_seeds_compile_undamaged(tmp_path: Path) -> None:
    """The fuzzer damages working files: every seed it starts from compiles and times as it is
    (a check that refused a seed would leave the fuzzer testing only the first refusal)."""
    import anesim
    from anesim.fuzz.kinds import PROGRAM_SEEDS, onnx_bytes

    paths = []
    for i, text in enumerate(PROGRAM_SEEDS):
        paths.append(tmp_path / f"seed{i}.yaml")
        paths[-1].write_text(text)
    if available("onnx", sources(REPO)) is None:
        for i, data in enumerate(onnx_bytes()):
            paths.append(tmp_path / f"seed{i}.onnx")
            paths[-1].write_bytes(data)
    if available("coreml", sources(REPO)) is None:
        from anesim.fuzz.models import coreml_seed

        paths.append(coreml_seed(tmp_path / "coreml"))
    for path in paths:
        result = anesim.simulate(anesim.compile(path, "m1"), "m1", trace=False)
        assert result.latency_s > 0, path.name
