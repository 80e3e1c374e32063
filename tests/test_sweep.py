"""anesim sweep and compare: points, overrides, the table and figures, a sweep on a Dask cluster."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from anesim.chips import load_chip
from anesim.cli import main
from anesim.errors import ConfigError, InputError
from anesim.sweep import expand, parse_assignments, resolve_chips, run_point
from anesim.sweep.overrides import apply_overrides, parse_value

REPO = Path(__file__).resolve().parents[1]
CONV = str(REPO / "programs" / "conv3x3.yaml")
GEMM = str(REPO / "programs" / "gemm_512.yaml")


def test_values_and_assignments() -> None:
    assert parse_value("8") == 8 and parse_value("1.4e9") == 1.4e9 and parse_value("8MiB") == 8 * 2**20
    assert parse_value("1.2GHz") == 1.2e9 and parse_value("true") is True
    assert parse_assignments(["cores=2,4"], "--param", multi=True) == {"cores": [2, 4]}
    with pytest.raises(InputError, match="bad --set"):
        parse_assignments(["cores"], "--set", multi=False)
    # a unit after something that is not a number, and a list where one value is taken: one
    # line each, not a ValueError's traceback or a string value no key accepts
    with pytest.raises(InputError, match="not a number before the unit GHz"):
        parse_assignments(["clock=1.0GHz,xGHz"], "--param", multi=True)
    with pytest.raises(InputError, match="not a number before the unit GHz"):
        parse_value("xGHz")
    with pytest.raises(InputError, match="--set takes one value per key"):
        parse_assignments(["clock=1.0,1.2"], "--set", multi=False)
    with pytest.raises(InputError, match="both --set and --param"):
        expand([CONV], ["m1"], {"clock": [1e9]}, {"ne.clock_hz": [1e9, 2e9]})


def test_points_are_the_product() -> None:
    points = expand([CONV, GEMM], ["m1", "m5"], {"clock": [1.0e9]}, {"cores": [1, 2, 4]})
    assert len(points) == 2 * 2 * 3
    assert points[0].overrides == (("ne.clock_hz", 1.0e9), ("ne.cores", 1)) and points[0].swept == ("ne.cores",)
    assert len(resolve_chips("all")) == 28 and resolve_chips("M1,A17 Pro") == ["m1", "a17-pro"]
    with pytest.raises(ConfigError, match="unknown chip"):
        resolve_chips("m1,m99")


def test_overrides_change_the_chip_and_its_timing() -> None:
    m1 = load_chip("m1")
    two = apply_overrides(m1, {"cores": 2, "memory.pool_bytes": 8 * 2**20})
    assert two.ne.cores.value == 2 and two.memory.pool_bytes.value == 8 * 2**20
    assert two.ne.cores.provenance == "predicted" and m1.ne.cores.value == 4
    with pytest.raises(ConfigError, match="unknown chip key"):
        apply_overrides(m1, {"ne.corez": 2})
    with pytest.raises(ConfigError, match="bad override value"):
        apply_overrides(m1, {"ne.cores": -1})
    slow, fast = (run_point(p) for p in expand([CONV], ["m1"], None, {"clock": [0.5e9, 1.0e9]}))
    assert slow["latency_s"] > fast["latency_s"] and slow["ne.clock_hz"] == 0.5e9 and not slow["error"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_in_process_writes_the_table_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", CONV, "--chips", "m1,a14", "--param", "cores=2,4", "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    rows = _rows(out / "sweep.csv")
    assert len(rows) == 4 and {r["chip"] for r in rows} == {"m1", "a14"} and all(not r["error"] for r in rows)
    assert {r["ne.cores"] for r in rows} == {"2", "4"}
    for name in ("latency_by_chip.png", "roofline.png", "scaling.png"):
        assert (out / name).stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_sweep_on_a_dask_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A LocalCluster started here; the sweep connects to its address with --scheduler."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        out = tmp_path / "dask"
        assert main(["sweep", CONV, GEMM, "--chips", "m1,m5", "--out", str(out), "--scheduler",
                     cluster.scheduler_address, "--no-progress"]) == 0
    rows = _rows(out / "sweep.csv")
    assert [(r["program"], r["chip"]) for r in rows] == [("conv3x3", "m1"), ("conv3x3", "m5"),
                                                         ("gemm_512", "m1"), ("gemm_512", "m5")]
    assert all(float(r["latency_s"]) > 0 for r in rows)
    local = run_point(expand([GEMM], ["m5"])[0])
    assert float(rows[3]["latency_s"]) == pytest.approx(local["latency_s"], rel=0, abs=0)


def test_a_bad_scheduler_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr("anesim.sweep.runner.CONNECT_TIMEOUT_S", 1.0)
    assert main(["sweep", CONV, "--chips", "m1", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9",
                 "--no-progress"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_bad_keys_fail_before_any_point_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", CONV, "--chips", "m1", "--param", "batch=1,2", "--out", str(tmp_path), "--workers", "0"]) == 2
    assert "'batch' is neither a chip-file key nor a parameter of this program" in capsys.readouterr().err
    assert main(["sweep", CONV, "--chips", "m1", "--set", "ne.corez=2", "--out", str(tmp_path), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown chip key" in err[0] and "corez" in err[0]


BATCHED = """
name: batched
params: {batch: 1, c: 16}
inputs:
  x: {shape: ["${batch}", "$c", 8, 8]}
ops:
  - {op: conv2d, in: x, out: y, out_channels: "${c * 2}", kernel: 3, padding: 1, bias: true, activation: relu}
