"""Testing ANE-targeted models on Linux CI: a pytest plugin, model runs and assertions.

::

    from anesim.testing import assert_ane_close, assert_latency, assert_no_overflow

    def test_model(anesim_run, anesim_baseline):
        run = anesim_run("model.onnx", chip="m1")              # compiled, executed, timed once per session
        assert_ane_close(run, {"y": reference}, rtol=0.02, atol=1e-3)
        assert_no_overflow(run)                                 # inf/NaN/saturation per task
        assert_latency(run, chip="a17-pro", baseline=anesim_baseline)

The fixtures come from :mod:`anesim.testing.plugin` (a ``pytest11`` entry point); the functions
here work without pytest. docs/testing.md has the details.
"""

from anesim.testing.asserts import assert_ane_close, assert_latency, assert_no_overflow, chip_key, fp16_ulp
from anesim.testing.baseline import Baseline
from anesim.testing.run import ModelRun, run_model

__all__ = ["Baseline", "ModelRun", "assert_ane_close", "assert_latency", "assert_no_overflow", "chip_key",
           "fp16_ulp", "run_model"]
