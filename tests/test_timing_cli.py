"""``anesim run``: text report, JSON keys, traces, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from anesim.cli import main


@pytest.fixture
def conv_hwx(shared_dir):
    import anesim

    path = shared_dir / "hwx" / "tinygrad" / "conv.hwx"
    try:
        anesim.load(path)
    except Exception as exc:
        pytest.skip(f"anesim.load cannot read {path.name} yet: {exc}")
    return path


def test_run_json_has_the_documented_keys(conv_hwx, capsys):
    assert main(["run", str(conv_hwx), "--chip", "m1", "--timing-only", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("latency_s", "engine_cycles", "units", "dram_bytes", "flops_per_s", "tasks"):
        assert key in data
    assert data["latency_s"] > 0 and data["tasks"][0]["kind"] == "conv"


def test_run_text_report_and_trace(conv_hwx, capsys, tmp_path):
    # A Perfetto trace where the trace extra is installed, else the dependency-free Chrome JSON.
    out = tmp_path / ("conv.pftrace" if importlib.util.find_spec("perfetto") else "conv.json")
    assert main(["run", str(conv_hwx), "--timing-only", "--trace", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("latency", "engine-clock cycles", "DRAM", "tile_dma_src", "FLOP/s", "bound"):
        assert word in text
    assert out.stat().st_size > 0


def test_run_executes_with_drawn_inputs(conv_hwx, capsys):
    assert main(["run", str(conv_hwx)]) == 0
    text = capsys.readouterr().out
    assert "output probs: shape (1, 3, 1, 1)" in text
    assert "drawn with seed 0" in text


def test_run_missing_file_is_one_line(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.hwx"), "--timing-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anesim: error:") and err.count("\n") == 1


def test_run_unknown_chip_is_one_line(capsys, tmp_path):
    assert main(["run", str(tmp_path / "x.hwx"), "--chip", "no-such-chip"]) == 2
    assert "unknown chip" in capsys.readouterr().err


def test_run_rejects_a_file_that_is_not_npy(conv_hwx, capsys, tmp_path):
    bad = tmp_path / "x.npy"
    bad.write_text("not an array")
    assert main(["run", str(conv_hwx), "--input", f"image={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.npy" in err and "image" in err and ".npy file" in err


def test_run_says_when_an_input_overflows_fp16(capsys, tmp_path):
    """float32 inputs past fp16's range enter the engine as infinities, as the runtime's conversion
    gives them; the run says how many (its outputs were infinities with no word why)."""
    import numpy as np

    conv = str(Path(__file__).resolve().parents[1] / "programs" / "conv3x3.yaml")
    x = np.ones((1, 64, 56, 56), np.float32)
    x[0, 0, :2, :3] = [[1e10, -7e4, 65519.0], [65520.0, 6e4, np.inf]]
    np.save(tmp_path / "x.npy", x)
    assert main(["run", conv, "--chip", "m1", "--input", f"x={tmp_path / 'x.npy'}"]) == 0
    assert "input x: 3 finite value(s) beyond fp16's range" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--out", "out"], ["--input", "x=x.npy"], ["--random-inputs", "3"],
                                   ["--numerics", "fast"]])
def test_options_of_the_functional_run_with_timing_only_are_refused(extra, capsys, tmp_path):
    """--timing-only skips the functional run: an input it would read, a folder it would write or a
    seed it would draw with is refused, not ignored."""
    program = Path(__file__).resolve().parents[1] / "programs" / "conv3x3.yaml"
    extra = [str(tmp_path / "out") if e == "out" else f"x={tmp_path / 'x.npy'}" if e == "x=x.npy" else e for e in extra]
    assert main(["run", str(program), "--timing-only", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{extra[0]} is an option of the functional run" in err
    assert not list(tmp_path.iterdir())
