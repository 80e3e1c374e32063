"""Validation statistics, methods on a stub timer, the report and the YAML edit."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

from anesim.chips import builtin_chip_dir, load_chip
from anesim.compiler.graph.ops import node_macs
from anesim.errors import AnesimError
from anesim.validate.calibrate import calibrate, fitted_params, format_value, set_param, with_values
from anesim.validate.runner import to_json, validate
from anesim.validate.simulate import Timing
from anesim.validate.stats import Point, log_pearson, pearson, signed_error_pct, summarize


def stub_timer(graph, chip):  # type: ignore[no-untyped-def]
    """A roofline stand-in for the compile-and-simulate pipeline: floor + max(compute, I/O)."""
    macs = sum(node_macs(graph, n) for n in graph.nodes)
    io = 2.0 * sum(graph.info(n).elements for n in [*graph.inputs, *graph.outputs])
    t = chip.dispatch_floor_s + max(2 * macs / (0.5 * chip.peak_fp16_flops_per_s),
                                    io / chip.dram.activation_bytes_per_s.value)
    t += len(graph.nodes) * chip.dispatch.per_task_overhead_s.value
    return Timing(t, t, io)


def _pt(err: float, meas: float = 1e-3, q: str = "latency", fam: str = "f") -> Point:
    sim = meas * (1 + err / 100)
    return Point("r", "M1", fam, "single_dispatch", q, meas, sim, meas, sim, err)


def test_signed_error_is_in_latency_space() -> None:
    assert signed_error_pct("latency", 1.0, 1.1) == pytest.approx(10.0)
    # a simulated rate 10 % low is a latency 11.1 % high
    assert signed_error_pct("flop_rate", 1.0, 0.9) == pytest.approx(100 / 9)
    assert signed_error_pct("ratio", 2.0, 1.0) == pytest.approx(-50.0)
    assert math.isinf(signed_error_pct("latency", 1.0, 0.0))


def test_pearson_and_summary() -> None:
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2], [1, 2]) is None
    pts = [_pt(e, m) for e, m in [(5, 1e-4), (-10, 1e-3), (20, 1e-2), (0, 1e-1)]]
    s = summarize(pts, n_excluded=3)
    assert s["n_points"] == 4 and s["n_excluded"] == 3
    assert s["median_abs_pct_error"] == pytest.approx(7.5)
    assert s["mean_abs_pct_error"] == pytest.approx(8.75)
    assert s["max_abs_pct_error"] == pytest.approx(20.0)
    assert log_pearson(pts) == pytest.approx(s["log_pearson_r"], abs=1e-5)
    assert s["log_pearson_r"] > 0.99


@pytest.fixture(scope="module")
def stub_results():  # type: ignore[no-untyped-def]
    return validate("all", timer=stub_timer)


def test_validate_json_has_the_documented_shape(stub_results) -> None:  # type: ignore[no-untyped-def]
    doc = to_json(stub_results)
    assert set(doc) == {"measurements", "coverage", "pooled", "chip_families", "chips"}
    assert set(doc["chips"]) == {"M1", "M1 Max", "M5", "M5 Pro"}
    keys = {"points", "median_abs_error_pct", "mean_abs_error_pct", "max_abs_error_pct", "log_r"}
    cov = doc["coverage"]
    assert cov["rows"] == 668 and cov["used"] + sum(cov["excluded"].values()) == cov["rows"]
    assert set(doc["pooled"]) == keys | {"excluded"} and doc["pooled"]["points"] == cov["used"]
    assert set(doc["chip_families"]) == {"M1 family", "M5 family"}
    for name, fam in doc["chip_families"].items():
        assert set(fam) == keys | {"excluded"}
        chips = [c for c in doc["chips"] if c.split()[0] + " family" == name]
        assert fam["points"] == sum(doc["chips"][c]["points"] for c in chips)
    for chip in doc["chips"].values():
        assert keys | {"excluded", "families", "per_point"} == set(chip)
        assert chip["points"] == len(chip["per_point"]) > 50
        assert all(isinstance(n, int) and n > 0 for n in chip["excluded"].values())
        for fam in chip["families"].values():
            assert set(fam) == keys
        for p in chip["per_point"]:
            assert math.isfinite(p["error_pct"]) and p["abs_error_pct"] == abs(p["error_pct"])
            assert p["measured"] > 0 and p["simulated"] > 0 and p["source"]


@pytest.mark.cost(7)
def test_report_writes_tables_and_plots(stub_results, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from anesim.validate.report import write_report

    chips = {n: load_chip(n) for n in stub_results}
    files = write_report(stub_results, chips, tmp_path)
    for f in files:
        assert f.is_file() and f.stat().st_size > 0
    assert (tmp_path / "roofline-m5-pro.png").is_file()
    assert "| M1 | (all) |" in (tmp_path / "accuracy.md").read_text()


def test_yaml_edit_changes_one_parameter_only(tmp_path: Path) -> None:
    src = builtin_chip_dir() / "generations" / "h13.yaml"
    path = tmp_path / "h13.yaml"
    shutil.copy(src, path)
    before = yaml.safe_load(path.read_text())
    text_before = path.read_text()
    set_param(path, "ne.per_layer_overhead_cycles", 300, "anesim calibrate --chip M1: test")
    after = yaml.safe_load(path.read_text())
    assert after["ne"]["per_layer_overhead_cycles"]["value"] == 300
    assert after["ne"]["per_layer_overhead_cycles"]["source"] == "anesim calibrate --chip M1: test"
    after["ne"]["per_layer_overhead_cycles"] = before["ne"]["per_layer_overhead_cycles"]
    assert after == before
    # every comment survives, and every line outside the edited parameter is byte-identical
    text_after = path.read_text()
    comments = [line for line in text_before.splitlines() if line.lstrip().startswith("#")]
    assert comments and comments == [line for line in text_after.splitlines() if line.lstrip().startswith("#")]
    block = _param_block(text_before, "per_layer_overhead_cycles")
    outside = [line for i, line in enumerate(text_before.splitlines()) if i not in block]
    after_block = _param_block(text_after, "per_layer_overhead_cycles")
    assert outside == [line for i, line in enumerate(text_after.splitlines()) if i not in after_block]
    assert "    value: 300" in text_after.splitlines()
    assert format_value(3e-7) == "3.0e-7" and format_value(2.5e-7) == "2.5e-7" and format_value(7) == "7"


def _param_block(text: str, key: str) -> set[int]:
    """Line numbers of one parameter's mapping (its key line and the deeper-indented lines below)."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith(key + ":"))
    indent = len(lines[head]) - len(lines[head].lstrip())
    out = {head}
    for i in range(head + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#") and len(lines[i]) - len(lines[i].lstrip()) <= indent:
            break
        out.add(i)
    return out


def test_yaml_edit_writes_floats_short_and_keeps_inline_comments(tmp_path: Path) -> None:
    path = tmp_path / "chip.yaml"
    path.write_text("# top comment\nne:\n  clock_hz:  # the clock\n    value: 1.0e+9  # nominal\n"
                    "    provenance: vendor\n    source: >-\n      a folded\n      source\n"
                    "    note: kept  # kept too\n", encoding="utf-8")
    set_param(path, "ne.clock_hz", 1.234567e9, "fit: a 'quoted' source")
    lines = path.read_text().splitlines()
    # ruamel keeps an end-of-line comment at its column, so a longer value leaves it one space
    assert re.fullmatch(r"    value: 1\.235e\+9 +# nominal", lines[3]), lines[3]
    assert lines[:3] + lines[4:] == ["# top comment", "ne:", "  clock_hz:  # the clock", "    provenance: fitted",
                                     "    source: \"fit: a 'quoted' source\"", "    note: kept  # kept too"]
    assert yaml.safe_load(path.read_text())["ne"]["clock_hz"]["value"] == pytest.approx(1.235e9)
    with pytest.raises(AnesimError):
        set_param(path, "ne.no_such_key", 1, "x")


def test_calibration_is_deterministic_and_reports_a_held_back_split() -> None:
    a = calibrate("M1", timer=stub_timer, cv=False, include=["dispatch.per_task_overhead_s"])
    b = calibrate("M1", timer=stub_timer, cv=False, include=["dispatch.per_task_overhead_s"])
    assert a.fitted == b.fitted and a.held_back == b.held_back
    assert a.held_back["n_points"] > 10 and a.calibration["n_points"] > 3 * a.held_back["n_points"] / 2
    # no shipped per-chip parameter is marked fitted (the per-task overhead is the guide's bound);
    # --param names one to fit
    assert fitted_params(load_chip("M1")) == []
    keys = [p.key for p in fitted_params(load_chip("M1"), include=["dispatch.per_task_overhead_s"])]
    assert keys == ["dispatch.per_task_overhead_s"]
    # what the cross-generation rules derive is not a per-chip fit
    assert not {"ne.mac_lanes_per_out_channel", "dram.weight_bytes_per_s", "power.engine_w"} & set(keys)
    chip = with_values(load_chip("M1"), a.params, a.fitted)
    i = keys.index("dispatch.per_task_overhead_s")
    assert chip.dispatch.per_task_overhead_s.value == pytest.approx(float(f"{a.fitted[i]:.6g}"))


def test_nonnegative_least_squares_recovers_and_clips() -> None:
    import numpy as np

    from anesim.validate.calibrate import _nonneg_lstsq

    a = np.array([[1.0, 2.0, 0.5], [1.0, 0.1, 3.0], [1.0, 4.0, 1.0], [1.0, 1.0, 1.0]])
    x = np.array([0.3, 1.5, 0.2])
    assert np.allclose(_nonneg_lstsq(a, a @ x), x)
    # a fit that wants a negative coefficient gets zero there instead
    y = a @ np.array([1.0, -0.2, 0.0])
    got = _nonneg_lstsq(a, y)
    assert got.min() >= 0 and got[1] == 0


def test_power_solve_fits_log_error_and_resists_an_outlier() -> None:
    import numpy as np

    from anesim.validate.calibrate import _log_error, _nonneg_lstsq, power_solve

    rng = np.random.default_rng(3)
    feats = rng.uniform(0.2, 2.0, size=(12, 3))
    truth = np.array([0.4, 0.3, 0.2])
    measured = feats @ truth
    a = feats / measured[:, None]  # rows of features over measured: a x = simulated / measured
    assert np.allclose(power_solve(a), truth, rtol=1e-3)
    # one row measured 5x too low: least squares moves every coefficient, the log-error fit
    # keeps the other rows exact
    bad = measured.copy()
    bad[0] /= 5.0
    a_bad = feats / bad[:, None]
    x = power_solve(a_bad)
    assert x.min() >= 0
    assert np.allclose(x, truth, rtol=1e-2)
    assert _log_error(a_bad, x) < _log_error(a_bad, _nonneg_lstsq(a_bad, np.ones(12)))
    # a feature that is zero on every row stays at zero
    a_zero = a.copy()
    a_zero[:, 2] = 0.0
    assert power_solve(a_zero)[2] == 0.0


def test_power_method_is_energy_over_latency() -> None:
    from anesim.timing.power import dispatch_energy_j
    from anesim.validate.methods import measure
    from anesim.validate.simulate import Simulator

    def timer(graph, chip):  # type: ignore[no-untyped-def]
        return Timing(2e-3, 2e-3, 4e6, 1, 5e9)

    chip = load_chip("M1")
    sim = Simulator(chip, timer)
    m = measure(sim, "power", "sustained_power", {"workload": "gemm", "m": 64, "k": 64, "n": 64}, "power")
    assert m.value == pytest.approx(dispatch_energy_j(chip, 2e-3, 5e9, 4e6) / 2e-3)
    assert signed_error_pct("power", 2.0, 2.2) == pytest.approx(10.0)


def test_only_restricts_the_fit_to_a_prefix() -> None:
    a = calibrate("M1", timer=stub_timer, cv=False, only="dispatch", include=["dispatch.per_task_overhead_s"])
    assert [p.key for p, free in zip(a.params, a.free) if free] == ["dispatch.per_task_overhead_s"]
    # a prefix that matches nothing to fit is refused, not a fit of nothing
    with pytest.raises(AnesimError, match="--only matches none"):
        calibrate("M1", timer=stub_timer, cv=False, only="power", include=["dispatch.per_task_overhead_s"])


def test_calibrating_an_installed_anesim_writes_copies_and_leaves_its_chip_files_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import anesim.cli.calibrate as cli_calibrate
    from anesim.cli import main

    files = [Path(f) for f in load_chip("M1").source_files]
    before = {f: f.read_bytes() for f in files}
    monkeypatch.setattr(cli_calibrate, "calibrate", lambda *a, **k: calibrate(*a, **{**k, "timer": stub_timer}))
    monkeypatch.setattr(cli_calibrate, "in_checkout", lambda name: False)
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--chip", "M1", "--no-cv", "--param", "dispatch.per_task_overhead_s"]) == 0
    assert all(f.read_bytes() == before[f] for f in files)
    own = tmp_path / "calibrated-chips" / files[0].name
    assert own.is_file() and (tmp_path / "calibrated-chips" / "generations" / files[1].name).is_file()
    chip = load_chip(own)
    result = calibrate("M1", timer=stub_timer, cv=False, include=["dispatch.per_task_overhead_s"])
    fitted = [(p, v) for p, free, v in zip(result.params, result.free, result.fitted) if free]
    assert fitted
    for p, v in fitted:
        section, name = p.key.split(".")
        param = getattr(getattr(chip, section), name)
        assert param.value == (int(round(v)) if p.integer else pytest.approx(float(f"{v:.4g}")))
        assert param.provenance == "fitted" and param.source.startswith("anesim calibrate --chip M1")
    # --out works the same from a checkout; the shared constants, read from the package only, are
    # not written anywhere but a checkout
    assert main(["calibrate", "--chip", "M1", "--no-cv", "--param", "dispatch.per_task_overhead_s",
                 "--out", str(tmp_path / "mine")]) == 0
    assert load_chip(tmp_path / "mine" / files[0].name).name == "M1"
    assert main(["calibrate", "--shared"]) == 2
    assert all(f.read_bytes() == before[f] for f in files)
    # a chip file of one's own is the one fitted (it starts from the copy's values), and a
    # calibrated copy fitted again is edited where it lies
    again = calibrate("M1", timer=stub_timer, cv=False, chip_file=own, include=["dispatch.per_task_overhead_s"])
    assert [Path(f).resolve() for f in again.files][:2] == [own.resolve(), (own.parent / "generations" / files[1].name).resolve()]
    for (p, v), start in zip(fitted, [s for s, free in zip(again.start, again.free) if free]):
        assert start == (int(round(v)) if p.integer else pytest.approx(float(f"{v:.4g}")))
    assert main(["calibrate", "--chip", str(own), "--no-cv", "--param", "dispatch.per_task_overhead_s"]) == 0
    assert load_chip(own).name == "M1" and all(f.read_bytes() == before[f] for f in files)


def test_validating_a_chip_file_of_ones_own_uses_that_file(tmp_path: Path) -> None:
    """--chip FILE validated the shipped chip of the same name, ignoring the file."""
    from anesim.validate.calibrate import chip_file_copies

    chip_file_copies(load_chip("M1").source_files, tmp_path)
    own = tmp_path / Path(load_chip("M1").source_files[0]).name
    set_param(own, "ne.clock_hz", 0.5e9, "a slower M1 of one's own", provenance="predicted", create=True)
    shipped = validate("m1", timer=stub_timer)["M1"].points
    mine = validate(str(own), timer=stub_timer)["M1"].points
    assert [p.id for p in mine] == [p.id for p in shipped]
    assert [p.simulated for p in mine] != [p.simulated for p in shipped]
    assert validate(str(own), timer=stub_timer)["M1"].points == mine  # (and the same again)
