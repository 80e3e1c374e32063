"""The model on the Apple Neural Engine, simulated: outputs, fp16 overflow, latency per chip."""

from __future__ import annotations

import pytest

from anesim.testing import assert_ane_close, assert_latency, assert_no_overflow

CHIPS = ["m1", "a17-pro"]  # the chips the app ships on


def test_outputs_match_the_reference(tiny_cnn, reference):  # type: ignore[no-untyped-def]
    assert_ane_close(tiny_cnn, {"y": reference["y"]}, rtol=0.02, atol=2e-3)


def test_no_fp16_overflow(tiny_cnn):  # type: ignore[no-untyped-def]
    assert_no_overflow(tiny_cnn)


@pytest.mark.parametrize("chip", CHIPS)
def test_latency_within_baseline(tiny_cnn, anesim_baseline, chip):  # type: ignore[no-untyped-def]
    assert_latency(tiny_cnn, chip=chip, baseline=anesim_baseline)


def test_latency_budget_on_m1(tiny_cnn):  # type: ignore[no-untyped-def]
    assert_latency(tiny_cnn, chip="m1", max_s=2e-3)  # the app's frame budget for this model
