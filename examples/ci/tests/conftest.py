"""Build the model on first use, and run it once per session on the M1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tiny_cnn.onnx"
REFERENCE = ROOT / "reference.npz"


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    """The seeded input and the float64 output of the model (make_model.py writes both)."""
    if not MODEL.exists() or not REFERENCE.exists():
        sys.path.insert(0, str(ROOT))
        import make_model

        make_model.main(["--out", str(MODEL)])
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def tiny_cnn(anesim_run, reference):  # type: ignore[no-untyped-def]
    """The model compiled for the M1, executed with the engine's fp16 numerics and timed, once."""
    return anesim_run(MODEL, chip="m1", inputs={"x": reference["x"]})
