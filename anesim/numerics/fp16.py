"""fp16 ⇄ fp32 conversion on ``uint16`` bit patterns, and fp16 rounding inside kernels.

Two interchangeable paths convert whole arrays:

* ``f16c``: LLVM ``half`` casts that compile to the F16C instructions (every x86 CPU since
  about 2012 has them);
* ``soft``: pure integer code with the same results bit for bit, round-to-nearest-even,
  subnormals, infinities and NaN included. A NaN keeps the top nine payload bits and gets its
  quiet bit set, which is what F16C does, so the two paths agree on every input.

The path is chosen once, at import: F16C when the host has it, unless the environment variable
``ANESIM_FP16_SOFT=1`` forces the soft path (tests use it to show both paths agree).

Kernels that need fp16 rounding between steps use :func:`rn16`, which rounds a float32 onto the
fp16 grid with float arithmetic only, so it needs neither path and is identical on every host.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from anesim.numerics._bits import (
    HAVE_F16C,
    bits_f32,
    bits_f64,
    f2h_f16c,
    f32_bits,
    f64_bits,
    h2f_f16c,
)

FORCE_SOFT: bool = os.environ.get("ANESIM_FP16_SOFT", "") not in ("", "0")
USE_F16C: bool = HAVE_F16C and not FORCE_SOFT
PATH: str = "f16c" if USE_F16C else "soft"

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
FP16_MIN_SUBNORMAL = 2.0**-24
# fp32 bit-pattern constants used by the rounding helpers
_EXP_MASK = np.int32(0x7F800000)
_FP16_MIN_EXP_BITS = np.int32((127 - 14) << 23)  # exponent of 2**-14: below it the grid is fixed
_RN16_MAGIC = np.int32((13 << 23) | 0x400000)  # turns 2**E into 1.5 * 2**(E + 13)
_EXP_MASK64 = np.int64(0x7FF0000000000000)
_FP16_MIN_EXP_BITS64 = np.int64((1023 - 14) << 52)
_RN16_MAGIC64 = np.int64((42 << 52) | (1 << 51))  # 2**E -> 1.5 * 2**(E + 42): quantum 2**(E-10)


@njit(inline="always")
def h2f_soft(h: np.uint16) -> np.float32:
    """fp16 bits to float32 with integer operations only (quiets a signalling NaN like F16C)."""
    h32 = np.uint32(h) & np.uint32(0xFFFF)
    sign = (h32 & np.uint32(0x8000)) << np.uint32(16)
    exp = (h32 >> np.uint32(10)) & np.uint32(0x1F)
    man = h32 & np.uint32(0x3FF)
    if exp == 0:
        if man == 0:
            bits = sign
        else:
            # subnormal: shift the leading one up to the implicit-bit position
            e32 = np.uint32(113)
            while (man & np.uint32(0x400)) == 0:
                man = man << np.uint32(1)
                e32 -= np.uint32(1)
            bits = sign | (e32 << np.uint32(23)) | ((man & np.uint32(0x3FF)) << np.uint32(13))
    elif exp == 31:
        bits = sign | np.uint32(0x7F800000) | (man << np.uint32(13))
        if man != 0:
            bits |= np.uint32(0x400000)
    else:
        bits = sign | ((exp + np.uint32(112)) << np.uint32(23)) | (man << np.uint32(13))
    return bits_f32(bits)


@njit(inline="always")
def f2h_soft(f: np.float32) -> np.uint16:
    """float32 to fp16 bits, round to nearest even, with integer operations only."""
    x = np.uint32(f32_bits(np.float32(f))) & np.uint32(0xFFFFFFFF)
    sign = (x >> np.uint32(16)) & np.uint32(0x8000)
    a = x & np.uint32(0x7FFFFFFF)
    if a > np.uint32(0x7F800000):  # NaN: quiet it, keep the top payload bits
        return np.uint16(sign | np.uint32(0x7E00) | ((a >> np.uint32(13)) & np.uint32(0x3FF)))
    if a >= np.uint32(0x477FF000):  # >= 65520 rounds past the largest finite fp16
        return np.uint16(sign | np.uint32(0x7C00))
    if a >= np.uint32(0x38800000):  # normal fp16 range: rebias, round at bit 13
        r = a - np.uint32(0x38000000)
        r = r + np.uint32(0xFFF) + ((r >> np.uint32(13)) & np.uint32(1))
        return np.uint16(sign | (r >> np.uint32(13)))
    if a <= np.uint32(0x33000000):  # at most half the smallest subnormal: ties to zero (even)
        return np.uint16(sign)
    # subnormal result: count units of 2**-24
    e = a >> np.uint32(23)
    m = (a & np.uint32(0x7FFFFF)) | np.uint32(0x800000)
    shift = np.uint32(126) - e
    q = m >> shift
    rem = m & ((np.uint32(1) << shift) - np.uint32(1))
    half = np.uint32(1) << (shift - np.uint32(1))
    if rem > half or (rem == half and (q & np.uint32(1)) != 0):
        q += np.uint32(1)
    return np.uint16(sign | q)


@njit(cache=True)
def _to_f32_soft(src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(src.shape[0]):
        dst[i] = h2f_soft(src[i])


@njit(cache=True)
def _to_f16_soft(src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(src.shape[0]):
        dst[i] = f2h_soft(src[i])


if HAVE_F16C:

    @njit(cache=True)
    def _to_f32_f16c(src: np.ndarray, dst: np.ndarray) -> None:
        for i in range(src.shape[0]):
            dst[i] = h2f_f16c(src[i])

    @njit(cache=True)
    def _to_f16_f16c(src: np.ndarray, dst: np.ndarray) -> None:
        for i in range(src.shape[0]):
            dst[i] = f2h_f16c(src[i])

else:  # pragma: no cover - only on CPUs without F16C
    _to_f32_f16c = _to_f32_soft
    _to_f16_f16c = _to_f16_soft


def f16_to_f32(bits: np.ndarray, path: str | None = None) -> np.ndarray:
    """Widen fp16 bit patterns (any shape, uint16) to float32 of the same shape (exact)."""
    src = np.ascontiguousarray(bits, dtype=np.uint16)
    dst = np.empty(src.shape, np.float32)
    kernel = _to_f32_f16c if (path or PATH) == "f16c" and HAVE_F16C else _to_f32_soft
    kernel(src.reshape(-1), dst.reshape(-1))
    return dst


def f32_to_f16(values: np.ndarray, path: str | None = None) -> np.ndarray:
    """Round float32 values (any shape) to fp16 bit patterns (uint16), nearest even."""
    src = np.ascontiguousarray(values, dtype=np.float32)
    dst = np.empty(src.shape, np.uint16)
    kernel = _to_f16_f16c if (path or PATH) == "f16c" and HAVE_F16C else _to_f16_soft
    kernel(src.reshape(-1), dst.reshape(-1))
    return dst


def to_bits(values: np.ndarray | float) -> np.ndarray:
    """fp16 bit patterns of numeric values (float16 arrays are viewed, others rounded)."""
    arr = np.asarray(values)
    if arr.dtype == np.float16:
        return np.ascontiguousarray(arr).view(np.uint16)
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype == np.float32:
        return f32_to_f16(arr)
    with np.errstate(over="ignore"):  # numpy rounds wider floats to half directly, no double rounding
        return np.ascontiguousarray(arr.astype(np.float64).astype(np.float16)).view(np.uint16)


def from_bits(bits: np.ndarray) -> np.ndarray:
    """View fp16 bit patterns as numpy float16 values."""
    return np.ascontiguousarray(bits, dtype=np.uint16).view(np.float16)


@njit(inline="always")
def rn16(x: np.float32) -> np.float32:
    """Round a float32 onto the fp16 grid (nearest even, overflow to ±inf), kept as float32."""
    x = np.float32(x)
    e = max(f32_bits(x) & _EXP_MASK, _FP16_MIN_EXP_BITS)
    c = bits_f32(e + _RN16_MAGIC)
    r = (x + c) - c
    if not abs(r) <= np.float32(FP16_MAX):  # overflow, or x already ±inf or NaN
        r = x if np.isnan(x) else np.float32(np.inf)
    # the magic-constant trick loses the sign of a zero result; IEEE keeps it
    return np.float32(np.copysign(r, x))


@njit(inline="always")
def rn16_64(x: np.float64) -> np.float64:
    """Round a float64 onto the fp16 grid (nearest even, overflow to ±inf), kept as float64."""
    x = np.float64(x)
    e = max(f64_bits(x) & _EXP_MASK64, _FP16_MIN_EXP_BITS64)
    c = bits_f64(e + _RN16_MAGIC64)
    r = (x + c) - c
    if not abs(r) <= FP16_MAX:  # overflow, or x already ±inf or NaN
        r = x if np.isnan(x) else np.inf
    return np.copysign(r, x)
