"""Whole-model predictions against the published figures: external checks, never fitted.

Each figure in validation/published_whole_models.yaml that states a band fails this test when
anesim / published leaves the band (docs/whole-models.md §3 says why each band is what it is).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from anesim.chips import load_chip
from anesim.compiler import compile_file
from anesim.compiler.frontends.program_file import declared_params

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("whole_models_bench", REPO / "benchmarks" / "whole_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
FIGURES = BENCH.load_published()
BANDED = [f for f in FIGURES if f.band is not None]


def _predict(program: str, chip: str, params: tuple, cache: dict = {}) -> dict[str, float]:  # noqa: B006 - a memo
    if (program, chip, params) not in cache:
        from anesim.timing import simulate

        config = load_chip(chip)
        target = compile_file(REPO / "programs" / f"{program}.yaml", config, params=dict(params) or None)
        result = simulate(target, config, trace=False)
        cache[program, chip, params] = {"latency_s": result.latency_s, "energy_j": result.energy_j}
    return cache[program, chip, params]


def test_every_figure_names_a_program_and_a_chip() -> None:
    assert len(FIGURES) >= 10
    for f in FIGURES:
        assert (REPO / "programs" / f"{f.program}.yaml").is_file(), f.program
        load_chip(f.chip)
        assert f.quantity in ("latency_s", "energy_j", "speedup") and f.value > 0
        declared = declared_params(REPO / "programs" / f"{f.program}.yaml")
        assert set(f.params) <= set(declared), f"{f.program}: params {sorted(f.params)} not all declared"
        if f.band is not None:
            assert 0 < f.band[0] < 1 < f.band[1], f"{f.program} on {f.chip}: a band must hold 1"


@pytest.mark.parametrize("figure", [pytest.param(f, id=f"{f.program}-{f.chip}-{f.quantity}",
                                                 marks=[] if f.test else [pytest.mark.slow])
                                    for f in BANDED])
def test_prediction_stays_in_the_stated_band(figure) -> None:
    ratio, shown = BENCH.published_ratio(figure, _predict)
    assert math.isfinite(ratio)
    lo, hi = figure.band
    assert lo <= ratio <= hi, (f"{figure.program} on {figure.chip}: anesim {shown} against the published "
                               f"{figure.shown} ({figure.source}) is {ratio:.3g}x, outside {lo:g}-{hi:g}")
