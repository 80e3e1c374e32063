"""The numba kernels against the plain-numpy reference, bit for bit, on random shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anesim.numerics as N
from anesim.numerics import _mackernels as kernels
from anesim.numerics import reference as R
from anesim.numerics._simd import LANES, host_lanes
from anesim.numerics.mac import mac_operand

SPECIALS = np.array([0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8001, 0x8000, 0x03FF, 0x7BFF, 0xFBFF],
                    np.uint16)
RULES = [N.M1_RULES, N.IEEE_PORT_RULES]


def rand_bits(rng: np.random.Generator, shape: tuple[int, ...], scale: float,
              specials: int = 0) -> np.ndarray:
    """fp16 bits of scaled normal samples, with a few special patterns sprinkled in."""
    bits = (rng.standard_normal(shape) * scale).astype(np.float16).view(np.uint16).copy()
    if specials and bits.size:
        flat = bits.reshape(-1)
        flat[rng.integers(0, flat.size, specials)] = rng.choice(SPECIALS, specials)
    return bits


@pytest.mark.parametrize("rules", RULES, ids=["m1", "ieee-port"])
def test_matmul_matches_reference_on_random_shapes(rules: N.MacRules) -> None:
    rng = np.random.default_rng(11)
    for trial in range(60):
        m, k, n = (int(v) for v in rng.integers(1, 23, 3))
        scale = float(10.0 ** rng.uniform(-4, 3.5))
        a = rand_bits(rng, (m, k), scale, specials=2 if trial % 4 == 0 else 0)
        b = rand_bits(rng, (k, n), scale, specials=2 if trial % 4 == 1 else 0)
        assert np.array_equal(N.matmul(a, b, rules=rules), R.matmul(a, b, rules)), (trial, m, k, n)


def test_matmul_blocks_and_overflow_tracking_match_reference() -> None:
    rng = np.random.default_rng(5)
    # more than one 4-row block and one 256-column block, ragged edges on both
    a = rand_bits(rng, (13, 70), 2.0)
    b = rand_bits(rng, (70, 300), 2.0)
    assert np.array_equal(N.matmul(a, b), R.matmul(a, b))
    # magnitudes around the 2**15 port ceiling exercise the tracked kernel and the replay
    a = rand_bits(rng, (9, 40), 60.0)
    b = rand_bits(rng, (40, 33), 60.0)
    got = N.matmul(a, b)
    assert np.isinf(N.from_bits(got).astype(float)).any()
    assert np.array_equal(got, R.matmul(a, b))


@pytest.mark.parametrize("rules", RULES, ids=["m1", "ieee-port"])
def test_matmul_vector_kernel_edges_match_reference(rules: N.MacRules) -> None:
    rng = np.random.default_rng(17)
    # row counts below, at and past one 4-row block; column counts around the vector (8 lanes,
    # 16 on AVX-512 hosts), one, two and three vectors (the 3-stage pipeline's branches) and the
    # 1024-column block, with a scalar tail
    w = LANES
    for m, k, n in [(1, 9, 40), (3, 7, 17), (4, 12, 8), (5, 5, 9), (6, 16, 16), (9, 13, 23),
                    (7, 4, 1030), (4, 3, 2063), (4, 8, w - 1), (5, 4, w), (4, 6, w + 1),
                    (8, 8, 2 * w), (4, 5, 2 * w + 3), (6, 4, 3 * w), (4, 9, 3 * w + 1)]:
        # few specials: a row or column with an infinity is replayed one output at a time
        a = rand_bits(rng, (m, k), 4.0, specials=2)
        b = rand_bits(rng, (k, n), 4.0, specials=3)
        assert np.array_equal(N.matmul(a, b, rules=rules), R.matmul(a, b, rules)), (m, k, n)


def test_vector_width_follows_the_host_or_the_setting() -> None:
    assert host_lanes() in (8, 16)
    assert LANES == int(os.environ.get("ANESIM_SIMD_LANES") or host_lanes())


@pytest.mark.cost(60)
@pytest.mark.slow
def test_other_vector_width_matches_reference(tmp_path: Path) -> None:
    """The matmul kernel compiled at the width this host does not choose (own numba cache) is bit-exact too.

    One kernel only: a fresh numba cache recompiles everything the tests import, which is minutes.
    """
    other = 8 if LANES == 16 else 16
    env = dict(os.environ, ANESIM_SIMD_LANES=str(other), NUMBA_CACHE_DIR=str(tmp_path))
    tests = [f"{__file__}::{name}" for name in ("test_vector_width_follows_the_host_or_the_setting",
                                                "test_matmul_vector_kernel_edges_match_reference")]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


@pytest.mark.parametrize("rules", RULES, ids=["m1", "ieee-port"])
def test_blocked_kernels_accumulators_match_reference(rules: N.MacRules) -> None:
    rng = np.random.default_rng(18)
    for m, k, n in [(5, 20, 37), (13, 8, 1041), (2, 12, 19), (8, 4, 8)]:
        # finite operands with zeros and fp16 subnormals (flushed or kept, as the rules say)
        a = rand_bits(rng, (m, k), 30.0)
        b = rand_bits(rng, (k, n), 30.0)
        for bits in (a, b):
            flat = bits.reshape(-1)
            flat[rng.integers(0, flat.size, 4)] = rng.choice(
                np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x0400], np.uint16), 4)
        av, bv = mac_operand(a, rules), mac_operand(b, rules)
        want = R.reduce(R.mac_operand(a, rules), R.mac_operand(b, rules), rules).astype(np.float32)
        assert np.isfinite(want).all()
        got = kernels.mac_blocked(av[None], bv[None])[0]
        tracked = kernels.mac_blocked_tracked(av[None], bv[None])[0][0]
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (m, k, n)
        assert np.array_equal(tracked.view(np.uint32), want.view(np.uint32)), (m, k, n)


@pytest.mark.parametrize("rules", RULES, ids=["m1", "ieee-port"])
def test_operand_and_port_passes_match_reference(rules: N.MacRules) -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)  # every fp16 pattern
    want = R.mac_operand(bits, rules).astype(np.float32)
    rng = np.random.default_rng(19)
    acc = np.concatenate([
        R.values(bits[(bits & 0x7C00) != 0x7C00]).astype(np.float32),  # finite fp16 values
        (rng.standard_normal(20000) * 10.0 ** rng.uniform(-9, 6, 20000)).astype(np.float32),
        np.array([np.inf, -np.inf, 0.0, -0.0, 65519.99, 65520.0, -3e-8, 3e-8], np.float32)])
    want_port = R.port(acc.astype(np.float64), rules)
    for convert, port in ((kernels.operand_soft, kernels.port_soft),
                          (kernels.operand_f16c, kernels.port_f16c)):
        got = np.empty(bits.shape, np.float32)
        convert(bits, got, rules.flush_subnormals)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
        out = np.empty(acc.shape, np.uint16)
        port(acc, out, rules.flush_subnormals)
        assert np.array_equal(out, want_port)


def test_batched_and_vector_matmul() -> None:
    rng = np.random.default_rng(6)
    a = rand_bits(rng, (3, 5, 8), 1.0)
    b = rand_bits(rng, (8, 7), 1.0)
    got = N.matmul(a, b)
    assert got.shape == (3, 5, 7)
    for i in range(3):
        assert np.array_equal(got[i], R.matmul(a[i], b))
    v = rand_bits(rng, (8,), 1.0)
    assert np.array_equal(N.matmul(v, b), R.matmul(v[None], b)[0])


def test_conv2d_matches_reference_on_random_configs() -> None:
    rng = np.random.default_rng(12)
    done = 0
    while done < 40:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, og = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = int(rng.integers(kh, 10)), int(rng.integers(kw, 10))
        stride = tuple(int(v) for v in rng.integers(1, 3, 2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
        padding = tuple(int(v) for v in rng.integers(0, 3, 4))
        n = int(rng.integers(1, 3))
        x = rand_bits(rng, (n, cg * groups, h, w), 3.0, specials=1 if done % 5 == 0 else 0)
        wt = rand_bits(rng, (og * groups, cg, kh, kw), 3.0)
        try:
            got = N.conv2d(x, wt, None, stride, padding, dilation, groups)
        except ValueError:
            continue  # kernel larger than the padded input
        assert np.array_equal(got, R.conv2d(x, wt, stride, padding, dilation, groups)), done
        done += 1


def test_depthwise_conv_with_bias_and_post_scale() -> None:
    rng = np.random.default_rng(13)
    x = rand_bits(rng, (1, 8, 12, 12), 2.0)
    w = rand_bits(rng, (8, 1, 3, 3), 1.0)
    bias = rand_bits(rng, (8,), 1.0)
    scale = rand_bits(rng, (8,), 1.0)
    got = N.conv2d(x, w, bias, stride=2, padding=1, groups=8, post_scale=scale)
    raw = R.conv2d(x, w, (2, 2), (1, 1, 1, 1), (1, 1), 8)
    assert np.array_equal(got, R.scale_bias(raw, scale, bias))


def test_inner_product_is_matmul_with_transposed_weights() -> None:
    rng = np.random.default_rng(14)
    x = rand_bits(rng, (4, 33), 1.0)
    w = rand_bits(rng, (10, 33), 1.0)
    b = rand_bits(rng, (10,), 1.0)
    got = N.inner_product(x, w, b)
    assert np.array_equal(got, R.scale_bias(R.matmul(x, w.T.copy()), None, b))
    # a matmul is a 1×1 convolution with the reduction over input channels
    as_conv = N.conv2d(x.T.copy()[None, :, :, None], w[:, :, None, None])
    assert np.array_equal(as_conv[0, :, :, 0].T, N.matmul(x, w.T.copy()))


@pytest.mark.parametrize("op", sorted(N.BINARY_OPS))
def test_binary_ops_match_reference_on_every_pattern_class(op: str) -> None:
    rng = np.random.default_rng(15)
    a = rng.integers(0, 65536, 30000).astype(np.uint16)
    b = rng.integers(0, 65536, 30000).astype(np.uint16)
    assert np.array_equal(N.elementwise(op, a, b), R.elementwise(op, a, b))


@pytest.mark.parametrize("op", sorted(N.UNARY_OPS))
def test_unary_ops_match_reference_exhaustively(op: str) -> None:
    a = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(N.elementwise(op, a), R.elementwise(op, a))


def test_elementwise_broadcasts() -> None:
    rng = np.random.default_rng(16)
    a = rand_bits(rng, (2, 3, 4, 5), 1.0)
    b = rand_bits(rng, (1, 3, 1, 1), 1.0)
    assert np.array_equal(N.elementwise("mul", a, b), R.elementwise("mul", a, b))


@pytest.mark.parametrize("mode", ["max", "min", "avg"])
def test_pooling_matches_reference(mode: str) -> None:
    rng = np.random.default_rng(17)
    for trial in range(12):
        h, w = (int(v) for v in rng.integers(2, 10, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        stride = tuple(int(v) for v in rng.integers(1, 3, 2))
        padding = tuple(int(v) for v in rng.integers(0, 2, 4))
        x = rand_bits(rng, (2, 3, h, w), 50.0, specials=2)
        for include_pad in (False, True):
            got = N.pool(x, mode, (kh, kw), stride, padding, include_pad)
            assert np.array_equal(got, R.pool(x, mode, (kh, kw), stride, padding, include_pad))


@pytest.mark.parametrize("name", sorted(N.LUT_BUILDERS))
def test_lut_matches_reference_on_all_inputs(name: str) -> None:
    table = N.builtin_lut(name)
    x = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(N.apply_lut(x, table), R.apply_lut(x, table))


def test_custom_lut_from_table_matches_reference() -> None:
    rng = np.random.default_rng(18)
    samples = np.sort(rng.standard_normal(33)).astype(np.float16).view(np.uint16)
    table = N.Lut.from_table(samples, -3.0, 5.0, -7.0, 9.0, post_scale=0.5, post_bias=0.25)
    x = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(N.apply_lut(x, table), R.apply_lut(x, table))


def test_scale_bias_matches_reference() -> None:
    rng = np.random.default_rng(19)
    y = rand_bits(rng, (2, 5, 3, 3), 100.0, specials=3)
    s = rand_bits(rng, (5,), 10.0)
    b = rand_bits(rng, (5,), 10.0)
    assert np.array_equal(N.scale_bias(y, s, b), R.scale_bias(y, s, b))


def test_width_slice_matches_reference() -> None:
    x = np.arange(0, 65536, 7, dtype=np.uint16).reshape(1, -1)
    for begin in (0, 1, 5):
        assert np.array_equal(N.width_slice(x, begin), R.width_slice(x, begin))
