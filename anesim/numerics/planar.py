"""Planar-engine numerics: elementwise ops, pooling, and the fp16 post-scale and bias.

Every op is computed exactly (float64 holds any single result of two fp16 operands closely
enough) and rounded once to fp16, nearest even, with the engine's special-value rules:

* a NaN input becomes +inf before the op; a NaN result (inf − inf, 0 × inf, 0/0, √−1) is +0;
* subnormals pass through (the planar path keeps them, unlike the MAC);
* reciprocal and reciprocal square root drop the sign of a zero: 1/−0 = +inf;
* comparisons return 1.0 or 0.0.
Transcendentals the engine evaluates with lookup tables live in :mod:`anesim.numerics.lut`; the
``recip``, ``rsqrt`` and ``sqrt`` here are the correctly rounded ideal.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from anesim.numerics.fp16 import f16_to_f32, f32_to_f16, rn16_64, to_bits

BINARY_OPS: dict[str, int] = {
    "add": 0, "sub": 1, "mul": 2, "max": 3, "min": 4, "div": 5, "ave": 6,
    "eq": 7, "ne": 8, "gt": 9, "ge": 10, "lt": 11, "le": 12,
}
UNARY_OPS: dict[str, int] = {
    "copy": 20, "abs": 21, "neg": 22, "square": 23, "recip": 24, "rsqrt": 25, "sqrt": 26,
    "relu": 27, "relu6": 28, "floor": 29, "ceil": 30, "sign": 31, "frac": 32,
}


@njit(inline="always")
def _apply(code: int, a: np.float64, b: np.float64) -> np.float64:
    """One elementwise op on fp16 values held in float64, rounded once to the fp16 grid."""
    if code == 0:
        r = a + b
    elif code == 1:
        r = a - b
    elif code == 2:
        r = a * b
    elif code == 3:
        r = a if a >= b else b
    elif code == 4:
        r = a if a <= b else b
    elif code == 5:
        r = a / b if b != 0.0 else (np.nan if a == 0.0 else np.copysign(np.inf, a) * np.copysign(1.0, b))
    elif code == 6:
        r = rn16_64(a + b) * 0.5  # the sum is rounded first, then halved
    elif code == 7:
        r = 1.0 if a == b else 0.0
    elif code == 8:
        r = 1.0 if a != b else 0.0
    elif code == 9:
        r = 1.0 if a > b else 0.0
    elif code == 10:
        r = 1.0 if a >= b else 0.0
    elif code == 11:
        r = 1.0 if a < b else 0.0
    elif code == 12:
        r = 1.0 if a <= b else 0.0
    elif code == 20:
        r = a
    elif code == 21:
        r = abs(a)
    elif code == 22:
        r = -a
    elif code == 23:
        r = a * a
    elif code == 24:
        r = np.inf if a == 0.0 else 1.0 / a
    elif code == 25:
        r = np.inf if a == 0.0 else (0.0 if a < 0.0 else 1.0 / np.sqrt(a))
    elif code == 26:
        r = 0.0 if a <= 0.0 else np.sqrt(a)
    elif code == 27:
        r = a if a > 0.0 else 0.0
    elif code == 28:
        r = 0.0 if not a > 0.0 else (a if a < 6.0 else 6.0)
    elif code == 29:
        r = np.floor(a)
    elif code == 30:
        r = np.ceil(a)
    elif code == 31:
        r = 1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0)
    elif code == 32:
        r = a - np.floor(a) if np.isfinite(a) else np.nan
    else:
        r = np.nan
    if np.isnan(r):
        return 0.0
    return rn16_64(r)


@njit(parallel=True, cache=True)
def elementwise_kernel(code: int, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[i] = op(a[i], b[i]) on flat float32 arrays of fp16 values (NaN already +inf)."""
    for i in prange(out.shape[0]):
        out[i] = np.float32(_apply(code, np.float64(a[i]), np.float64(b[i])))


def planar_operand(bits: np.ndarray) -> np.ndarray:
    """fp16 bits to float32 values with NaN coerced to +inf (the input boundary rule)."""
    v = f16_to_f32(np.asarray(bits, dtype=np.uint16))
    v[np.isnan(v)] = np.inf
    return v


