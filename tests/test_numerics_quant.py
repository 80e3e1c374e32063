"""Quantised, palettised and sparse operands reconstruct to fp16 before the multiply."""

from __future__ import annotations

import numpy as np
import pytest

import anesim.numerics as N
from anesim.numerics import reference as R


def test_dequantize_is_one_rounding_of_scale_times_code() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    scale = rng.uniform(0.001, 0.1, 6).astype(np.float16)
    zero = rng.integers(-5, 5, 6)
    got = N.from_bits(N.dequantize(q, scale.view(np.uint16), zero, axis=0))
    exact = scale.astype(np.float64)[:, None, None, None] * (q.astype(np.float64) - zero[:, None, None, None])
    assert np.array_equal(got, exact.astype(np.float16))


def test_uint8_with_zero_point_round_trips() -> None:
    codes = np.arange(256, dtype=np.uint8)
    w = N.dequantize(codes, 0.5, 128)
    assert N.from_bits(w)[0] == -64.0 and N.from_bits(w)[-1] == 63.5
    assert np.array_equal(N.quantize(w, 0.5, 128, np.uint8), codes)


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = N.to_bits(np.array([0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0, np.nan]))
    assert N.quantize(x, 1.0).tolist() == [0, 2, 2, 0, 127, -128, 127]


def test_quantised_conv_equals_conv_of_dequantised_weights() -> None:
    rng = np.random.default_rng(1)
    x = N.to_bits(rng.standard_normal((1, 4, 6, 6)))
    q = rng.integers(-128, 128, (5, 4, 3, 3)).astype(np.int8)
    w = N.dequantize(q, N.to_bits(np.full(5, 0.02)))
    assert np.array_equal(N.conv2d(x, w, padding=1), R.conv2d(x, w, padding=(1, 1, 1, 1)))


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8])
def test_unpack_indices_least_significant_bits_first(bits: int) -> None:
    rng = np.random.default_rng(bits)
    idx = rng.integers(0, 2**bits, 37)
    stream = np.zeros(37 * bits, np.uint8)
    for i, v in enumerate(idx):
        for b in range(bits):
            stream[i * bits + b] = (v >> b) & 1
    packed = np.packbits(stream, bitorder="little")
    assert np.array_equal(N.unpack_indices(packed, bits, 37), idx)


def test_depalettize_shared_and_per_channel() -> None:
    palette = N.to_bits(np.array([-1.0, 0.0, 0.5, 2.0]))
    idx = np.array([[0, 1, 2, 3], [3, 3, 0, 1]])
    assert N.from_bits(N.depalettize(idx, palette)).tolist() == [[-1, 0, 0.5, 2], [2, 2, -1, 0]]
    per_channel = np.stack([palette, palette ^ np.uint16(0x8000)])
    out = N.from_bits(N.depalettize(idx, per_channel, axis=0))
    assert out.tolist() == [[-1, 0, 0.5, 2], [-2, -2, 1, -0.0]]
    with pytest.raises(ValueError):
        N.depalettize(np.array([4]), palette)


def test_desparsify_from_bool_or_packed_mask() -> None:
    mask = np.array([[True, False, True], [False, False, True]])
    nz = N.to_bits(np.array([1.0, 2.0, 3.0]))
    dense = N.from_bits(N.desparsify(mask, nz)).tolist()
    assert dense == [[1, 0, 2], [0, 0, 3]]
    packed = np.packbits(mask.reshape(-1), bitorder="little")
    assert N.from_bits(N.desparsify(packed, nz, (2, 3))).tolist() == dense
    with pytest.raises(ValueError):
        N.desparsify(mask, nz[:2])
