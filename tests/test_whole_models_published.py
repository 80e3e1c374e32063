"""Whole-model predictions against the published figures: external checks, never fitted.

Each figure in validation/published_whole_models.yaml that states a band fails this test when
anesim / published leaves the band (docs/whole-models.md §3 says why each band is what it is).
``anesim validate --whole-models`` prints the same comparison.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from anesim.chips import load_chip
from anesim.cli import main
from anesim.compiler.frontends.program_file import declared_params
from anesim.errors import ProgramError
from anesim.validate.whole_models import load_published, program_predictor, published_ratio

REPO = Path(__file__).resolve().parents[1]
FIGURES = load_published()
BANDED = [f for f in FIGURES if f.band is not None]
PREDICT = program_predictor(REPO / "programs")


def test_every_figure_names_a_program_and_a_chip() -> None:
    assert len(FIGURES) >= 10
    for f in FIGURES:
        assert (REPO / "programs" / f"{f.program}.yaml").is_file(), f.program
        load_chip(f.chip)
        declared = declared_params(REPO / "programs" / f"{f.program}.yaml")
        assert set(f.params) <= set(declared), f"{f.program}: params {sorted(f.params)} not all declared"


@pytest.mark.parametrize("figure", [pytest.param(f, id=f"{f.program}-{f.chip}-{f.quantity}",
                                                 marks=[] if f.test else [pytest.mark.slow])
                                    for f in BANDED])
def test_prediction_stays_in_the_stated_band(figure) -> None:
    ratio, _, shown = published_ratio(figure, PREDICT)
    assert math.isfinite(ratio)
    lo, hi = figure.band
    assert lo <= ratio <= hi, (f"{figure.program} on {figure.chip}: anesim {shown} against the published "
                               f"{figure.shown} ({figure.source}) is {ratio:.3g}x, outside {lo:g}-{hi:g}")


def test_the_cli_prints_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    """``anesim validate --whole-models --chip C``: the figures of one chip, as a table or JSON."""
    assert main(["validate", "--whole-models", "--chip", "a17-pro", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["figures"]
    assert row["program"] == "resnet50" and row["published"] == pytest.approx(1.38e-3)
    assert row["ratio"] == pytest.approx(row["anesim"] / row["published"])
    assert row["in_band"] is True and row["band"] == [0.4, 2.5]
    assert main(["validate", "--whole-models", "--chip", "a17-pro"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "1.38 ms fp16" in out and "reference/chips-and-ops.md:186" in out


@pytest.mark.parametrize("args, message", [
    (["--chip", "m3"], "no whole-model figure for chip 'm3'"),
    (["--measurements", "x.csv"], "--whole-models compares the published whole-model figures"),
    (["--programs", "/nonexistent"], "no program 'resnet50' for a whole-model figure"),
    (["--summary"], "--whole-models compares the published whole-model figures"),
    (["--rules", "mine.yaml"], "--whole-models compares the published whole-model figures"),
])
def test_cli_refusals(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    chip = [] if "--chip" in args else ["--chip", "a17-pro"]
    assert main(["validate", "--whole-models", *chip, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_damaged_figures_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "figures.yaml"
    for text, problem in [("figures: 3", "no list of figures"),
                          ("figures: [{program: a, chip: m1, quantity: latency_s}]", "a figure needs"),
                          ("figures: [{program: a, chip: m1, quantity: latency_s, value: 1}]", "and source"),
                          ("figures: [{program: a, chip: m1, quantity: speed, value: 1, source: s}]", "a quantity of"),
                          ("figures: [{program: a, chip: m1, quantity: latency_s, value: x, source: s}]", "must be numbers"),
                          ("figures: [{program: a, chip: m1, quantity: latency_s, value: 1, band: [2, 3], source: s}]",
                           "a band holding 1"),
                          ("figures: [{program: a, chip: m1, quantity: latency_s, value: 1, runs: 0, source: s}]",
                           "runs must be a whole number"),
                          ("figures: [{program: a, chip: m1, quantity: speedup, value: 1, source: s}]",
                           "a speedup needs the baseline")]:
        path.write_text(text)
        with pytest.raises(ProgramError, match=problem):
            load_published(path)