def elementwise(op: str, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """fp16 bits of ``op(a)`` or ``op(a, b)`` (numpy broadcasting) on fp16 bit arrays."""
    if op in BINARY_OPS:
        if b is None:
            raise ValueError(f"elementwise op {op!r} needs two operands")
        code = BINARY_OPS[op]
        av, bv = np.broadcast_arrays(planar_operand(a), planar_operand(b))
    elif op in UNARY_OPS:
        code = UNARY_OPS[op]
        av = planar_operand(a)
        bv = av
    else:
        raise ValueError(f"unknown elementwise op {op!r}; known: {sorted(BINARY_OPS) + sorted(UNARY_OPS)}")
    shape = av.shape
    out = np.empty(int(np.prod(shape)), np.float32)
    elementwise_kernel(code, np.ascontiguousarray(av).reshape(-1),
                       np.ascontiguousarray(bv).reshape(-1), out)
    return f32_to_f16(out).reshape(shape)


def scale_bias(y: np.ndarray, scale: np.ndarray | float | None = None,
               bias: np.ndarray | float | None = None, axis: int = 1) -> np.ndarray:
    """Per-channel post-scale then bias on fp16 bits, each one rounded fp16 op."""
    y = np.asarray(y, dtype=np.uint16)

    def along(v: np.ndarray | float) -> np.ndarray:
        arr = to_bits(np.asarray(v))
        if arr.ndim == 0:
            return arr
        shape = [1] * y.ndim
        shape[axis] = -1
        return arr.reshape(shape)

    if scale is not None:
        y = elementwise("mul", y, along(scale))
    if bias is not None:
        y = elementwise("add", y, along(bias))
    return y


def leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    """x where x > 0, else the fp16 product alpha·x."""
    slope = to_bits(np.float64(alpha))
    scaled = elementwise("mul", x, slope)
    positive = planar_operand(x) > 0
    return np.where(positive, np.asarray(x, np.uint16), scaled)


@njit(parallel=True, cache=True)
def pool_kernel(x: np.ndarray, mode: int, kh: int, kw: int, sy: int, sx: int, top: int,
                left: int, ho: int, wo: int, include_pad: bool, out: np.ndarray) -> None:
    """Max (0), min (1) or average (2) pooling of float32 planes x (P,H,W) into out (P,Ho,Wo)."""
    planes, h, w = x.shape
    for q in prange(planes * ho):
        p = q // ho
        oy = q % ho
        for ox in range(wo):
            best = -np.inf if mode == 0 else np.inf
            total = np.float32(0.0)
            count = 0
            for ky in range(kh):
                iy = oy * sy + ky - top
                for kx in range(kw):
                    ix = ox * sx + kx - left
                    if 0 <= iy < h and 0 <= ix < w:
                        v = x[p, iy, ix]
                        count += 1
                        if mode == 0:
                            best = v if v > best else best
                        elif mode == 1:
                            best = v if v < best else best
                        else:
                            total = np.float32(total + v)  # the wide (float32) running sum
            if mode == 2:
                n = kh * kw if include_pad else max(count, 1)
                recip = rn16_64(1.0 / n)  # the divisor is applied as an fp16 reciprocal
                r = np.float64(total) * recip
                out[p, oy, ox] = np.float32(0.0 if np.isnan(r) else rn16_64(r))
            else:
                out[p, oy, ox] = np.float32(best if count > 0 else 0.0)  # all padding: 0


_POOL_MODES = {"max": 0, "min": 1, "avg": 2}


def pool(x: np.ndarray, mode: str, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
         padding: tuple[int, int, int, int] = (0, 0, 0, 0), include_pad: bool = False) -> np.ndarray:
    """Max, min or average pooling of fp16 bits x (..., H, W); padding never wins a max or min."""
    if mode not in _POOL_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; known: {sorted(_POOL_MODES)}")
    x = np.asarray(x, dtype=np.uint16)
    kh, kw = kernel
    sy, sx = stride or kernel
    top, bottom, left, right = padding
    h, w = x.shape[-2:]
    ho = (h + top + bottom - kh) // sy + 1
    wo = (w + left + right - kw) // sx + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"pool: window {kh}x{kw} does not fit the padded {h}x{w} input")
    lead = x.shape[:-2]
    planes = planar_operand(x).reshape(-1, h, w)
    out = np.empty((planes.shape[0], ho, wo), np.float32)
    pool_kernel(planes, _POOL_MODES[mode], kh, kw, sy, sx, top, left, ho, wo, include_pad, out)
    return f32_to_f16(out).reshape(lead + (ho, wo))


@njit(parallel=True, cache=True)
def reduce_kernel(x: np.ndarray, mode: int, out: np.ndarray) -> None:
    """Per row of float32 x (rows, n): max (0), or the float32 running sum in index order (1)."""
    for r in prange(x.shape[0]):
        if mode == 0:
            best = -np.inf
            for i in range(x.shape[1]):
                best = x[r, i] if x[r, i] > best else best
            out[r] = best
        else:
            total = np.float32(0.0)
            for i in range(x.shape[1]):
                total = np.float32(total + x[r, i])  # the wide (float32) accumulator
            out[r] = total


_REDUCE_MODES = ("max", "sum", "recip_sum")


def reduce_rows(x: np.ndarray, mode: str) -> np.ndarray:
    """fp16 bits of a reduction along the last axis (kept, length 1): max, sum, or 1/sum.

    The sum runs in float32 in index order and rounds once to fp16; ``recip_sum`` is then the
    fp16 reciprocal of that rounded sum (two roundings; the order is decided, see
    docs/numerics.md).
    """
    if mode not in _REDUCE_MODES:
        raise ValueError(f"unknown reduction {mode!r}; known: {list(_REDUCE_MODES)}")
    x = np.asarray(x, dtype=np.uint16)
    v = planar_operand(x)
    rows = np.ascontiguousarray(v.reshape(-1, v.shape[-1] if v.ndim else 1))
    out = np.empty(rows.shape[0], np.float32)
    reduce_kernel(rows, 0 if mode == "max" else 1, out)
    y = f32_to_f16(out).reshape(x.shape[:-1] + (1,))
    if mode == "recip_sum":
        y = elementwise("recip", y)
    return y
