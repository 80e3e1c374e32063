"""numba kernels of the MAC reduction rule (see :mod:`anesim.numerics.rules`).

Operands arrive as float32 arrays that already hold fp16 values (NaN coerced, subnormals
flushed as the rules ask), with the reduction axis padded to a multiple of four. Every kernel
returns the float32 accumulator; rounding at the output port happens in :mod:`.mac`.

The hot loop works on a block of four output rows by ``_COLS`` output columns and keeps the four
accumulator rows in L1, so each weight row loaded is used for four rows of products. Tile
rounding uses the magic-constant trick: adding and subtracting ``1.5 * 2**(E + 12)`` rounds a
float32 to the grid ``2**(E - 11)`` with the adder's own nearest-even rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from anesim.numerics._bits import bits_f32, f32_bits

_EXP = np.int32(0x7F800000)
_TILE_MAGIC = np.int32((12 << 23) | 0x400000)  # 2**E -> 1.5 * 2**(E + 12): quantum 2**(E - 11)
_COLS = 256  # output columns per block: 4 rows x 256 float32 accumulators stay in L1


@njit(inline="always")
def _first(a: np.float32, b: np.float32) -> np.float32:
    """Tile step with an empty partial: the product rounded to 12 bits on its own grid."""
    p = a * b
    c = bits_f32((f32_bits(p) & _EXP) + _TILE_MAGIC)
    return (p + c) - c


@njit(inline="always")
def _step(s: np.float32, a: np.float32, b: np.float32) -> np.float32:
    """One tile step: s + a*b in float32, rounded on the grid set by the larger addend."""
    p = a * b
    x = s + p
    e = max(f32_bits(s) & _EXP, f32_bits(p) & _EXP)
    c = bits_f32(e + _TILE_MAGIC)
    return (x + c) - c


@njit(inline="always")
def _tile(a0, a1, a2, a3, b0, b1, b2, b3):  # type: ignore[no-untyped-def]
    """The partial of one four-lane tile."""
    s = _first(a0, b0)
    s = _step(s, a1, b1)
    s = _step(s, a2, b2)
    return _step(s, a3, b3)


@njit
def _rows4(a, i, t, b0, b1, b2, b3, acc0, acc1, acc2, acc3):  # type: ignore[no-untyped-def]
    """Add tile ``t`` of rows i..i+3 of ``a`` into four accumulator rows (vectorised over j)."""
    k = 4 * t
    a00 = a[i, k]; a01 = a[i, k + 1]; a02 = a[i, k + 2]; a03 = a[i, k + 3]  # noqa: E702
    a10 = a[i + 1, k]; a11 = a[i + 1, k + 1]; a12 = a[i + 1, k + 2]; a13 = a[i + 1, k + 3]  # noqa: E702
    a20 = a[i + 2, k]; a21 = a[i + 2, k + 1]; a22 = a[i + 2, k + 2]; a23 = a[i + 2, k + 3]  # noqa: E702
    a30 = a[i + 3, k]; a31 = a[i + 3, k + 1]; a32 = a[i + 3, k + 2]; a33 = a[i + 3, k + 3]  # noqa: E702
    for j in range(acc0.shape[0]):
        x0 = b0[j]; x1 = b1[j]; x2 = b2[j]; x3 = b3[j]  # noqa: E702
        acc0[j] += _tile(a00, a01, a02, a03, x0, x1, x2, x3)
        acc1[j] += _tile(a10, a11, a12, a13, x0, x1, x2, x3)
        acc2[j] += _tile(a20, a21, a22, a23, x0, x1, x2, x3)
        acc3[j] += _tile(a30, a31, a32, a33, x0, x1, x2, x3)


@njit
def _row1(a, i, t, b0, b1, b2, b3, acc):  # type: ignore[no-untyped-def]
    """Add tile ``t`` of row i of ``a`` into one accumulator row."""
    k = 4 * t
    a0 = a[i, k]; a1 = a[i, k + 1]; a2 = a[i, k + 2]; a3 = a[i, k + 3]  # noqa: E702
    for j in range(acc.shape[0]):
        acc[j] += _tile(a0, a1, a2, a3, b0[j], b1[j], b2[j], b3[j])


@njit
def _rows4_tracked(a, i, t, b0, b1, b2, b3, acc, hi, lo):  # type: ignore[no-untyped-def]
    """As :func:`_rows4`, also keeping the running maximum and minimum of each accumulator."""
    _rows4(a, i, t, b0, b1, b2, b3, acc[0], acc[1], acc[2], acc[3])
    for r in range(4):
        accr = acc[r]; hir = hi[r]; lor = lo[r]  # noqa: E702
        for j in range(accr.shape[0]):
            hir[j] = max(hir[j], accr[j])
            lor[j] = min(lor[j], accr[j])


@njit
def _block(a, b, out, i0, j0, ncols):  # type: ignore[no-untyped-def]
    """Accumulate output rows i0.. (up to four) by columns j0..j0+ncols over the full reduction."""
    m = a.shape[0]
    ntiles = a.shape[1] // 4
    j1 = j0 + ncols
    if i0 + 4 <= m:
        acc = np.zeros((4, ncols), np.float32)
        acc0 = acc[0]; acc1 = acc[1]; acc2 = acc[2]; acc3 = acc[3]  # noqa: E702
        for t in range(ntiles):
            k = 4 * t
            _rows4(a, i0, t, b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1],
                   acc0, acc1, acc2, acc3)
        out[i0:i0 + 4, j0:j1] = acc
    else:
        acc1r = np.zeros(ncols, np.float32)
        for i in range(i0, m):
            acc1r[:] = 0.0
            for t in range(ntiles):
                k = 4 * t
                _row1(a, i, t, b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1], acc1r)
            out[i, j0:j1] = acc1r


@njit
def _block_tracked(a, b, out, hi, lo, i0, j0, ncols):  # type: ignore[no-untyped-def]
    """As :func:`_block`, also recording each accumulator's running extremes."""
    m = a.shape[0]
    ntiles = a.shape[1] // 4
    j1 = j0 + ncols
    rows = min(4, m - i0)
    acc = np.zeros((4, ncols), np.float32)
    top = np.zeros((4, ncols), np.float32)
    bot = np.zeros((4, ncols), np.float32)
    # short row blocks borrow row 0's operands for the missing rows and discard them
    sub = np.empty((4, a.shape[1]), np.float32)
    for r in range(4):
        sub[r, :] = a[i0 + min(r, rows - 1)]
    for t in range(ntiles):
        k = 4 * t
        _rows4_tracked(sub, 0, t, b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1],
                       acc, top, bot)
    for r in range(rows):
        out[i0 + r, j0:j1] = acc[r]
        hi[i0 + r, j0:j1] = top[r]
        lo[i0 + r, j0:j1] = bot[r]


