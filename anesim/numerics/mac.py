"""Matrix products under the MAC array's reduction rule, on fp16 bit patterns.

:func:`reduce_grouped` is the one entry point every NE reduction goes through (matmul, inner
product, convolution after im2col). It runs the fast blocked kernel when a cheap bound proves no
running accumulator can reach the overflow threshold, the tracked kernel when one might, and the
one-at-a-time exact kernel for the few outputs whose operands hold an infinity or whose
accumulator crossed the threshold in both directions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from anesim.numerics import _mackernels as kernels
from anesim.numerics.fast import check_mode, operand_fast, reduce_grouped_fast
from anesim.numerics.fp16 import USE_F16C
from anesim.numerics.rules import M1_RULES, TILE_LANES, MacRules

# conversion and fix-up in one parallel pass over the data, on the same fp16 path as fp16.py
_to_operand = kernels.operand_f16c if USE_F16C else kernels.operand_soft
_to_port = kernels.port_f16c if USE_F16C else kernels.port_soft


def mac_operand(bits: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits as the MAC array sees them: float32 values, NaN → +inf, subnormals flushed."""
    src = np.ascontiguousarray(bits, dtype=np.uint16)
    values = np.empty(src.shape, np.float32)
    _to_operand(src.reshape(-1), values.reshape(-1), rules.flush_subnormals)
    return values


def _pad_lanes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad the reduction axis to whole tiles with zero lanes."""
    k = a.shape[-1]
    k4 = -(-k // TILE_LANES) * TILE_LANES
    if k4 == k:
        return np.ascontiguousarray(a), np.ascontiguousarray(b)
    a4 = np.zeros(a.shape[:-1] + (k4,), np.float32)
    a4[..., :k] = a
    b4 = np.zeros(b.shape[:-2] + (k4, b.shape[-1]), np.float32)
    b4[..., :k, :] = b
    return a4, b4


def _may_reach(a: np.ndarray, b: np.ndarray,
               threshold: float) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Outputs whose running accumulator might reach ``threshold`` (None when none can), and
    the rows of ``a`` and columns of ``b`` holding an infinity.

    After any tile |acc| ≤ (1 + small)·Σ|a||b| ≤ min(Σ|a|·max|b|, max|a|·Σ|b|); the check runs
    on row and column sums only, so the common case costs O(MK + KN).
    """
    a_sum, a_max, bad_rows = kernels.row_stats(a)  # (G, M)
    b_sum, b_max, bad_cols = kernels.col_stats(b)  # (G, N)
    margin = 1.01 + 4.0 * a.shape[2] * 2.0**-24
    overall = min(float(a_sum.max(initial=0.0)) * float(b_max.max(initial=0.0)),
                  float(a_max.max(initial=0.0)) * float(b_sum.max(initial=0.0)))
    if overall * margin < threshold:
        return None, bad_rows, bad_cols
    bound = np.minimum(a_sum[:, :, None] * b_max[:, None, :],
                       a_max[:, :, None] * b_sum[:, None, :])
    risky = bound * margin >= threshold
    return (risky if risky.any() else None), bad_rows, bad_cols


def reduce_grouped_f32(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """Accumulators (float32, overflow already ±inf) of a[g] @ b[g]; a (G,M,K), b (G,K,N)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"reduce_grouped: shapes {a.shape} and {b.shape} do not chain")
    a4, b4 = _pad_lanes(a.astype(np.float32, copy=False), b.astype(np.float32, copy=False))
    groups, m, k = a4.shape
    n = b4.shape[2]
    threshold = rules.overflow_threshold
    if m == 0 or n == 0:
        return np.zeros((groups, m, n), np.float32)
    if k == 0:
        return np.zeros((groups, m, n), np.float32)

    risky, bad_rows, bad_cols = _may_reach(a4, b4, threshold)
    # outputs to replay one at a time; usually none, and then no (G, M, N) mask is built
    exact = (bad_rows[:, :, None] | bad_cols[:, None, :]
             if bad_rows.any() or bad_cols.any() else None)
    if risky is not None:
        acc, hi, lo = kernels.mac_blocked_tracked(a4, b4)
        up = hi >= threshold
        down = lo <= -threshold
        acc[up & ~down] = np.inf
        acc[down & ~up] = -np.inf
        both = up & down  # which crossing came first decides the sign: replay those
        exact = both if exact is None else exact | both
    else:
        acc = kernels.mac_blocked(a4, b4)
    if exact is not None:
        where = np.argwhere(exact)
        if where.size:
            acc[exact] = kernels.mac_exact_at(a4, b4, where.astype(np.int64), threshold)
    return acc


def port_round(acc: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """The output port: accumulators (overflow already ±inf) to fp16 bits, subnormals flushed.

    The port never emits -0: the accumulator starts at +0.
    """
    src = np.ascontiguousarray(acc, dtype=np.float32)
    out = np.empty(src.shape, np.uint16)
    _to_port(src.reshape(-1), out.reshape(-1), rules.flush_subnormals)
    return out


def reduce_grouped(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits of a[g] @ b[g] for MAC operands ``a`` (G,M,K) and ``b`` (G,K,N) in float32."""
    return port_round(reduce_grouped_f32(a, b, rules), rules)


def mode_kernels(mode: str = "exact") -> tuple[Callable[[np.ndarray, MacRules], np.ndarray],
                                                Callable[[np.ndarray, np.ndarray, MacRules], np.ndarray]]:
    """(operand conversion, reduction to fp16 bits) of a numerics mode: the exact rule or fast."""
    if check_mode(mode) == "exact":
        return mac_operand, reduce_grouped
    return operand_fast, reduce_grouped_fast


def matmul(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES, mode: str = "exact") -> np.ndarray:
    """fp16 bits of ``a @ b`` for fp16 bit arrays (..., M, K) and (..., K, N), batch broadcast."""
    operand, reduce = mode_kernels(mode)
    a = np.asarray(a, dtype=np.uint16)
    b = np.asarray(b, dtype=np.uint16)
    vector_a = a.ndim == 1
    vector_b = b.ndim == 1
    a2 = a[None, :] if vector_a else a
    b2 = b[:, None] if vector_b else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: inner sizes differ ({a2.shape} @ {b2.shape})")
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    m, k = a2.shape[-2:]
    n = b2.shape[-1]
    av = np.broadcast_to(operand(a2, rules), batch + (m, k)).reshape(-1, m, k)
    bv = np.broadcast_to(operand(b2, rules), batch + (k, n)).reshape(-1, k, n)
    out = reduce(av, bv, rules).reshape(batch + (m, n))
    if vector_a:
        out = out[..., 0, :]
    if vector_b:
        out = out[..., 0]
    return out
