"""The guide's measured numeric probes (ch. 3 and 20), as unit tests of the rules."""

from __future__ import annotations

import numpy as np
import pytest

import anesim.numerics as N
from anesim.numerics import reference as R


def h(values: list[float] | np.ndarray) -> np.ndarray:
    """fp16 bits of the given values."""
    return np.asarray(values, np.float16).view(np.uint16)


def val(bits: np.ndarray) -> np.ndarray:
    """float64 values of fp16 bits."""
    return np.asarray(bits, np.uint16).view(np.float16).astype(np.float64)


def reduce_via_matmul(rows: np.ndarray, rules: N.MacRules = N.M1_RULES) -> np.ndarray:
    """Each row of fp16 bits summed against a ones vector on the MAC array."""
    rows = np.atleast_2d(rows)
    ones = h(np.ones((rows.shape[1], 1)))
    return val(N.matmul(rows, ones, rules=rules))[:, 0]


def _fp16_range(lo: float, hi: float) -> np.ndarray:
    """Every fp16 value in [lo, hi]."""
    bits = np.arange(0x0000, 0x7C00, dtype=np.uint16)
    v = val(bits)
    return v[(v >= lo) & (v <= hi)]


def _triples(magnitudes: np.ndarray, order: str) -> np.ndarray:
    pattern = {"negation first": (1.0, -1.0, 0.0), "one first": (1.0, 0.0, -1.0)}[order]
    rows = []
    for b in magnitudes:
        triple = [b * pattern[0] if pattern[0] else 1.0,
                  b * pattern[1] if pattern[1] else 1.0,
                  b * pattern[2] if pattern[2] else 1.0]
        rows.append(triple * 16)
    return h(rows)


@pytest.mark.parametrize("order", ["negation first", "one first"])
def test_cancellation_sweep_table(order: str) -> None:
    # guide ch. 3 table: survivors of sixteen ones against the cancellation magnitude
    table = {1024: 16, 3000: 16, 4090: 16, 4096: 4, 8000: 4, 16000: 4, 30000: 4}
    got = reduce_via_matmul(_triples(np.array(list(table), float), order))
    assert list(got) == list(table.values())


def test_four_survivors_for_every_magnitude_from_4096() -> None:
    # every fp16 B from 4096 up to the port ceiling; 16 survivors for every B below 4096
    big = _fp16_range(4096, 32752)
    small = _fp16_range(1, 4094)
    assert (reduce_via_matmul(_triples(big, "negation first")) == 4).all()
    assert (reduce_via_matmul(_triples(small, "negation first")) == 16).all()


def test_survivors_are_layout_independent_byte_for_byte() -> None:
    magnitudes = _fp16_range(1, 32752)[::37]
    a = N.matmul(_triples(magnitudes, "negation first"), h(np.ones((48, 1))))
    b = N.matmul(_triples(magnitudes, "one first"), h(np.ones((48, 1))))
    assert a.tobytes() == b.tobytes()


def test_one_tile_of_4096_then_1024_ones_returns_5116() -> None:
    assert reduce_via_matmul(h([4096.0] + [1.0] * 1024))[0] == 5116.0


def test_wide_accumulator_holds_sixteen_thousand_ones() -> None:
    assert reduce_via_matmul(h([1.0] * 16000))[0] == 16000.0


def test_sixteen_increments_survive_next_to_8192() -> None:
    assert reduce_via_matmul(h([8192.0] + [1.0] * 16))[0] == 8208.0


def test_naive_fp16_sum_would_lose_them() -> None:
    # the control: an fp16 running sum swallows every one after 4096
    total = np.float16(4096.0)
    for _ in range(1024):
        total = np.float16(total + np.float16(1.0))
    assert float(total) == 4096.0


def test_width_slice_overflow_pair() -> None:
    # 4094 × 16 = 65504 stays finite; 4096 × 16 = 65536 overflows to infinity
    assert val(N.crop_gain_stage(h([4094.0])))[0] == 65504.0
    assert val(N.crop_gain_stage(h([4096.0])))[0] == np.inf
    row = h([[0.0, 4094.0, 4095.0, 4096.0, -4096.0]])
    out = val(N.width_slice(row, begin=1))
    assert out[0, 0] == 4094.0 and np.isinf(out[0, 1:]).all() and out[0, -1] < 0
    # the control: a zero begin offset is free of the saturation
    assert np.array_equal(N.width_slice(row, begin=0), row)


def test_overflow_goes_to_infinity_not_to_65504() -> None:
    assert val(N.elementwise("mul", h([300.0]), h([300.0])))[0] == np.inf
    assert val(N.elementwise("square", h([256.0])))[0] == np.inf
    assert val(N.elementwise("square", h([255.875])))[0] < np.inf


def test_mac_output_port_ceiling_is_2_pow_15() -> None:
    one = h([[1.0]])
    assert reduce_via_matmul(h([[32752.0]]))[0] == 32752.0
    assert reduce_via_matmul(h([[32768.0]]))[0] == np.inf
    assert val(N.matmul(h([[16384.0, 16368.0]]), h([[1.0], [1.0]])))[0, 0] == 32752.0
    assert val(N.matmul(h([[16384.0, 16384.0]]), h([[1.0], [1.0]])))[0, 0] == np.inf
    # a two-channel 1×1 convolution trips the same ceiling
    x = h(np.full((1, 2, 1, 1), 16384.0))
    assert val(N.conv2d(x, h(np.ones((1, 2, 1, 1)))))[0, 0, 0, 0] == np.inf
    # the full fp16 range without the M1 ceiling
    assert val(N.matmul(h([[32768.0]]), one, rules=N.IEEE_PORT_RULES))[0, 0] == 32768.0


