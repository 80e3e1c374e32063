"""The fast numerics mode: float32 BLAS accumulation, rounded to fp16 once per output.

Not bit-exact. What it keeps of the MAC rule (anesim.numerics.rules): the operand conversion
(NaN → +inf, subnormals flushed on the M1 generation), exact products, the output port (the
port limit becomes ±inf, subnormal results flush, never −0) and every output that touches an
infinite operand, which is replayed under the exact rule. What it drops: the radix-4 tile
rounding (BLAS adds float32 products in its own order, with fused multiply-adds) and the sticky
interior overflow (only the final accumulator is checked against the port limit). The summation
order is the BLAS library's, so results may differ between machines and thread counts.
docs/numerics.md gives the measured deviation from the exact mode, op by op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numba
import numpy as np

from anesim.numerics import _mackernels as kernels
from anesim.numerics._fastkernels import operand_fast_f16c, operand_fast_soft, port_fast_f16c, port_fast_soft
from anesim.numerics.fp16 import USE_F16C
from anesim.numerics.rules import M1_RULES, TILE_LANES, MacRules

NumericsMode = Literal["exact", "fast"]
MODES: tuple[str, ...] = ("exact", "fast")

_to_operand = operand_fast_f16c if USE_F16C else operand_fast_soft
_to_port = port_fast_f16c if USE_F16C else port_fast_soft


def check_mode(mode: str) -> NumericsMode:
    """``mode`` if it names a numerics mode, else a ValueError listing them."""
    if mode not in MODES:
        raise ValueError(f"numerics mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


@contextmanager
def blas_owns_cores() -> Iterator[None]:
    """Run numba's parallel kernels on one thread (of this thread) for the duration.

    OpenBLAS's threads spin for a while after each call; numba's parallel passes launched in
    between then fight them for the cores, which made a fast-mode ResNet-50 four times slower
    on two cores. The passes around a BLAS call are memory-bound, so one thread loses little.
    ``numba.set_num_threads`` is thread-local, so other threads keep their own setting.
    """
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def operand_fast(bits: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits as the MAC array sees them (float32; NaN → +inf; subnormals flushed if the rules say)."""
    src = np.ascontiguousarray(bits, dtype=np.uint16)
    values = np.empty(src.shape, np.float32)
    _to_operand(src.reshape(-1), values.reshape(-1), rules.flush_subnormals)
    return values


def _replay_exact(a: np.ndarray, b: np.ndarray, acc: np.ndarray, threshold: float) -> np.ndarray:
    """Exact accumulators of the outputs BLAS left infinite or NaN (those touching an infinity)."""
    where = np.argwhere(~np.isfinite(acc)).astype(np.int64)
    k = a.shape[2]
    k4 = -(-k // TILE_LANES) * TILE_LANES
    a4 = np.zeros(a.shape[:2] + (k4,), np.float32)
    a4[:, :, :k] = a
    cols = np.unique(where[:, 2])  # only the columns that need a replay are gathered
    b4 = np.zeros((b.shape[0], k4, cols.size), np.float32)
    b4[:, :k, :] = b[:, :, cols]
    local = where.copy()
    local[:, 2] = np.searchsorted(cols, where[:, 2])
    return kernels.mac_exact_at(a4, b4, local, threshold)


def reduce_grouped_fast(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits of a[g] @ b[g], MAC operands a (G,M,K) and b (G,K,N): float32 BLAS, then the port."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"reduce_grouped: shapes {a.shape} and {b.shape} do not chain")
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):  # inf operands: those outputs are replayed
        acc = np.matmul(a[0], b[0])[None] if a.shape[0] == 1 else np.matmul(a, b)
    acc = np.ascontiguousarray(acc)
    out = np.empty(acc.shape, np.uint16)
    if acc.size == 0:
        return out
    threshold = rules.overflow_threshold
    if _to_port(acc.reshape(-1), out.reshape(-1), threshold, rules.flush_subnormals):
        bad = ~np.isfinite(acc)
        exact = _replay_exact(a, b, acc, threshold)
        port = np.empty(exact.shape, np.uint16)
        _to_port(exact, port, threshold, rules.flush_subnormals)
        out[bad] = port
    return out
