"""The op conformance suite: every understood engine mode, generated, decoded, run and measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anesim.hwx import tables, to_program
from anesim.opsuite.cases import all_cases
from anesim.opsuite.compositions import all_compositions
from anesim.opsuite.report import ComposedResult, Measured, errors_ulp, render, run_all, run_compositions

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ops.md"
CASES = {c.name: c for c in all_cases()}
COMPOSITIONS = {c.name: c for c in all_compositions()}


@pytest.fixture(scope="module")
def measured() -> dict[str, Measured]:
    return {r.case.name: r for r in run_all()}


@pytest.fixture(scope="module")
def composed() -> dict[str, ComposedResult]:
    return {r.composition.name: r for r in run_compositions()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_within_its_bound(measured: dict[str, Measured], name: str) -> None:
    r = measured[name]
    assert r.warnings == ()  # every mode the suite uses is understood: no approximation
    assert r.max_ulp <= r.case.bound_ulp
    if r.case.bit_exact:
        assert r.bit_exact


@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_composition_within_its_bound(composed: dict[str, ComposedResult], name: str) -> None:
    r = composed[name]
    assert r.warnings == () and r.tasks >= 3
    assert r.max_ulp <= r.composition.bound_ulp


def test_docs_ops_is_current(measured: dict[str, Measured], composed: dict[str, ComposedResult]) -> None:
    text = render(list(measured.values()), list(composed.values()))
    assert DOCS.read_text(encoding="utf-8") == text, "docs/ops.md is stale: run python -m anesim.opsuite docs/ops.md"


def _used() -> dict[str, set]:
    """Every mode value the generated programs set, read from their registers and table words."""
    used: dict[str, set] = {k: set() for k in ("arg", "fold", "tails_only", "plain", "ne_op", "nl", "pe", "fmt")}
    for case in all_cases():
        built = case.build()
        for t in built.tasks:
            f = t.fields
            if t.header.get("ENE"):
                used["ne_op"].add(f.get("NE.MACCfg.OpMode", 0))
                used["nl"].add(f.get("NE.MACCfg.NonlinearMode", 0))
            else:
                used["pe"].add(f.get("PE.Cfg", 0) & ~to_program.PE_RELU_BIT)
                if f.get("PE.Cfg", 0) & to_program.PE_RELU_BIT:
                    used["pe"].add("relu")
        used["fmt"].update(b.dtype for b in built.buffers)
        if built.data and any(t.fields.get("NE.MACCfg.NonlinearMode") == 2 for t in built.tasks):
            words = np.frombuffer(built.data[:128], "<u2")
            if not words[37:43].any():
                used["plain"].add(True)
            elif words[41] & tables.BYPASS_BIT:
                used["tails_only"].add(True)
            else:
                used["arg"].add(int(words[42]) & 0x0F)
            used["fold"].add(int(words[42]) & 0xF0)
    return used


def test_every_understood_mode_has_a_case() -> None:
    used = _used()
    assert set(tables.MODES) - {3, 4} <= used["arg"]  # int and frac (3, 4) carry no samples: below
    assert {c.name for c in all_cases() if "(int)" in c.mode or "(frac)" in c.mode} == {"trunc", "frac"}
    assert set(tables.FOLDS) <= used["fold"]
    assert used["tails_only"] and used["plain"]
    assert set(to_program.NE_OPS) <= used["ne_op"]
    assert set(to_program.ACTIVATIONS) <= used["nl"]
    binary = {0x80000 | (op << 2) for op in to_program.PE_BINARY}
    # the reduce_sum reading of 0x0 and the row-broadcast 0xC0000 are exercised by the compositions
    assert (binary | set(to_program.PLANAR_WORDS)) - {0xC0000} <= used["pe"] and "relu" in used["pe"]
    assert set(to_program.FMT_DTYPE.values()) <= used["fmt"]


def test_ulp_measure() -> None:
    one = np.float16(1.0)
    assert errors_ulp(np.array([one]), np.array([1.0]), 2.0 ** -14) == (0.0, True)
    assert errors_ulp(np.array([np.float16(1.0009765625)]), np.array([1.0]), 2.0 ** -14)[0] == 1.0
    assert errors_ulp(np.array([np.float16(np.inf)]), np.array([1.0]), 2.0 ** -14)[0] == np.inf
    assert errors_ulp(np.array([np.float16(0)]), np.array([np.inf]), 2.0 ** -14) == (np.inf, False)
    # below the floor the error is measured in the floor's ulps
    assert errors_ulp(np.array([np.float16(2.0 ** -20)]), np.array([0.0]), 2.0 ** -4)[0] == 2.0 ** -20 / 2.0 ** -14
