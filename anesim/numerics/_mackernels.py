"""numba kernels of the MAC reduction rule (see :mod:`anesim.numerics.rules`).

Operands arrive as float32 arrays that already hold fp16 values (NaN coerced, subnormals
flushed as the rules ask), with the reduction axis padded to a multiple of four. Every kernel
returns the float32 accumulator; rounding at the output port happens in :mod:`.mac`.

The hot loop works on a block of four output rows by ``_COLS`` output columns, keeping the
accumulator rows in L1 so each row of ``b`` loaded serves four rows of products. A tile is a
chain of three dependent roundings (about 35 cycles of latency for a few dozen instructions), so
the fast kernel runs on explicit vectors of ``LANES`` columns (8, or 16 on AVX-512 hosts;
:mod:`._simd`) and software-pipelines each tile across column vectors: one loop iteration does
the first addition for the vector at column j, the second for j - LANES and the third (with the
accumulation) for j - 2 * LANES, twelve independent vector chains in all.
Tile rounding uses the magic-constant trick: adding and subtracting ``1.5 * 2**(E + 12)``
rounds a float32 to the grid ``2**(E - 11)`` with the adder's own nearest-even rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from anesim.numerics._bits import HAVE_F16C, bits_f32, f2h_f16c, f32_bits, h2f_f16c
from anesim.numerics._simd import (EXP_MASK, LANES, TILE_MAGIC, vadd, vload, vmul, vsplat, vstore,
                                   vtile_add)
from anesim.numerics.fp16 import f2h_soft, h2f_soft

_EXP = np.int32(EXP_MASK)
_TILE_MAGIC = np.int32(TILE_MAGIC)
_COLS = 1024  # output columns per block: 4 rows x 1024 float32 accumulators stay in L1
_ROWS = 4


@njit(inline="always")
def _round_tile(s: np.float32, p: np.float32, x: np.float32) -> np.float32:
    """x = s + p (float32) rounded on the grid 2**(E - 11), E the larger addend's exponent."""
    c = bits_f32(max(f32_bits(s) & _EXP, f32_bits(p) & _EXP) + _TILE_MAGIC)
    return (x + c) - c


@njit(inline="always")
def _step(s: np.float32, a: np.float32, b: np.float32) -> np.float32:
    """One tile addition: s + a*b in float32, rounded on the grid set by the larger addend."""
    p = a * b
    return _round_tile(s, p, s + p)


@njit(inline="always")
def _tile(a0, a1, a2, a3, b0, b1, b2, b3):  # type: ignore[no-untyped-def]
    """The partial of one four-lane tile: the first product, then three rounded additions."""
    s = a0 * b0
    s = _step(s, a1, b1)
    s = _step(s, a2, b2)
    return _step(s, a3, b3)


@njit
def _rows4(a, i, k, b0, b1, b2, b3, acc):  # type: ignore[no-untyped-def]
    """Add the tile at lanes k..k+3 of rows i..i+3 of ``a`` into four accumulator rows."""
    a00 = a[i, k]; a01 = a[i, k + 1]; a02 = a[i, k + 2]; a03 = a[i, k + 3]  # noqa: E702
    a10 = a[i + 1, k]; a11 = a[i + 1, k + 1]; a12 = a[i + 1, k + 2]; a13 = a[i + 1, k + 3]  # noqa: E702
    a20 = a[i + 2, k]; a21 = a[i + 2, k + 1]; a22 = a[i + 2, k + 2]; a23 = a[i + 2, k + 3]  # noqa: E702
    a30 = a[i + 3, k]; a31 = a[i + 3, k + 1]; a32 = a[i + 3, k + 2]; a33 = a[i + 3, k + 3]  # noqa: E702
    for j in range(acc.shape[1]):
        x0 = b0[j]; x1 = b1[j]; x2 = b2[j]; x3 = b3[j]  # noqa: E702
        # each step is issued for all four rows before the next: four independent chains
        s0 = a00 * x0; s1 = a10 * x0; s2 = a20 * x0; s3 = a30 * x0  # noqa: E702
        s0 = _step(s0, a01, x1); s1 = _step(s1, a11, x1)  # noqa: E702
        s2 = _step(s2, a21, x1); s3 = _step(s3, a31, x1)  # noqa: E702
        s0 = _step(s0, a02, x2); s1 = _step(s1, a12, x2)  # noqa: E702
        s2 = _step(s2, a22, x2); s3 = _step(s3, a32, x2)  # noqa: E702
        s0 = _step(s0, a03, x3); s1 = _step(s1, a13, x3)  # noqa: E702
        s2 = _step(s2, a23, x3); s3 = _step(s3, a33, x3)  # noqa: E702
        acc[0, j] += s0; acc[1, j] += s1; acc[2, j] += s2; acc[3, j] += s3  # noqa: E702


