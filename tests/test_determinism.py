"""The same program, chip and inputs give the same cycles and output bytes in any process.

Set iteration order, dict order of hashed keys and anything else that depends on
PYTHONHASHSEED must not reach the results: two fresh processes with different hash seeds run
the CLI on one model, one chip and one given input and must agree byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _start(hash_seed: str, model: Path, chip: str, inputs: dict[str, Path], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    args = [sys.executable, "-m", "anesim", "run", str(model), "--chip", chip, "--json", "--out", str(out)]
    for name, path in inputs.items():
        args += ["--input", f"{name}={path}"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    result = json.loads(stdout)
    result.pop("sim")  # wall time and event counts of the simulator itself, not results
    return result


def test_two_hash_seeds_give_identical_cycles_and_bytes(tmp_path: Path) -> None:
    model = REPO / "programs" / "resnet_basic_block.yaml"
    x = np.random.default_rng(11).standard_normal((1, 64, 56, 56)).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    procs = [_start(seed, model, "m5-pro", {"x": tmp_path / "x.npy"}, tmp_path / f"out{seed}") for seed in ("1", "4242")]
    runs = [_result(p) for p in procs]  # both run at once
    assert runs[0]["engine_cycles"] > 0
    assert runs[0] == runs[1]
    outputs = sorted(p.name for p in (tmp_path / "out1").glob("*.npy"))
    assert outputs
    for name in outputs:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out4242" / name).read_bytes(), name