outputs: [y]
"""


def test_program_parameters_are_swept(tmp_path: Path) -> None:
    """--param batch=… sets the program file's own params: (here its batch size)."""
    program = tmp_path / "batched.yaml"
    program.write_text(BATCHED)
    out = tmp_path / "out"
    assert main(["sweep", str(program), "--chips", "m1", "--param", "batch=1,4", "--set", "cores=2", "--out",
                 str(out), "--workers", "0", "--no-progress"]) == 0
    rows = _rows(out / "sweep.csv")
    assert [r["batch"] for r in rows] == ["1", "4"] and {r["ne.cores"] for r in rows} == {"2"}
    assert int(rows[1]["macs"]) == 4 * int(rows[0]["macs"])
    assert float(rows[1]["latency_s"]) > float(rows[0]["latency_s"])


def test_a_sweep_whose_every_point_fails_reports_it_without_plot_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder) -> None:
    program = tmp_path / "batched.yaml"
    program.write_text(BATCHED)
    out = tmp_path / "out"
    assert main(["sweep", str(program), "--chips", "m1", "--param", "batch=abc", "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 point(s) failed" in err and "must be a number" in err
    assert (out / "latency_by_chip.png").is_file()
    assert not [w for w in recwarn if "legend" in str(w.message)]  # (no empty legend to warn about)


def test_compare_marks_predicted_chips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "compare.png"
    assert main(["compare", CONV, "--chips", "m1,a14,a17-pro", "-o", str(png)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("m1", "a14", "a17-pro"))}
    assert "validated" in lines["m1"] and "*" not in lines["m1"].split()[1]
    assert "predicted, uncalibrated" in lines["a14"] and lines["a17-pro"].split()[1] == "*"
    # a predicted chip's latency lies inside its 80 % range; a validated chip has none
    latency, span = float(lines["a14"].split()[3]), lines["a14"].split()[4]
    low, high = (float(v) for v in span.split("-"))
    assert low < latency < high and lines["m1"].split()[3] == "-"
    assert png.stat().st_size > 1000


@pytest.mark.cost(17)
@pytest.mark.slow
def test_every_shipped_program_on_every_chip(tmp_path: Path) -> None:
    """`anesim sweep programs/*.yaml --chips all` covers the programs on all 28 chips without an error row."""
    # The kernel and block programs plus two whole networks; the other whole-model programs
    # (seconds of timing each on every chip) are timed by test_whole_models.py on two chips and
    # by benchmarks/whole_models.py on six, to keep CI within its budget.
    kept = {"conv1x1_chain", "conv3x3", "elementwise_stream", "gemm_2048", "gemm_512", "resnet50",
            "resnet_basic_block", "transformer_block", "vit_b16"}
    programs = sorted(str(p) for p in (REPO / "programs").glob("*.yaml") if p.stem in kept)
    assert main(["sweep", *programs, "--chips", "all", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = _rows(tmp_path / "sweep.csv")
    assert len(rows) == len(programs) * 28
    assert [r for r in rows if r["error"]] == []


def test_parquet_holds_the_same_table_as_the_csv(tmp_path: Path) -> None:
    """With pyarrow (the sweep extra), sweep.parquet has the CSV's rows, columns and values."""
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the sweep and test extras) is not installed")
    from anesim.sweep.table import write_tables

    rows = [{"program": "p", "chip": "m1", "latency_s": 1.5e-4, "ne.cores": 4},
            {"program": "p", "chip": "m5", "latency_s": 9.0e-5, "ne.cores": 8}]
    written = write_tables(rows, tmp_path)
    assert [p.name for p in written] == ["sweep.csv", "sweep.parquet"]
    table = pq.read_table(tmp_path / "sweep.parquet").to_pylist()
    with (tmp_path / "sweep.csv").open(encoding="utf-8") as f:
        from_csv = list(csv.DictReader(f))
    assert [list(r) for r in table] == [list(r) for r in from_csv]
    assert [r["latency_s"] for r in table] == [1.5e-4, 9.0e-5]
    assert [r["ne.cores"] for r in table] == [4, 8]


def test_parquet_takes_engine_cycles_past_64_bits(tmp_path: Path) -> None:
    """A chip file's clock may be up to 1e30 Hz: its engine cycles overflowed pyarrow's int64 (a
    traceback from ``anesim sweep --param clock=1e30``); the column holds them as floats."""
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (the sweep and test extras) is not installed")
    from anesim.sweep.table import write_tables

    write_tables([{"engine_cycles": 158 * 10**24}, {"engine_cycles": 162718}], tmp_path)
    assert pq.read_table(tmp_path / "sweep.parquet").column("engine_cycles").to_pylist() == [1.58e26, 162718.0]


def test_a_point_on_a_chip_without_calibration_rows_carries_its_range() -> None:
    calibrated, predicted = (run_point(p) for p in expand([CONV], ["m1", "a14"]))
    assert calibrated["latency_low_s"] is None and calibrated["energy_high_j"] is None
    assert predicted["latency_low_s"] < predicted["latency_s"] < predicted["latency_high_s"]
    assert predicted["energy_low_j"] < predicted["energy_j"] < predicted["energy_high_j"]


def test_latency_axes_read_as_plain_numbers() -> None:
    """A log axis of a sweep figure labels its ticks 1.4, 2, 1000, not 1.4 x 10^0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from anesim.sweep.plots import plain_log_axis

    for low, high, some in ((1.39, 2.6, "1.4"), (0.3, 2500, "1000")):
        fig, ax = plt.subplots()
        ax.bar([0, 1], [low, high])
        ax.set_yscale("log")
        ax.set_ylim(low * 0.98, high * 1.05)
        plain_log_axis(ax.yaxis)
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
        plt.close(fig)
        assert some in labels and not any("times" in text or "^" in text for text in labels), labels