def test_interior_partial_overflow_is_sticky() -> None:
    # the exact sum is 0, but the running accumulator passes 2**15 after the first tile
    v = h([10000.0] * 4 + [-10000.0] * 4)
    assert reduce_via_matmul(v)[0] == np.inf
    assert reduce_via_matmul(v, N.IEEE_PORT_RULES)[0] == 0.0
    assert reduce_via_matmul(h([-10000.0] * 4 + [10000.0] * 4))[0] == -np.inf


def test_denormals_flush_in_the_mac_but_not_elementwise() -> None:
    tiny = h([2.0**-24, 2.0**-24])
    assert reduce_via_matmul(tiny)[0] == 0.0
    assert reduce_via_matmul(tiny, N.IEEE_PORT_RULES)[0] == 2.0**-23
    assert val(N.elementwise("add", h([2.0**-24]), h([0.0])))[0] == 2.0**-24
    assert val(N.elementwise("mul", h([2.0**-24]), h([1.0])))[0] == 2.0**-24


def test_output_rounds_half_to_even() -> None:
    assert reduce_via_matmul(h([2048.0, 1.0]))[0] == 2048.0
    assert reduce_via_matmul(h([2048.0, 3.0]))[0] == 2052.0


def test_nan_is_positive_infinity_at_the_input_boundary() -> None:
    nan = h([np.nan])
    assert val(N.elementwise("add", nan, h([0.0])))[0] == np.inf
    assert val(N.elementwise("relu", nan))[0] == np.inf
    assert val(N.elementwise("max", nan, h([-3.0])))[0] == np.inf
    assert val(N.apply_lut(nan, N.builtin_lut("sigmoid")))[0] == 1.0
    assert val(N.apply_lut(nan, N.builtin_lut("tanh")))[0] == 1.0
    assert val(N.apply_lut(nan, N.builtin_lut("exp")))[0] == np.inf
    assert reduce_via_matmul(h([np.nan, 1.0]))[0] == np.inf
    assert N.elementwise("add", nan, h([0.0])).tobytes() == N.elementwise(
        "add", h([np.inf]), h([0.0])).tobytes()


def test_indeterminate_forms_flush_to_positive_zero() -> None:
    inf = h([np.inf])
    assert N.elementwise("sub", inf, inf)[0] == 0
    assert N.elementwise("mul", h([0.0]), inf)[0] == 0
    assert N.elementwise("sqrt", h([-1.0]))[0] == 0
    assert N.elementwise("rsqrt", h([-1.0]))[0] == 0
    assert N.apply_lut(h([-1.0]), N.builtin_lut("log2"))[0] == 0
    assert reduce_via_matmul(h([np.inf, -np.inf]))[0] == 0.0
    assert reduce_via_matmul(h([0.0, 1.0]).reshape(1, 2) * 0 + h([0.0, 0.0]))[0] == 0.0
    assert val(N.matmul(h([[np.inf, 2.0]]), h([[0.0], [3.0]])))[0, 0] == 6.0


def test_zero_sign_is_dropped_before_reciprocals() -> None:
    assert val(N.elementwise("recip", h([-0.0])))[0] == np.inf
    assert val(N.elementwise("rsqrt", h([-0.0])))[0] == np.inf
    assert N.elementwise("sqrt", h([-0.0]))[0] == 0x0000
    assert N.elementwise("add", h([-0.0]), h([0.0]))[0] == 0x0000


def test_exp_overflows_near_ln_65504() -> None:
    x = np.arange(10.9, 11.3, 0.001)
    y = val(N.apply_lut(h(x), N.builtin_lut("exp")))
    first_inf = float(x[np.isinf(y)][0])
    assert abs(first_inf - 11.094) < 0.02
    assert np.isfinite(y[x < 11.07]).all()


def test_runs_are_deterministic() -> None:
    rng = np.random.default_rng(7)
    a = h(rng.standard_normal((37, 130)) * 4)
    b = h(rng.standard_normal((130, 300)) * 4)
    first = N.matmul(a, b)
    assert first.tobytes() == N.matmul(a, b).tobytes()
    x = h(rng.standard_normal((2, 6, 9, 9)))
    w = h(rng.standard_normal((4, 6, 3, 3)))
    assert N.conv2d(x, w, padding=1).tobytes() == N.conv2d(x, w, padding=1).tobytes()


def test_rows_are_independent_of_batch_position() -> None:
    rng = np.random.default_rng(3)
    row = h(rng.standard_normal((1, 96)))
    w = h(rng.standard_normal((96, 40)))
    alone = N.matmul(row, w)
    for batch in (2, 8, 32):
        others = h(rng.standard_normal((batch, 96)) * 100)
        for pos in (0, batch // 2, batch - 1):
            stacked = others.copy()
            stacked[pos] = row[0]
            assert N.matmul(stacked, w)[pos].tobytes() == alone[0].tobytes()


def test_probes_hold_in_the_reference_too() -> None:
    ones = h(np.ones((48, 1)))
    rows = _triples(np.array([3000.0, 4096.0]), "one first")
    assert list(val(R.matmul(rows, ones))[:, 0]) == [16.0, 4.0]
    assert val(R.matmul(h([[4096.0] + [1.0] * 1024]), h(np.ones((1025, 1)))))[0, 0] == 5116.0
