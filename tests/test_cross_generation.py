"""The cross-generation model: rules over public facts, shared constants, cross-validation, intervals."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anesim.chips import load_chip
from anesim.chips.loader import builtin_chip_dir, load_chip_file, with_constants
from anesim.chips.scaling import constants_of, load_model
from anesim.errors import AnesimError, ConfigError
from anesim.timing.uncertainty import interval_for, is_calibrated
from anesim.validate.crossval import fit_constants, predict, surfaces_for
from anesim.validate.simulate import Timing
from anesim.validate.stats import summarize
from anesim.validate.traces import load_traces
from anesim.compiler.graph.ops import node_macs

REPO = Path(__file__).resolve().parents[1]


def test_rules_reproduce_the_lane_widths_of_every_calibration_generation() -> None:
    widths = {"M1": 256, "M1 Max": 128, "M5": 512, "M5 Pro": 128, "M2": 512, "M3 Pro": 256, "M4": 512}
    for name, lanes in widths.items():
        chip = load_chip(name)
        assert chip.ne.mac_lanes_per_out_channel.value == lanes, name
        assert chip.derived_params["ne.mac_lanes_per_out_channel"] == "mac_lanes"


def test_derived_params_name_their_rule_and_inputs() -> None:
    chip = load_chip("M1")
    p = chip.dram.weight_bytes_per_s
    assert p.provenance == "predicted"
    assert "rule weight_stream" in p.source and "weight_stream_fraction = " in p.source
    assert "facts.coreml_lm_head_bytes_per_s = 6.087e+10" in p.source
    k = constants_of(load_model())["weight_stream_fraction"]
    assert p.value == pytest.approx(k * 60.87e9, rel=1e-4)
    # a measured per-chip value below a rule wins over it
    assert load_chip("M5 Pro").dram.weight_bytes_per_s.provenance == "measured"
    assert "dram.weight_bytes_per_s" not in load_chip("M5 Pro").derived_params


def test_power_floor_is_shared_and_switching_energy_scales_with_node() -> None:
    m5, m5_pro, m1, m1_max = load_chip("M5"), load_chip("M5 Pro"), load_chip("M1"), load_chip("M1 Max")
    # the always-on floor (guide ch.20) is one constant: not the core count (4 against 16),
    # not the rating, not the node
    assert m5_pro.ne.cores.value == 4 * m5.ne.cores.value
    floor = constants_of(load_model())["engine_floor_w"]
    for chip in (m1, m1_max, m5, m5_pro, load_chip("A17 Pro")):
        assert chip.power.engine_w.value == pytest.approx(floor, rel=1e-6)
    assert 0.5 < floor < 1.2  # the guide's M1 floor is about 0.8 W
    node = load_model().tables["node_energy"]
    ratio = node["N3P"].value / node["N5"].value
    assert m5.power.mac_energy_j.value == pytest.approx(ratio * m1.power.mac_energy_j.value, rel=1e-3)
    assert m5.power.dram_byte_energy_j.value == pytest.approx(ratio * m1.power.dram_byte_energy_j.value, rel=1e-3)


def test_other_constants_rederive_the_chip() -> None:
    chip = load_chip("M1")
    k = constants_of(load_model())["weight_stream_fraction"]
    other = with_constants(chip, {"weight_stream_fraction": 2 * k})
    assert other.dram.weight_bytes_per_s.value == pytest.approx(2 * chip.dram.weight_bytes_per_s.value, rel=1e-4)
    assert other.ne.cores.value == chip.ne.cores.value


def test_a_rule_without_its_fact_or_an_unknown_rule_is_one_error(tmp_path: Path) -> None:
    data = yaml.safe_load((builtin_chip_dir() / "generations" / "h13.yaml").read_text())
    del data["facts"]
    (tmp_path / "root.yaml").write_text(yaml.safe_dump({**data, "name": "No facts"}))
    with pytest.raises(ConfigError, match="rule 'mac_lanes' cannot be evaluated"):
        load_chip_file(tmp_path / "root.yaml")
    (tmp_path / "odd.yaml").write_text("inherits: h13\nname: Odd\ndram:\n  weight_bytes_per_s: {rule: nope}\n")
    with pytest.raises(ConfigError, match="unknown rule"):
        load_chip_file(tmp_path / "odd.yaml")


def test_intervals_only_for_chips_without_calibration_rows() -> None:
    for name in ("M1", "M1 Max", "M5", "M5 Pro"):
        assert interval_for(load_chip(name)) is None and is_calibrated(load_chip(name))
    same, other = interval_for(load_chip("M1 Pro")), interval_for(load_chip("M4"))
    assert same is not None and same.basis == "leave_one_chip_out"
    assert other is not None and other.basis == "leave_one_family_out"
    for iv in (same, other):
        lo, hi = iv.latency_ratio
        assert 0 < lo < 1 < hi
        a, b = iv.latency_range_s(1e-3)
        assert a < 1e-3 < b


def test_run_prints_and_json_carries_the_range(tmp_path: Path) -> None:
    prog = REPO / "programs"
    files = sorted(prog.glob("*.yaml"))
    if not files:
        pytest.skip("no program files")
    out = subprocess.run([sys.executable, "-m", "anesim", "run", str(files[0]), "--chip", "m4", "--timing-only"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "predicted range" in out.stdout and "no calibration rows for this chip" in out.stdout
    from anesim.timing import simulate
    import anesim

    compiled = anesim.compile(files[0], load_chip("m4"))
    r = simulate(compiled, "m4", trace=False)
    assert r.latency_range_s is not None and r.latency_range_s[0] < r.latency_s < r.latency_range_s[1]
    assert r.energy_range_j is not None and r.energy_range_j[0] < r.energy_j < r.energy_range_j[1]
    assert r.to_dict()["latency_range_s"] == list(r.latency_range_s)
    assert simulate(anesim.compile(files[0], load_chip("m1")), "m1", trace=False).latency_range_s is None


def test_chips_show_says_what_is_predicted() -> None:
    out = subprocess.run([sys.executable, "-m", "anesim", "chips", "show", "m4"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "derived by the cross-generation rules" in out.stdout
    assert "calibration rows: none" in out.stdout


def _stub(graph, chip):  # type: ignore[no-untyped-def]
    """A roofline stand-in: floor + max(compute, activation stream), reading the derived MAC width."""
    macs = sum(node_macs(graph, n) for n in graph.nodes)
    io = 2.0 * sum(graph.info(n).elements for n in [*graph.inputs, *graph.outputs])
    t = chip.dispatch_floor_s + max(2 * macs / chip.peak_fp16_flops_per_s, io / chip.dram.activation_bytes_per_s.value)
    return Timing(t, t, io, 1, macs)


@pytest.mark.cost(6)
def test_shared_fit_recovers_the_constants_that_made_the_data() -> None:
    rows = [r for r in load_traces() if r.mapped and r.target in ("M1", "M5")
            and r.family in ("gemm", "elementwise", "power", "conv3x3")]
    truth = {**constants_of(load_model()), "engine_floor_w": 0.6, "mac_energy_j_n5": 2e-12,
             "dram_byte_energy_j_n5": 3e-11}
    made = []
    for name in ("M1", "M5"):  # rows measured on a 'true' chip: the stub at the truth constants
        chip = with_constants(load_chip(name), truth)
        surf, _, _ = surfaces_for([r for r in rows if r.target == name], timer=_stub)
        pts = {p.id: p for p in predict(surf[0], truth, rows, _stub)}
        made += [dataclasses.replace(r, measured=pts[r.id].simulated) for r in rows if r.target == name and r.id in pts]
        assert chip.power.engine_w.value > 0
    surfaces, timer, _ = surfaces_for(made, timer=_stub)
    fitted = fit_constants(surfaces)
    for k in ("engine_floor_w", "mac_energy_j_n5", "dram_byte_energy_j_n5"):
        assert fitted[k] == pytest.approx(truth[k], rel=0.02), k
    for s in surfaces:
        assert summarize(predict(s, fitted, made, timer))["median_abs_pct_error"] < 1.0


def test_a_rule_reads_a_number_yaml_left_as_text(tmp_path) -> None:
    """YAML 1.1 reads 60.0e9 as a string; the rules take it as the schema does, as a number."""
    from anesim.chips import load_chip_file

    path = tmp_path / "m1-wide.yaml"
    path.write_text("inherits: m1\nname: M1 wide DRAM\ndram:\n  activation_bytes_per_s:\n"
                    "    value: 60.0e9\n    provenance: predicted\n    source: \"a what-if\"\n")
    chip = load_chip_file(path)
    assert chip.dram.activation_bytes_per_s.value == 60.0e9
    assert chip.dram.weight_refetch_ratio.value > 0


def test_planar_rate_is_a_shared_constant_every_generation_derives() -> None:
    k = constants_of(load_model())["planar_elements_per_cycle"]
    for name in ("M1", "M1 Max", "M5", "M5 Pro", "M4", "A17 Pro"):
        chip = load_chip(name)
        assert chip.planar.elements_per_cycle.value == round(k), name
        assert chip.derived_params["planar.elements_per_cycle"] == "planar_rate"
    other = with_constants(load_chip("M1"), {"planar_elements_per_cycle": 2 * k})
    assert other.planar.elements_per_cycle.value == round(2 * k)


def test_the_shared_fit_does_not_read_the_constants_it_wrote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refitting from a written fit gives the same constants: the search starts at the model's
    references, scans fixed ranges and builds its surrogate there, not at the written values."""
    from anesim.chips import scaling

    rows = [r for r in load_traces() if r.mapped and r.target in ("M1", "M5")
            and r.family in ("gemm", "elementwise", "power", "softmax")]
    surfaces, _, _ = surfaces_for(rows, timer=_stub)
    first = fit_constants(surfaces)
    model = load_model()
    moved = model.model_copy(update={"constants": {
        k: p.model_copy(update={"value": float(p.value) * (1.7 if p.provenance == "fitted" else 1.0)})
        for k, p in model.constants.items()}})
    monkeypatch.setattr(scaling, "load_model", lambda path=None: moved)
    import anesim.validate.crossval as cv
    monkeypatch.setattr(cv, "load_model", lambda path=None: moved)
    assert fit_constants(surfaces) == first