@njit
def _row1(a, i, k, b0, b1, b2, b3, acc):  # type: ignore[no-untyped-def]
    """Add the tile at lanes k..k+3 of row i of ``a`` into one accumulator row."""
    a0 = a[i, k]; a1 = a[i, k + 1]; a2 = a[i, k + 2]; a3 = a[i, k + 3]  # noqa: E702
    for j in range(acc.shape[0]):
        acc[j] += _tile(a0, a1, a2, a3, b0[j], b1[j], b2[j], b3[j])


@njit(inline="always")
def _first4(a0, a1, a2, a3, c0, c1, c2, c3, x0, x1):  # type: ignore[no-untyped-def]
    """Lanes 0 and 1 of a tile for four rows: the exact first product plus one rounded add."""
    return (vtile_add(vmul(a0, x0), vmul(c0, x1)), vtile_add(vmul(a1, x0), vmul(c1, x1)),
            vtile_add(vmul(a2, x0), vmul(c2, x1)), vtile_add(vmul(a3, x0), vmul(c3, x1)))


@njit(inline="always")
def _next4(s, a0, a1, a2, a3, x):  # type: ignore[no-untyped-def]
    """One more lane of a tile for four rows."""
    return (vtile_add(s[0], vmul(a0, x)), vtile_add(s[1], vmul(a1, x)),
            vtile_add(s[2], vmul(a2, x)), vtile_add(s[3], vmul(a3, x)))


@njit(inline="always")
def _accumulate4(acc, w, j, s):  # type: ignore[no-untyped-def]
    """Add four rows of tile partials into the accumulator rows (stride w) at columns j.."""
    vstore(acc, j, vadd(vload(acc, j), s[0]))
    vstore(acc, w + j, vadd(vload(acc, w + j), s[1]))
    vstore(acc, 2 * w + j, vadd(vload(acc, 2 * w + j), s[2]))
    vstore(acc, 3 * w + j, vadd(vload(acc, 3 * w + j), s[3]))


@njit
def _rows4_vec(a, i, k, b, o, ldb, acc, w, nv):  # type: ignore[no-untyped-def]
    """As :func:`_rows4` on nv whole column vectors: lane l of the tile is b[o + l*ldb:].

    Three stages run in one loop, each on its own column vector, so the chains of one tile
    overlap with those of the next two vectors instead of waiting on each other.
    """
    a00 = vsplat(a[i, k]); a10 = vsplat(a[i + 1, k])  # noqa: E702
    a20 = vsplat(a[i + 2, k]); a30 = vsplat(a[i + 3, k])  # noqa: E702
    a01 = vsplat(a[i, k + 1]); a11 = vsplat(a[i + 1, k + 1])  # noqa: E702
    a21 = vsplat(a[i + 2, k + 1]); a31 = vsplat(a[i + 3, k + 1])  # noqa: E702
    a02 = vsplat(a[i, k + 2]); a12 = vsplat(a[i + 1, k + 2])  # noqa: E702
    a22 = vsplat(a[i + 2, k + 2]); a32 = vsplat(a[i + 3, k + 2])  # noqa: E702
    a03 = vsplat(a[i, k + 3]); a13 = vsplat(a[i + 1, k + 3])  # noqa: E702
    a23 = vsplat(a[i + 2, k + 3]); a33 = vsplat(a[i + 3, k + 3])  # noqa: E702
    o1 = o + ldb
    o2 = o + 2 * ldb
    o3 = o + 3 * ldb
    s1 = _first4(a00, a10, a20, a30, a01, a11, a21, a31, vload(b, o), vload(b, o1))
    s2 = _next4(s1, a02, a12, a22, a32, vload(b, o2))
    if nv == 1:
        _accumulate4(acc, w, 0, _next4(s2, a03, a13, a23, a33, vload(b, o3)))
        return
    s1 = _first4(a00, a10, a20, a30, a01, a11, a21, a31, vload(b, o + LANES),
                 vload(b, o1 + LANES))
    # invariant at the top: s2 holds two lanes' worth for column j - 2*LANES, s1 one for j - LANES
    for v in range(2, nv):
        j = v * LANES
        _accumulate4(acc, w, j - 2 * LANES,
                     _next4(s2, a03, a13, a23, a33, vload(b, o3 + j - 2 * LANES)))
        s2 = _next4(s1, a02, a12, a22, a32, vload(b, o2 + j - LANES))
        s1 = _first4(a00, a10, a20, a30, a01, a11, a21, a31, vload(b, o + j), vload(b, o1 + j))
    j = nv * LANES
    _accumulate4(acc, w, j - 2 * LANES,
                 _next4(s2, a03, a13, a23, a33, vload(b, o3 + j - 2 * LANES)))
    s2 = _next4(s1, a02, a12, a22, a32, vload(b, o2 + j - LANES))
    _accumulate4(acc, w, j - LANES, _next4(s2, a03, a13, a23, a33, vload(b, o3 + j - LANES)))


