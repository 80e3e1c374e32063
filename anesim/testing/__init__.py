"""Testing ANE-targeted models on Linux CI: a pytest plugin, model runs and assertions.

::

    from anesim.testing import assert_ane_close, assert_latency, assert_no_overflow

    def test_model(anesim_run, anesim_baseline):
        run = anesim_run("model.onnx", chip="m1")              # compiled, executed, timed once per session
        assert_ane_close(run, {"y": reference}, rtol=0.02, atol=1e-3)
        assert_no_overflow(run)                                 # inf/NaN/saturation per task
        assert_latency(run, chip="a17-pro", baseline=anesim_baseline)
        assert_on_ane("model.onnx", chip="m1", min_engine_fraction=0.95)  # layers off the engine

The fixtures come from :mod:`anesim.testing.plugin` (a ``pytest11`` entry point); the functions
here work without pytest. docs/testing.md has the details.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: pytest imports the plugin module (and so this package) at start-up in
# every project that has anesim installed, and the simulator's imports take a second.
_EXPORTS = {
    "assert_ane_close": "anesim.testing.asserts", "assert_latency": "anesim.testing.asserts",
    "assert_no_overflow": "anesim.testing.asserts", "fp16_ulp": "anesim.testing.asserts",
    "assert_on_ane": "anesim.check.assertions",
    "Baseline": "anesim.testing.baseline", "ModelRun": "anesim.testing.run", "chip_key": "anesim.testing.run",
    "run_model": "anesim.testing.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The exported name, importing its module now."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'anesim.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