@njit(parallel=True, cache=True)
def mac_blocked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Accumulators of ``a[g] @ b[g]`` under the tile rule; a: (G, M, K4), b: (G, K4, N)."""
    groups, m, _ = a.shape
    n = b.shape[2]
    out = np.empty((groups, m, n), np.float32)
    row_blocks = (m + 3) // 4
    col_blocks = (n + _COLS - 1) // _COLS
    per_group = row_blocks * col_blocks
    # column-block major, so a thread's consecutive blocks reuse one panel of b from cache
    for q in prange(groups * per_group):
        g = q // per_group
        r = q % per_group
        jb = r // row_blocks
        rb = r % row_blocks
        j0 = jb * _COLS
        _block(a[g], b[g], out[g], rb * 4, j0, min(_COLS, n - j0))
    return out


@njit(parallel=True, cache=True)
def mac_blocked_tracked(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`mac_blocked`, also returning each accumulator's running max and min."""
    groups, m, _ = a.shape
    n = b.shape[2]
    out = np.empty((groups, m, n), np.float32)
    hi = np.empty((groups, m, n), np.float32)
    lo = np.empty((groups, m, n), np.float32)
    row_blocks = (m + 3) // 4
    col_blocks = (n + _COLS - 1) // _COLS
    per_group = row_blocks * col_blocks
    for q in prange(groups * per_group):
        g = q // per_group
        r = q % per_group
        jb = r // row_blocks
        rb = r % row_blocks
        j0 = jb * _COLS
        _block_tracked(a[g], b[g], out[g], hi[g], lo[g], rb * 4, j0, min(_COLS, n - j0))
    return out, hi, lo


@njit(inline="always")
def _no_nan(x: np.float32) -> np.float32:
    """Indeterminate forms flush to +0."""
    return np.float32(0.0) if np.isnan(x) else x


@njit
def _reduce_one(a, b, threshold):  # type: ignore[no-untyped-def]
    """One output of the rule with every special case: non-finite operands, sticky overflow."""
    k_total = a.shape[0]
    acc = np.float32(0.0)
    for k0 in range(0, k_total, 4):
        s = np.float32(0.0)
        for k in range(k0, k0 + 4):
            p = _no_nan(a[k] * b[k])
            x = _no_nan(s + p)
            if np.isinf(x):
                s = x
            else:
                e = max(f32_bits(s) & _EXP, f32_bits(p) & _EXP)
                c = bits_f32(e + _TILE_MAGIC)
                s = (x + c) - c
        acc = _no_nan(acc + s)
        if abs(acc) >= threshold:
            acc = np.float32(np.copysign(np.inf, acc))
    return acc


@njit(parallel=True, cache=True)
def mac_exact_at(a: np.ndarray, b: np.ndarray, where: np.ndarray, threshold: float) -> np.ndarray:
    """Accumulators at the listed (g, i, j) positions, one reduction at a time, all cases exact."""
    out = np.empty(where.shape[0], np.float32)
    thr = np.float32(threshold)
    for q in prange(where.shape[0]):
        g = where[q, 0]
        i = where[q, 1]
        j = where[q, 2]
        out[q] = _reduce_one(a[g, i, :], np.ascontiguousarray(b[g, :, j]), thr)
    return out