@njit
def _block4(a, b, i0, j0, j1, out):  # type: ignore[no-untyped-def]
    """out[i0:i0+4, j0:j1] = accumulators of rows i0..i0+3 of ``a`` against ``b``."""
    lanes = a.shape[1]
    n = b.shape[1]
    nv = (j1 - j0) // LANES
    jv = j0 + nv * LANES
    if nv > 0:
        w = nv * LANES
        acc = np.zeros(_ROWS * w, np.float32)
        flat = b.reshape(-1)
        for k in range(0, lanes, 4):
            _rows4_vec(a, i0, k, flat, k * n + j0, n, acc, w, nv)
        for r in range(_ROWS):
            out[i0 + r, j0:jv] = acc[r * w:(r + 1) * w]
    if jv < j1:  # the last few columns, not a whole vector
        tail = np.zeros((_ROWS, j1 - jv), np.float32)
        for k in range(0, lanes, 4):
            _rows4(a, i0, k, b[k, jv:j1], b[k + 1, jv:j1], b[k + 2, jv:j1], b[k + 3, jv:j1], tail)
        out[i0:i0 + _ROWS, jv:j1] = tail


@njit
def _rows4_tracked(a, i, k, b0, b1, b2, b3, acc, hi, lo):  # type: ignore[no-untyped-def]
    """As :func:`_rows4`, also keeping the running maximum and minimum of each accumulator."""
    a00 = a[i, k]; a01 = a[i, k + 1]; a02 = a[i, k + 2]; a03 = a[i, k + 3]  # noqa: E702
    a10 = a[i + 1, k]; a11 = a[i + 1, k + 1]; a12 = a[i + 1, k + 2]; a13 = a[i + 1, k + 3]  # noqa: E702
    a20 = a[i + 2, k]; a21 = a[i + 2, k + 1]; a22 = a[i + 2, k + 2]; a23 = a[i + 2, k + 3]  # noqa: E702
    a30 = a[i + 3, k]; a31 = a[i + 3, k + 1]; a32 = a[i + 3, k + 2]; a33 = a[i + 3, k + 3]  # noqa: E702
    for j in range(acc.shape[1]):
        x0 = b0[j]; x1 = b1[j]; x2 = b2[j]; x3 = b3[j]  # noqa: E702
        s0 = a00 * x0; s1 = a10 * x0; s2 = a20 * x0; s3 = a30 * x0  # noqa: E702
        s0 = _step(s0, a01, x1); s1 = _step(s1, a11, x1)  # noqa: E702
        s2 = _step(s2, a21, x1); s3 = _step(s3, a31, x1)  # noqa: E702
        s0 = _step(s0, a02, x2); s1 = _step(s1, a12, x2)  # noqa: E702
        s2 = _step(s2, a22, x2); s3 = _step(s3, a32, x2)  # noqa: E702
        s0 = _step(s0, a03, x3); s1 = _step(s1, a13, x3)  # noqa: E702
        s2 = _step(s2, a23, x3); s3 = _step(s3, a33, x3)  # noqa: E702
        v0 = acc[0, j] + s0; v1 = acc[1, j] + s1; v2 = acc[2, j] + s2; v3 = acc[3, j] + s3  # noqa: E702
        acc[0, j] = v0; acc[1, j] = v1; acc[2, j] = v2; acc[3, j] = v3  # noqa: E702
        hi[0, j] = max(hi[0, j], v0); hi[1, j] = max(hi[1, j], v1)  # noqa: E702
        hi[2, j] = max(hi[2, j], v2); hi[3, j] = max(hi[3, j], v3)  # noqa: E702
        lo[0, j] = min(lo[0, j], v0); lo[1, j] = min(lo[1, j], v1)  # noqa: E702
        lo[2, j] = min(lo[2, j], v2); lo[3, j] = min(lo[3, j], v3)  # noqa: E702


