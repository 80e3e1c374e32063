"""fp16 ⇄ fp32 conversion: both paths against numpy and against each other."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from anesim.numerics import fp16
from anesim.numerics.fp16 import f16_to_f32, f32_to_f16

PATHS = ["soft"] + (["f16c"] if fp16.HAVE_F16C else [])
ALL_HALF = np.arange(65536, dtype=np.uint16)


def _probe_floats() -> np.ndarray:
    """Every fp16 value, every midpoint between neighbours and one float32 step either side,
    the overflow and underflow edges, and a million random float32 bit patterns."""
    finite = ALL_HALF[(ALL_HALF & 0x7C00) != 0x7C00]
    v = np.sort(finite.view(np.float16).astype(np.float64))
    mids = ((v[1:] + v[:-1]) / 2).astype(np.float32)  # exact: 12 bits
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(-np.inf))
    edges = np.array([65504, 65519.99, 65520, 65536, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-26,
                      2.0**-14, 2.0**-14 - 2.0**-25], np.float32)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0],
                        np.uint32).view(np.float32)
    probe = np.concatenate([v.astype(np.float32), mids, up, down, edges, -edges, noise, specials])
    return probe.astype(np.float32)


@pytest.mark.parametrize("path", PATHS)
def test_half_to_float_exhaustive_matches_numpy(path: str) -> None:
    got = f16_to_f32(ALL_HALF, path)
    ref = ALL_HALF.view(np.float16).astype(np.float32)
    nan = np.isnan(ref)
    assert np.array_equal(got[~nan].view(np.uint32), ref[~nan].view(np.uint32))
    assert np.isnan(got[nan]).all()


@pytest.mark.parametrize("path", PATHS)
def test_float_to_half_matches_numpy(path: str) -> None:
    x = _probe_floats()
    got = f32_to_f16(x, path)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    assert np.array_equal(got[~nan], ref[~nan])
    assert ((got[nan] & 0x7C00) == 0x7C00).all() and ((got[nan] & 0x3FF) != 0).all()


@pytest.mark.skipif(not fp16.HAVE_F16C, reason="host has no F16C")
def test_paths_are_bit_identical_nans_included() -> None:
    assert np.array_equal(f16_to_f32(ALL_HALF, "f16c").view(np.uint32),
                          f16_to_f32(ALL_HALF, "soft").view(np.uint32))
    x = _probe_floats()
    assert np.array_equal(f32_to_f16(x, "f16c"), f32_to_f16(x, "soft"))


def test_round_trip_is_identity_on_non_nan() -> None:
    keep = (ALL_HALF & 0x7FFF) <= 0x7C00
    assert np.array_equal(f32_to_f16(f16_to_f32(ALL_HALF))[keep], ALL_HALF[keep])


def test_env_var_forces_soft_path() -> None:
    code = ("import numpy as np; from anesim.numerics import fp16; "
            "h = np.arange(65536, dtype=np.uint16); "
            "print(fp16.PATH, int(fp16.f32_to_f16(fp16.f16_to_f32(h) * np.float32(1.3)).sum()))")
    env = dict(os.environ, ANESIM_FP16_SOFT="1")
    soft = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()
    env["ANESIM_FP16_SOFT"] = "0"
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    assert soft[0] == "soft"
    assert default[0] == ("f16c" if fp16.HAVE_F16C else "soft")
    assert soft[1] == default[1]


@njit
def _rn16_all(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fp16.rn16(x[i])
    return out


@njit
def _rn16_64_all(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fp16.rn16_64(x[i])
    return out


def test_in_kernel_rounding_matches_numpy() -> None:
    x = _probe_floats()
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16).astype(np.float32)
        got32 = _rn16_all(x)
        got64 = _rn16_64_all(x.astype(np.float64)).astype(np.float32)
    nan = np.isnan(x)
    assert np.array_equal(got32[~nan].view(np.uint32), ref[~nan].view(np.uint32))
    assert np.array_equal(got64[~nan].view(np.uint32), ref[~nan].view(np.uint32))
    assert np.isnan(got32[nan]).all() and np.isnan(got64[nan]).all()


@njit
def _mismatches_all_floats() -> int:
    bad = 0
    for bits in range(2**32):
        f = fp16.bits_f32(np.uint32(bits))
        if fp16.f2h_soft(f) != fp16.f2h_f16c(f):
            bad += 1
    return bad


@pytest.mark.cost(11)
@pytest.mark.slow
@pytest.mark.skipif(not fp16.HAVE_F16C, reason="host has no F16C")
def test_soft_equals_f16c_on_every_float32() -> None:
    assert _mismatches_all_floats() == 0
