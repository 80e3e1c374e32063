"""numba kernels of the fast (non-bit-exact) numerics mode: the passes around a BLAS product.

Both passes are serial and branch-free, so LLVM vectorises them: the fast mode runs them while
OpenBLAS's threads may still be spinning on the other cores (:func:`.fast.blas_owns_cores`).
The operand pass applies the MAC's input rules on the bit patterns (NaN → +inf, subnormals → +0
when asked) before widening; the port pass applies the port limit to a finished float32
accumulator, rounds it to fp16 like the exact port (no −0, subnormals → +0 when asked) and counts
the accumulators that are not finite, which only an infinite operand can produce (fp16 products
cannot overflow float32), so that the caller replays exactly those outputs under the exact rule.
One top-level function per conversion path, as everywhere in anesim.numerics.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from anesim.numerics._bits import HAVE_F16C, f2h_f16c, h2f_f16c
from anesim.numerics.fp16 import f2h_soft, h2f_soft

_INF = np.uint16(0x7C00)
_MAG = np.uint16(0x7FFF)
_MIN_NORMAL = np.uint16(0x0400)


@njit(inline="always")
def _operand_bits(h: np.uint16, flush_subnormals: bool) -> np.uint16:
    """The MAC's input rules on fp16 bits: NaN → +inf, subnormals (and −0) → +0 if asked."""
    m = h & _MAG
    h = _INF if m > _INF else h
    if flush_subnormals:
        h = np.uint16(0) if m < _MIN_NORMAL else h
    return h


@njit(inline="always")
def _limit(x: np.float32, threshold: np.float32) -> np.float32:
    """The port limit on a finished accumulator: |x| ≥ threshold → ±inf."""
    x = np.float32(np.inf) if x >= threshold else x
    return np.float32(-np.inf) if x <= -threshold else x


@njit(inline="always")
def _port_bits(h: np.uint16, flush_subnormals: bool) -> np.uint16:
    """The port's output rules on fp16 bits: no −0, subnormals → +0 if asked."""
    h = np.uint16(0) if (h & _MAG) == 0 else h
    if flush_subnormals:
        h = np.uint16(0) if (h & _INF) == 0 else h
    return h


@njit(cache=True)
def operand_fast_soft(src: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
    """dst = MAC operand values (float32) of the flat fp16 bits ``src`` (integer conversion)."""
    for i in range(src.shape[0]):
        dst[i] = h2f_soft(_operand_bits(src[i], flush_subnormals))


@njit(cache=True)
def port_fast_soft(acc: np.ndarray, dst: np.ndarray, threshold: float, flush_subnormals: bool) -> int:
    """dst = fp16 bits of the flat accumulators ``acc`` at the port; returns how many are not finite."""
    thr = np.float32(threshold)
    bad = 0
    for i in range(acc.shape[0]):
        x = acc[i]
        bad += 0 if np.isfinite(x) else 1
        dst[i] = _port_bits(f2h_soft(_limit(x, thr)), flush_subnormals)
    return bad


if HAVE_F16C:

    @njit(cache=True)
    def operand_fast_f16c(src: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
        """As :func:`operand_fast_soft`, converting with F16C."""
        for i in range(src.shape[0]):
            dst[i] = h2f_f16c(_operand_bits(src[i], flush_subnormals))

    @njit(cache=True)
    def port_fast_f16c(acc: np.ndarray, dst: np.ndarray, threshold: float, flush_subnormals: bool) -> int:
        """As :func:`port_fast_soft`, converting with F16C."""
        thr = np.float32(threshold)
        bad = 0
        for i in range(acc.shape[0]):
            x = acc[i]
            bad += 0 if np.isfinite(x) else 1
            dst[i] = _port_bits(f2h_f16c(_limit(x, thr)), flush_subnormals)
        return bad

else:  # pragma: no cover - only on CPUs without F16C
    operand_fast_f16c = operand_fast_soft
    port_fast_f16c = port_fast_soft