@njit
def _block_tracked(a, b, out, hi, lo, i0, j0, ncols):  # type: ignore[no-untyped-def]
    """One block with the accumulators' running extremes; short row blocks repeat a row."""
    m = a.shape[0]
    lanes = a.shape[1]
    j1 = j0 + ncols
    rows = min(_ROWS, m - i0)
    sub = np.empty((_ROWS, lanes), np.float32)
    for r in range(_ROWS):
        sub[r] = a[i0 + min(r, rows - 1)]
    acc = np.zeros((_ROWS, ncols), np.float32)
    top = np.zeros((_ROWS, ncols), np.float32)
    bot = np.zeros((_ROWS, ncols), np.float32)
    for k in range(0, lanes, 4):
        _rows4_tracked(sub, 0, k, b[k, j0:j1], b[k + 1, j0:j1], b[k + 2, j0:j1], b[k + 3, j0:j1],
                       acc, top, bot)
    out[i0:i0 + rows, j0:j1] = acc[:rows]
    hi[i0:i0 + rows, j0:j1] = top[:rows]
    lo[i0:i0 + rows, j0:j1] = bot[:rows]


@njit(parallel=True, cache=True)
def mac_blocked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Accumulators of ``a[g] @ b[g]`` under the tile rule; a: (G, M, K4), b: (G, K4, N)."""
    groups, m, lanes = a.shape
    n = b.shape[2]
    out = np.empty((groups, m, n), np.float32)
    row_blocks = (m + _ROWS - 1) // _ROWS
    col_blocks = (n + _COLS - 1) // _COLS
    per_group = row_blocks * col_blocks
    # column-block major, so a thread's consecutive blocks reuse one panel of b from cache
    for q in prange(groups * per_group):
        g = q // per_group
        r = q % per_group
        jb = r // row_blocks
        rb = r % row_blocks
        j0 = jb * _COLS
        j1 = min(n, j0 + _COLS)
        if m >= _ROWS:
            # a short last block moves up over its neighbour's rows, recomputing the same values
            _block4(a[g], b[g], min(rb * _ROWS, m - _ROWS), j0, j1, out[g])
        else:  # fewer than four rows in all: one at a time
            ag = a[g]
            bg = b[g]
            row = np.zeros(j1 - j0, np.float32)
            for i in range(m):
                row[:] = 0.0
                for k in range(0, lanes, 4):
                    _row1(ag, i, k, bg[k, j0:j1], bg[k + 1, j0:j1], bg[k + 2, j0:j1],
                          bg[k + 3, j0:j1], row)
                out[g, i, j0:j1] = row
    return out


@njit(parallel=True, cache=True)
def mac_blocked_tracked(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`mac_blocked`, also returning each accumulator's running max and min."""
    groups, m, _ = a.shape
    n = b.shape[2]
    out = np.empty((groups, m, n), np.float32)
    hi = np.empty((groups, m, n), np.float32)
    lo = np.empty((groups, m, n), np.float32)
    row_blocks = (m + _ROWS - 1) // _ROWS
    col_blocks = (n + _COLS - 1) // _COLS
    per_group = row_blocks * col_blocks
    for q in prange(groups * per_group):
        g = q // per_group
        r = q % per_group
        jb = r // row_blocks
        rb = r % row_blocks
        j0 = jb * _COLS
        _block_tracked(a[g], b[g], out[g], hi[g], lo[g], rb * _ROWS, j0, min(_COLS, n - j0))
    return out, hi, lo


@njit(inline="always")
def _no_nan(x: np.float32) -> np.float32:
    """Indeterminate forms flush to +0."""
    return np.float32(0.0) if np.isnan(x) else x


@njit
def _reduce_one(a, b, threshold):  # type: ignore[no-untyped-def]
    """One output of the rule with every special case: non-finite operands, sticky overflow."""
    lanes = a.shape[0]
    acc = np.float32(0.0)
    for k0 in range(0, lanes, 4):
        s = _no_nan(a[k0] * b[k0])
        for k in range(k0 + 1, k0 + 4):
            p = _no_nan(a[k] * b[k])
            x = _no_nan(s + p)
            if np.isinf(x):
                s = x
            else:
                s = _round_tile(s, p, x)
        acc = _no_nan(acc + s)
        if abs(acc) >= threshold:
            acc = np.float32(np.copysign(np.inf, acc))
    return acc


