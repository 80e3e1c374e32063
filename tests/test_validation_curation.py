"""Curation as data: a source added by a rules file alone, chip labels, any measurement file."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from anesim.cli import main
from anesim.errors import AnesimError
from anesim.validate.curation import Curator, load_table
from anesim.validate.curation.labels import builtin_names
from anesim.validate.measurements import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, load_measurements
from anesim.validate.runner import to_json, validate
from anesim.validate.simulate import Timing
from anesim.validate.traces import load_traces

COLUMNS = ["chip", "source_repo_or_url", "source_path_or_section", "provenance", "workload", "shape", "metric",
           "value", "notes"]


def _row(chip: str, source: str, section: str, workload: str, shape: str, metric: str, value: str,
         notes: str = "", provenance: str = "measured") -> dict[str, str]:
    return dict(zip(COLUMNS, [chip, source, section, provenance, workload, shape, metric, value, notes]))


MADE_UP_RULES = """
reasons:
  made_up_warmup: the made-up bench's first pass includes program load
sources:
  - name: made-up bench
    match: {source: {prefix: example.org/made-up}}
    labels:
      - when: {chip: the lab Mac}
        chip: M2 Pro
        note: the made-up bench's README names its Mac mini's chip
    methods:
      - text: "made-up bench: median of {int(repeats)} calls"
    vars: {repeats: 9}
    machines:
      - {match: rig-a, vars: {sizes: [256, 512]}}
    rules:
      - name: first pass
        when: {workload: first_pass}
        exclude: {reason: made_up_warmup, detail: "pass {value}"}
      - name: matrix product
        when: {workload: mm, metric: [usec, gflop_per_s]}
        parse: [{regex: '(?P<m>\\d+) by (?P<k>\\d+) by (?P<n>\\d+)'}]
        map: {family: gemm, params: {m: "{m}", k: "{k}", n: "{n}"}, method: single_dispatch,
              conversion: "latency = 2*{m}*{k}*{n} FLOP / rate, or as measured"}
      - name: sweep peak
        when: {workload: mm_sweep, metric: gflop_per_s}
        machine: true
        map: {family: gemm, params: {sizes: "{sizes}"}, method: peak_over_sizes, conversion: peak over the rig's sizes}
quantities:
  usec: {quantity: latency, scale: 1.0e-6}
  gflop_per_s: {quantity: flop_rate, scale: 1.0e+9}
units: {usec: us, gflop_per_s: GFLOP/s}
"""

MADE_UP_ROWS = [
    _row("the lab Mac", "example.org/made-up", "results.txt", "mm", "512 by 256 by 128 fp16", "usec", "41.5"),
    _row("M4", "example.org/made-up", "results.txt", "mm", "64 by 64 by 64", "gflop_per_s", "~12.5"),
    _row("M4", "example.org/made-up", "results.txt rig-a", "mm_sweep", "square", "gflop_per_s", "900"),
    _row("M4", "example.org/made-up", "results.txt rig-z", "mm_sweep", "square", "gflop_per_s", "900"),
    _row("M4", "example.org/made-up", "results.txt", "first_pass", "512 by 256 by 128", "usec", "3000"),
    _row("M4", "example.org/made-up", "results.txt", "mm", "a big one", "usec", "41.5"),
]


def test_a_made_up_source_is_curated_from_its_table_entry_alone(tmp_path: Path) -> None:
    rules = tmp_path / "made-up.yaml"
    rules.write_text(MADE_UP_RULES, encoding="utf-8")
    before = Curator().curate(MADE_UP_ROWS)
    assert [r["status"] for r in before] == ["excluded"] * len(MADE_UP_ROWS)  # no rule of the shipped table
    recs = Curator(load_table(rules)).curate(MADE_UP_ROWS)
    lab, small, peak, rig_z, warm, garbled = recs
    assert lab["target"] == "M2 Pro" and lab["attribution"].startswith("the made-up bench's README")
    assert lab["status"] == "mapped" and lab["family"] == "gemm" and lab["params"] == {"m": 512, "k": 256, "n": 128}
    assert lab["measured"] == pytest.approx(41.5e-6) and lab["quantity"] == "latency" and lab["units"] == "us"
    assert lab["source_method"] == "made-up bench: median of 9 calls"
    assert lab["conversion"] == "latency = 2*512*256*128 FLOP / rate, or as measured"
    assert small["target"] == "M4" and small["quantity"] == "flop_rate" and small["measured"] == pytest.approx(12.5e9)
    assert peak["params"] == {"sizes": [256, 512]} and peak["method"] == "peak_over_sizes"
    assert rig_z["reason"] == "unknown_machine"
    assert warm["reason"] == "made_up_warmup" and warm["why"].endswith("(pass 3000)")
    assert garbled["reason"] == "unparsed_shape"


def test_a_rules_file_naming_an_unknown_reason_or_family_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: x\n    match: {}\n    rules:\n      - exclude: {reason: nope}\n")
    with pytest.raises(AnesimError, match="unknown exclusion reason"):
        load_table(bad)
    bad.write_text("sources:\n  - name: x\n    match: {}\n    rules:\n      - map: {family: nope, "
                   "method: single_dispatch, conversion: c}\n")
    with pytest.raises(AnesimError, match="unknown workload family"):
        Curator(load_table(bad))
    bad.write_text("sources:\n  - name: x\n    match: {}\n    rules:\n      - {exclude: {reason: power}, map: "
                   "{family: gemm, method: single_dispatch, conversion: c}}\n")
    with pytest.raises(AnesimError, match="exactly one"):
        load_table(bad)


@pytest.mark.parametrize("label, chip", [
    ("M2 Pro (10-core GPU)", "M2 Pro"), ("Apple M3 Max", "M3 Max"), ("  m4   PRO ", "M4 Pro"),
    ("M4", "M4"), ("H14", "M2"), ("h15g", "M3 Pro"), ("H13G", "M1 Pro"), ("t6000", "M1 Pro"), ("T8103", "M1"),
    ("MacBook Pro (M1 Max, 2021)", "M1 Max"), ("A16 Bionic", "A16"), ("M5_Pro", "M5 Pro"), ("M9", "A11"),
    # model identifiers and ANE board types the shared sources tie to a chip (devices.yaml)
    ("MacBookAir10,1", "M1"), ("MacBookPro18,2 (64 GB)", "M1 Max"), ("Mac17_8", "M5 Pro"), ("Mac17,3", "M5"),
    ("iPhone18,3", "A19"), ("board 64", "M1"), ("Board type 128", "M2"), ("subtype 208", "A17 Pro"),
])
def test_chip_labels_are_read_through_the_chip_files(label: str, chip: str) -> None:
    assert builtin_names().read(label).chip == chip


@pytest.mark.parametrize("label, reason", [
    ("M7 Ultra", "unknown_chip"), ("", "unknown_chip"), ("Snapdragon X Elite", "unknown_chip"),
    ("M10", "unknown_chip"), ("H17S", "ambiguous_chip"),
    # the A11's compiler target is 'm9'; an M9 with a marketing tier is a chip no file holds
    ("Apple M9 Ultra", "unknown_chip"), ("M9 Pro (12-core GPU)", "unknown_chip"),
    # a board type a family shares; identifiers no source ties to a chip, or of a chip no file holds
    ("board 96", "ambiguous_chip"), ("board type 160", "ambiguous_chip"), ("board 2", "unknown_chip"),
    ("J274AP", "unknown_chip"), ("Mac14,12", "unknown_chip"), ("Apple M6 / Mac18,5", "unknown_chip"),
])
def test_labels_no_chip_file_fits_are_left_unattributed(label: str, reason: str) -> None:
    att = builtin_names().read(label)
    assert att.chip is None and att.reason == reason and att.note


MESSY = [
    _row("M2 Pro (10-core GPU)", "github.com/sbryngelson/ANEForge",
         "bench/results/rooflines/roofline-Mac14_12.json :: matmul", "matmul", "M=K=N=512 fp16", "latency_ms", "0.31"),
    _row("Apple M4", "github.com/sbryngelson/ANEForge", "bench/results/rooflines/roofline-Mac16_10.json :: conv",
         "conv", "Cin=Cout=64; HxW=32x32; batch 1", "latency_ms", "0.25"),
    _row("t8132", "my own bench", "", "gemm", "m=256 k=512 n=512", "latency_us", "260"),
    _row("H16G", "my own bench", "", "softmax", "rows=256 cols=1024", "latency_ms", "0.3"),
    _row("M7 Ultra", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "0.2"),
    _row("", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "0.2"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "TFLOP/s", "1.2", "an odd metric name"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "nan"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", ""),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "-3"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "1e999"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "12,5"),  # decimal comma?
    _row("M4", "my own bench", "", "gemm", "m=256 k=0 n=256", "latency_ms", "0.2"),
    _row("M4", "my own bench", "", "gemm", "m=256 k=256 q=3 n=256", "latency_ms", "0.2"),
    _row("M2 Pro", "github.com/sbryngelson/ANEForge", "bench/results/rooflines/roofline-Mac14_12.json :: matmul",
         "matmul", "M=K=N=? fp16", "latency_ms", "0.2"),
    _row("M2 Pro", "github.com/sbryngelson/ANEForge", "bench/results/ROOFLINES.md :: headline", "roofline_headline",
         "square fp16 GEMM peak over sweep", "tflops", "7.1", "Mac14_12 run"),
    _row("M2 Pro", "github.com/sbryngelson/ANEForge", "bench/results/rooflines/roofline-Mac14_12.json :: matmul",
         "matmul", "M=K=N=512 fp16", "package_W", "3.1"),
    _row("M2 Pro", "someone's blog", "", "resnet50", "batch 1", "latency_ms", "2.0"),
    _row("H17S", "my own bench", "", "gemm", "m=256 k=256 n=256", "latency_ms", "0.2"),
]
MESSY_REASONS = {"unknown_chip", "unknown_metric", "bad_value", "bad_shape", "unparsed_shape", "unknown_machine",
                 "power", "no_rule", "ambiguous_chip"}


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_messy_measurement_file_validates_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path / "mine.csv", MESSY)
    assert main(["validate", "--measurements", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cov = doc["coverage"]
    assert cov["rows"] == len(MESSY) and cov["used"] == 4
    assert cov["used"] + sum(cov["excluded"].values()) == cov["rows"]
    assert set(cov["excluded"]) == MESSY_REASONS
    assert set(doc["chips"]) == {"M2 Pro", "M4", "M4 Pro"}
    for chip in doc["chips"].values():
        for p in chip["per_point"]:
            assert p["measured"] > 0 and p["simulated"] > 0 and p["source"]
    assert doc["pooled"]["points"] == 4 and doc["pooled"]["median_abs_error_pct"] is not None
    assert main(["validate", "--measurements", str(path), "--summary"]) == 0
    text = capsys.readouterr().out
    assert "coverage: 4 of 19 rows used, 15 excluded" in text and "unknown_chip" in text


def test_a_missing_required_column_is_one_error_naming_file_and_column(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path / "cut.csv", MESSY, [c for c in COLUMNS if c != "value"])
    with pytest.raises(AnesimError, match="column 'value'"):
        load_measurements(path)
    assert main(["validate", "--measurements", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cut.csv" in err and "'value'" in err
    assert main(["calibrate", "--measurements", str(tmp_path / "absent.csv"), "--chip", "M4"]) == 2
    assert "absent.csv" in capsys.readouterr().err
    # optional columns may be absent
    only = _write(tmp_path / "short.csv", MESSY[2:4], list(REQUIRED_COLUMNS))
    assert [r.target for r in load_measurements(only)] == ["M4", "M4 Pro"]
    assert set(OPTIONAL_COLUMNS) | set(REQUIRED_COLUMNS) == set(COLUMNS)


def _constant_timer(graph, chip) -> Timing:  # type: ignore[no-untyped-def]
    return Timing(1e-3, 1e-3, 1e6, 1, 1e6)


GARBAGE = ["", "nan", "NaN", "-1", "0", "1e999", "inf", "~", "x" * 300, "{value}", "{__import__('os')}", "'", '"',
           "M=K=N=0", "M=K=N=99999999999", "m=1 k=1 n=1", "rows=1 cols=1", "1x1 C0->0 @0x0", "Mac17_8",
           "peak over", "part-9-x/1.md", "M5 Pro (guide", "\u00b5s", "-", "1 to 2", "ane_power_mW", "latency_ms",
           "GB/s", "tflops", "speedup_x", "conv", "matmul", "llm_decode", "H13", "t8142", "M1 (guide x)"]


@pytest.mark.cost(8)
def test_fuzzed_measurement_files_give_a_clean_result_or_an_anesim_error(shared_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(20)
    with (shared_dir / "measurements" / "m1-m5-calibration.csv").open(encoding="utf-8") as fh:
        shipped = list(csv.DictReader(fh))
    base = rng.sample(shipped, 60) + MESSY
    used = 0
    for trial in range(25):
        rows = [dict(r) for r in base]
        for _ in range(40):
            row = rng.choice(rows)
            row[rng.choice(COLUMNS)] = rng.choice(GARBAGE + [rng.choice(shipped)[rng.choice(COLUMNS)]])
        columns = list(COLUMNS)
        if trial % 8 == 7:
            columns.remove(rng.choice(COLUMNS))
        path = _write(tmp_path / f"fuzz{trial}.csv", rows, columns)
        try:
            traces = load_measurements(path)
        except AnesimError:
            assert set(columns) != set(COLUMNS)
            continue
        assert len(traces) == len(rows)
        for r in traces:
            assert r.mapped or (r.reason and r.why), r
        results = validate("all", rows=traces, timer=_constant_timer)
        doc = to_json(results, traces)
        assert doc["coverage"]["used"] + sum(doc["coverage"]["excluded"].values()) == len(rows)
        used += doc["coverage"]["used"]
    assert used > 25 * 20  # the mutations leave most rows usable: the simulated path is exercised


def test_the_shipped_table_as_a_measurement_file_gives_the_shipped_traces(shared_dir: Path) -> None:
    traces = {r.id: r for r in load_traces()}
    rows = load_measurements(shared_dir / "measurements" / "m1-m5-calibration.csv")
    assert len(rows) == len(traces) and all(r == traces[r.id] for r in rows)


def test_calibration_fits_a_chip_of_a_measurement_file(tmp_path: Path) -> None:
    from anesim.validate.calibrate import calibrate

    sizes = [(64, 64, 64), (128, 256, 64), (256, 256, 256), (512, 256, 128), (512, 512, 512), (1024, 512, 256),
             (1024, 1024, 1024), (2048, 1024, 512), (96, 96, 96), (384, 384, 384), (768, 256, 768), (64, 2048, 64)]
    rows = [_row("Apple M4 (10-core)", "my own bench", "", "gemm", f"m={m} k={k} n={n}", "latency_us",
                 f"{60 + 2 * m * k * n / 10e12 * 1e6:.2f}") for m, k, n in sizes]
    traces = load_measurements(_write(tmp_path / "m4.csv", rows))
    assert all(r.mapped and r.target == "M4" for r in traces)
    def io_timer(graph, chip) -> Timing:  # type: ignore[no-untyped-def]
        # a stand-in for the pipeline that reads fitted chip values: floor + I/O at the stream rate
        io = 2.0 * sum(graph.info(n).elements for n in [*graph.inputs, *graph.outputs])
        t = chip.dispatch_floor_s + io / chip.dram.activation_bytes_per_s.value
        return Timing(t, t, io)

    result = calibrate("M4", rows=traces, timer=io_timer, cv=False, derived=True)
    assert result.calibration["n_points"] + result.held_back["n_points"] == len(rows)
    assert len(result.fitted) == len(result.params) > 0


def test_a_rules_file_with_a_broken_regular_expression_is_refused_when_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MADE_UP_RULES.replace("(?P<m>", "(?P<m>**"), encoding="utf-8")
    with pytest.raises(AnesimError, match="not a regular expression") as info:
        load_table(bad)
    assert info.value.file == str(bad)


def test_a_method_text_that_does_not_suit_a_row_excludes_it(tmp_path: Path) -> None:
    rules = tmp_path / "made-up.yaml"
    rules.write_text(MADE_UP_RULES.replace("{int(repeats)}", "{int(repeats) // 0}"), encoding="utf-8")
    recs = Curator(load_table(rules)).curate(MADE_UP_ROWS)
    assert all(r["status"] == "excluded" for r in recs)
    assert "its source's method text" in recs[0]["why"]


@pytest.mark.cost(13)
def test_fuzzed_rules_files_load_and_curate_or_raise_an_anesim_error(tmp_path: Path) -> None:
    import yaml

    from anesim.fuzz.mutate import mutate_doc, paths_of

    rng = random.Random(7)
    base = yaml.safe_load(MADE_UP_RULES)
    awkward = ["(a+)**", "{1/0}", "{repeats.__class__}", "{sizes[99]}", "{m:>9}", "((", "{int('x')}"]
    loaded = 0
    for trial in range(60):  # (each loads the shipped table too: about 0.12 s)
        doc = mutate_doc(base, rng)
        if rng.random() < 0.3:  # an awkward regular expression or template somewhere
            path = rng.choice(paths_of(doc))
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = rng.choice(awkward)
        rules = tmp_path / f"rules{trial}.yaml"
        rules.write_text(yaml.safe_dump(doc), encoding="utf-8")
        try:
            records = Curator(load_table(rules)).curate(MADE_UP_ROWS)
        except AnesimError as exc:
            assert exc.file == str(rules) or "rules" in str(exc), exc
            continue
        loaded += 1
        assert len(records) == len(MADE_UP_ROWS)
        assert all(r["status"] in ("mapped", "excluded") for r in records)
    assert loaded > 5  # many mutations leave a loadable table: curation is exercised


def test_device_identifiers_name_their_source_and_a_broken_file_is_refused(tmp_path) -> None:
    from anesim.validate.curation.labels import load_devices

    from anesim.chips import all_chips

    shipped = {c.name for c in all_chips()}
    devices = load_devices()
    assert all(set(e.chips) <= shipped for e in [*devices.models, *devices.board_types])  # (no typo reads as 'no file')
    att = builtin_names().read("MacBookAir10,1")
    assert "model identifier" in att.note and "m1-m5-calibration.csv" in att.note
    assert "caveat 5" in builtin_names().read("Mac18,5").note
    bad = tmp_path / "devices.yaml"
    bad.write_text("models:\n  - {id: 'Mac1,1', chips: [M1], basis: guessed, source: x}\nboard_types: []\n")
    with pytest.raises(AnesimError, match="bad device identifiers") as info:
        load_devices(bad)
    assert "models.0.basis" in str(info.value)


def test_calibrating_on_a_few_rows_fits_only_what_they_move(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from anesim.validate.calibrate import calibrate

    sizes = [(256, 256, 256, "0.25"), (512, 512, 512, "0.3"), (1024, 1024, 1024, "0.9"), (2048, 2048, 2048, "6.1"),
             (512, 2048, 512, "0.6"), (1024, 512, 1024, "0.5"), (2048, 1024, 512, "1.1"), (768, 768, 768, "0.45")]
    rows = [_row("MacBookAir10,1", "my own bench", f"run {i}", "gemm", f"m={m} k={k} n={n}", "latency_ms", v)
            for i, (m, k, n, v) in enumerate(sizes)]
    path = _write(tmp_path / "mine.csv", rows)
    result = calibrate("M1", rows=load_measurements(path), cv=False, derived=True)
    held = dict(zip((p.key for p in result.params), result.held))
    # GEMM latencies say nothing of the planar engine, the CPU or energy: those stay as they were
    # and are not written as fitted on this file
    assert held["planar.elements_per_cycle"] == held["cpu.memory_bytes_per_s"] == "held: no calibration point depends on it"
    assert held["power.engine_w"].startswith("held: fewer than 3 power rows")
    for p, free, start, after in zip(result.params, result.free, result.start, result.fitted):
        assert free or after == start
    assert any(result.free)
    out = tmp_path / "out"
    assert main(["calibrate", "--measurements", str(path), "--chip", "M1", "--no-cv", "--out", str(out)]) == 0
    text = (out / "m1.yaml").read_text()
    assert "ne:" in text and "planar:" not in text and "power:" not in text
    # one row cannot fit the two parameters it moves: refused, nothing written
    one = _write(tmp_path / "one.csv", rows[3:4])
    assert main(["calibrate", "--measurements", str(one), "--chip", "M1", "--no-cv", "--holdout", "0",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "cannot fit" in err and "--only" in err and not (tmp_path / "x").exists()
    for bad in ("nan", "-0.5", "1", "inf"):  # a held-back fraction outside [0, 1): one line, exit 2
        assert main(["calibrate", "--measurements", str(path), "--chip", "M1", "--dry-run", "--holdout", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--holdout" in err
