"""anesim.testing: the assertions, the baseline, and the example CI project run by pytest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anesim.compiler import Builder
from anesim.testing import Baseline, assert_ane_close, assert_latency, assert_no_overflow, fp16_ulp, run_model

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "ci"


def _block() -> Builder:
    b = Builder("block")
    x = b.input("x", (1, 8, 8, 8))
    b.output(b.relu(b.conv2d(x, 8, kernel=3, padding=1, bias=True)))
    return b


@pytest.fixture(scope="module")
def block_run():  # type: ignore[no-untyped-def]
    return run_model(_block(), "m1", seed=1)


def test_fp16_ulp() -> None:
    assert fp16_ulp(np.array([1.0]))[0] == 2.0**-10
    assert fp16_ulp(np.array([0.0]))[0] == 2.0**-24
    assert fp16_ulp(np.array([1000.0]))[0] == 0.5


def test_assert_ane_close_reports_the_worst_elements() -> None:
    ref = np.linspace(-1, 1, 100).reshape(10, 10)
    act = ref.astype(np.float16)
    assert_ane_close(act, ref, ulp=0.5)
    act = act.copy()
    act[3, 4] += 0.25
    act[7, 1] = np.inf
    with pytest.raises(AssertionError) as info:
        assert_ane_close({"y": act}, {"y": ref}, ulp=2, rtol=1e-3)
    text = str(info.value)
    assert "output 'y': 2 of 100 elements" in text
    assert "(3, 4)" in text and "(7, 1)" in text and "inf" in text
    with pytest.raises(TypeError):
        assert_ane_close(act, ref)


def test_run_model_and_assertions(block_run) -> None:  # type: ignore[no-untyped-def]
    assert block_run.model == "block" and block_run.chip == "m1"
    assert [s.name for s in block_run.task_stats] and not any(s.overflowed for s in block_run.task_stats)
    assert_no_overflow(block_run)
    assert_latency(block_run, max_s=1.0)
    with pytest.raises(AssertionError, match=r"model 'block' on m1: predicted latency .* exceeds the limit"):
        assert_latency(block_run, max_s=block_run.timing.latency_s / 2)
    (out_name,) = block_run.outputs
    with pytest.raises(AssertionError, match=rf"(?s)model 'block' on m1: .*output '{out_name}' \(written by task \d+ '"):
        assert_ane_close(block_run, {out_name: block_run.outputs[out_name].astype(np.float64) * 1.5 + 1}, rtol=0.01)
    other = block_run.timing_on("a17-pro")
    assert other.latency_s > 0 and block_run.timing_on("A17 Pro") is other


def test_overflow_names_the_task() -> None:
    run = run_model(_block(), "m1", inputs={"x": np.full((1, 8, 8, 8), 30000, np.float16)})
    with pytest.raises(AssertionError, match=r"model 'block' on m1: fp16 overflow .* task 0 '"):
        assert_no_overflow(run)


def test_baseline_records_and_checks(tmp_path: Path, block_run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "baseline.json"
    recording = Baseline.load(path, update=True)
    assert_latency(block_run, baseline=recording)
    recording.save()
    doc = json.loads(path.read_text())
    assert list(doc["entries"]) == ["block@m1"]
    checking = Baseline.load(path)
    assert_latency(block_run, baseline=checking)
    doc["entries"]["block@m1"]["latency_s"] = block_run.timing.latency_s / 1.2  # the model got 20 % slower
    path.write_text(json.dumps(doc))
    with pytest.raises(AssertionError, match=r"20 % slower than the baseline"):
        assert_latency(block_run, baseline=Baseline.load(path))
    with pytest.raises(AssertionError, match="no baseline entry"):
        assert_latency(block_run, chip="m4", baseline=Baseline.load(path))


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in the example project with the plugin loaded explicitly (autoload off, so an
    installed entry point cannot register it twice)."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "anesim.testing.plugin", "-q", "-p", "no:cacheprovider",
                           *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.cost(10)
def test_example_ci_project(tmp_path: Path) -> None:
    """examples/ci passes; 20 % slower than its baseline fails on latency; an overflowing layer fails by name."""
    pytest.importorskip("onnx")
    project = tmp_path / "ci"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("*.onnx", "*.npz", "__pycache__"))
    assert (project / ".github" / "workflows" / "ane.yml").is_file()
    # the baseline as this checkout predicts it, so the check below isolates the 20 %
    (project / "ane_baseline.json").unlink()
    done = _pytest(project, "--anesim-update-baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((project / "ane_baseline.json").read_text())
    assert sorted(doc["entries"]) == ["tiny_cnn@a17-pro", "tiny_cnn@m1"]

    for entry in doc["entries"].values():
        entry["latency_s"] /= 1.2  # the model now takes 20 % longer than its baseline
    (project / "ane_baseline.json").write_text(json.dumps(doc))
    done = _pytest(project)
    assert done.returncode == 1
    assert "model 'tiny_cnn' on m1: predicted latency" in done.stdout
    assert "20 % slower than the baseline" in done.stdout
    assert "2 failed, 3 passed" in done.stdout

    (project / "tiny_cnn.onnx").unlink()
    subprocess.run([sys.executable, "make_model.py", "--weight-scale", "20000"], cwd=project, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    done = _pytest(project, "-k", "overflow")
    assert done.returncode == 1
    assert "model 'tiny_cnn' on m1: fp16 overflow" in done.stdout
    assert "first in task 0 'conv1:conv'" in done.stdout