@njit(cache=True)  # memory-bound or rare: a serial loop compiles much faster
def mac_exact_at(a: np.ndarray, b: np.ndarray, where: np.ndarray, threshold: float) -> np.ndarray:
    """Accumulators at the listed (g, i, j) positions, one reduction at a time, all cases exact."""
    out = np.empty(where.shape[0], np.float32)
    thr = np.float32(threshold)
    for q in range(where.shape[0]):
        g = where[q, 0]
        i = where[q, 1]
        j = where[q, 2]
        out[q] = _reduce_one(a[g, i, :], np.ascontiguousarray(b[g, :, j]), thr)
    return out


@njit(inline="always")
def _operand(x: np.float32, flush_subnormals: bool) -> np.float32:
    """An fp16 value as the MAC array takes it: NaN → +inf, subnormals → +0 if asked."""
    if np.isnan(x):
        return np.float32(np.inf)
    if flush_subnormals and abs(x) < np.float32(2.0**-14):
        return np.float32(0.0)
    return x


@njit(inline="always")
def _port(bits: np.uint16, flush_subnormals: bool) -> np.uint16:
    """An fp16 result as the output port emits it: no -0, subnormals → +0 if asked."""
    if (bits & np.uint16(0x7FFF)) == 0:
        return np.uint16(0)
    if flush_subnormals and (bits & np.uint16(0x7C00)) == 0:
        return np.uint16(0)
    return bits


_CHUNK = 1 << 15  # elements per task of the elementwise passes below


@njit(parallel=True, cache=True)
def operand_soft(src: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
    """dst = MAC operand values of the flat fp16 bits ``src`` (integer conversion)."""
    n = src.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            dst[i] = _operand(h2f_soft(src[i]), flush_subnormals)


@njit(parallel=True, cache=True)
def port_soft(acc: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
    """dst = fp16 bits the output port emits for the flat float32 accumulators ``acc``."""
    n = acc.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            dst[i] = _port(f2h_soft(acc[i]), flush_subnormals)


if HAVE_F16C:

    @njit(parallel=True, cache=True)
    def operand_f16c(src: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
        """As :func:`operand_soft`, converting with F16C."""
        n = src.shape[0]
        for c in prange((n + _CHUNK - 1) // _CHUNK):
            for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
                dst[i] = _operand(h2f_f16c(src[i]), flush_subnormals)

    @njit(parallel=True, cache=True)
    def port_f16c(acc: np.ndarray, dst: np.ndarray, flush_subnormals: bool) -> None:
        """As :func:`port_soft`, converting with F16C."""
        n = acc.shape[0]
        for c in prange((n + _CHUNK - 1) // _CHUNK):
            for i in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
                dst[i] = _port(f2h_f16c(acc[i]), flush_subnormals)

else:  # pragma: no cover - only on CPUs without F16C
    operand_f16c = operand_soft
    port_f16c = port_soft


@njit(parallel=True, cache=True)
def row_stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (g, i) of a (G, M, K): sum and max of the finite |a|, and whether any entry is ±inf."""
    groups, m, k = a.shape
    total = np.zeros((groups, m), np.float64)
    peak = np.zeros((groups, m), np.float64)
    bad = np.zeros((groups, m), np.bool_)
    for q in prange(groups * m):
        g = q // m
        i = q % m
        s = 0.0
        top = 0.0
        inf = False
        for kk in range(k):
            x = abs(np.float64(a[g, i, kk]))
            if x == np.inf:
                inf = True
            else:
                s += x
                top = max(top, x)
        total[g, i] = s
        peak[g, i] = top
        bad[g, i] = inf
    return total, peak, bad


_STAT_COLS = 128  # columns per task of col_stats


@njit(parallel=True, cache=True)
def col_stats(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (g, j) of b (G, K, N): sum and max of the finite |b|, and whether any entry is ±inf."""
    groups, k, n = b.shape
    total = np.zeros((groups, n), np.float64)
    peak = np.zeros((groups, n), np.float64)
    bad = np.zeros((groups, n), np.bool_)
    blocks = (n + _STAT_COLS - 1) // _STAT_COLS
    # each task owns a band of columns and walks the rows in order, as the sums require
    for q in prange(groups * blocks):
        g = q // blocks
        j0 = (q % blocks) * _STAT_COLS
        j1 = min(n, j0 + _STAT_COLS)
        for kk in range(k):
            for j in range(j0, j1):
                x = abs(np.float64(b[g, kk, j]))
                if x == np.inf:
                    bad[g, j] = True
                else:
                    total[g, j] += x
                    peak[g, j] = max(peak[g, j], x)
    return total, peak, bad
