"""Plain-numpy reference of the engine's numeric rules: slow, written to be read, no numba.

Every fast kernel in :mod:`anesim.numerics` must agree with these functions bit for bit. The
code here deliberately avoids the kernels' bit tricks: it rounds with ``np.round`` on scaled
float64 values and finds exponents with ``np.frexp``, so a shared mistake is unlikely.
All arrays in and out are fp16 bit patterns (``uint16``) unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from anesim.numerics.rules import M1_RULES, TILE_BITS, TILE_LANES, WIDTH_SLICE_GAIN, MacRules

if TYPE_CHECKING:  # the reference only reads a Lut's fields; it never runs the kernels
    from anesim.numerics.lut import Lut

F16 = np.float16
SEGMENTS = 32  # a lookup table's 33 knots bound 32 segments


def values(bits: np.ndarray) -> np.ndarray:
    """fp16 bit patterns to float64 values (NaN stays NaN)."""
    return np.asarray(bits, dtype=np.uint16).view(F16).astype(np.float64)


def bits_of(x: np.ndarray) -> np.ndarray:
    """Round float64 values to fp16 (numpy rounds to nearest even) and return the bits."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float64).astype(F16).view(np.uint16)


def round16(x: np.ndarray) -> np.ndarray:
    """Round float64 values onto the fp16 grid, returned as float64."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float64).astype(F16).astype(np.float64)


def coerce_input(x: np.ndarray) -> np.ndarray:
    """The input boundary of every unit: NaN becomes +inf."""
    return np.where(np.isnan(x), np.inf, x)


def flush_nan(x: np.ndarray) -> np.ndarray:
    """Indeterminate results (NaN) become +0."""
    return np.where(np.isnan(x), 0.0, x)


# --------------------------------------------------------------------------------------- MAC


def mac_operand(bits: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits to the float64 values the MAC multiplies."""
    v = coerce_input(values(bits))
    if rules.flush_subnormals:
        v = np.where(np.abs(v) < 2.0**-14, 0.0, v)
    return v


def _exponent(x: np.ndarray) -> np.ndarray:
    """floor(log2|x|) for non-zero finite x (0 for zero)."""
    _, e = np.frexp(x)
    return e - 1


def tile_round(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """One tile step on float32 arrays: s + p in float32, then onto the larger addend's grid."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = flush_nan((s + p).astype(np.float32)).astype(np.float64)
        big = np.maximum(np.abs(s.astype(np.float64)), np.abs(p.astype(np.float64)))
        finite = np.isfinite(x) & np.isfinite(big)
        e = _exponent(np.where(finite, big, 1.0))
        quantum = np.ldexp(1.0, e - (TILE_BITS - 1))
        rounded = np.round(np.where(finite, x, 0.0) / quantum) * quantum
    return np.where(finite, rounded, x).astype(np.float32)


def reduce(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """Accumulators (float64, overflow ±inf) of a @ b for MAC operand values a (M,K), b (K,N)."""
    m, k = a.shape
    n = b.shape[1]
    k4 = -(-k // TILE_LANES) * TILE_LANES
    a4 = np.zeros((m, k4)); a4[:, :k] = a  # noqa: E702 - zero lanes pad the last tile
    b4 = np.zeros((k4, n)); b4[:k, :] = b  # noqa: E702
    threshold = rules.overflow_threshold
    acc = np.zeros((m, n), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(k4 // TILE_LANES):
            for lane in range(TILE_LANES):
                kk = t * TILE_LANES + lane
                p = flush_nan(np.outer(a4[:, kk], b4[kk, :])).astype(np.float32)  # exact
                s = p if lane == 0 else tile_round(s, p)  # the first product enters unrounded
            acc = flush_nan((acc + s).astype(np.float32)).astype(np.float32)
            over = np.isfinite(acc) & (np.abs(acc) >= threshold)
            acc = np.where(over, np.copysign(np.inf, acc), acc).astype(np.float32)
    return acc.astype(np.float64)


def port(acc: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """Output port: round to fp16, flush subnormal results, never −0."""
    out = round16(acc)
    if rules.flush_subnormals:
        out = np.where(np.abs(out) < 2.0**-14, 0.0, out)
    out = np.where(out == 0.0, 0.0, out)  # +0, also for a −0
    return bits_of(out)


def matmul(a: np.ndarray, b: np.ndarray, rules: MacRules = M1_RULES) -> np.ndarray:
    """fp16 bits of a @ b for 2-D fp16 bit arrays."""
    return port(reduce(mac_operand(a, rules), mac_operand(b, rules), rules), rules)


def im2col(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
           padding: tuple[int, int, int, int], dilation: tuple[int, int],
           pad_value: float = 0.0) -> tuple[np.ndarray, int, int]:
    """Lane matrix of one image x (C,H,W) values: rows in lattice order (ky, kx, c), cols pixels."""
    c, h, w = x.shape
    top, bottom, left, right = padding
    xp = np.full((c, h + top + bottom, w + left + right), pad_value)
    xp[:, top:top + h, left:left + w] = x
    ho = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    rows = []
    for ky in range(kh):
        for kx in range(kw):
            for ci in range(c):
                plane = np.empty((ho, wo))
                for oy in range(ho):
                    for ox in range(wo):
                        plane[oy, ox] = xp[ci, oy * stride[0] + ky * dilation[0],
                                           ox * stride[1] + kx * dilation[1]]
                rows.append(plane.reshape(-1))
    return np.array(rows).reshape(kh * kw * c, ho * wo), ho, wo


def conv2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, int] = (1, 1),
           padding: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: tuple[int, int] = (1, 1),
           groups: int = 1, rules: MacRules = M1_RULES, pad_value: float = 0.0) -> np.ndarray:
    """fp16 bits of a grouped 2-D convolution of x (N,C,H,W) with w (O,C/groups,kh,kw)."""
    xv = mac_operand(x, rules)
    wv = mac_operand(w, rules)
    n, c, _, _ = xv.shape
    o, cg, kh, kw = wv.shape
    og = o // groups
    outs = []
    for img in range(n):
        per_group = []
        for g in range(groups):
            lanes, ho, wo = im2col(xv[img, g * cg:(g + 1) * cg], kh, kw, stride, padding,
                                   dilation, pad_value)
            weights = wv[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, kh * kw * cg)
            per_group.append(reduce(weights, lanes, rules).reshape(og, ho, wo))
        outs.append(np.concatenate(per_group, axis=0))
    return port(np.array(outs), rules)


# --------------------------------------------------------------------------- fp16 datapath


def scale_bias(y: np.ndarray, scale: np.ndarray | None, bias: np.ndarray | None,
               axis: int = 1) -> np.ndarray:
    """Per-channel post-scale then bias, each one fp16 operation: RN16(RN16(y*s) + b)."""
    v = values(y)
    shape = [1] * v.ndim
    shape[axis] = -1
    with np.errstate(invalid="ignore", over="ignore"):
        if scale is not None:
            v = flush_nan(round16(v * values(scale).reshape(shape)))
        if bias is not None:
            v = flush_nan(round16(v + values(bias).reshape(shape)))
    return bits_of(v)


def width_slice(x: np.ndarray, begin: int, end: int | None = None, step: int = 1) -> np.ndarray:
    """Slice the last axis; a non-zero begin routes through the ×16 crop path, overflowing."""
    v = values(x)[..., begin:end:step]
    if begin != 0:
        with np.errstate(over="ignore", invalid="ignore"):
            boosted = round16(v * WIDTH_SLICE_GAIN)
        v = np.where(np.isinf(boosted) & np.isfinite(v), np.copysign(np.inf, v), v)
    return bits_of(v)



# ------------------------------------------------------------------------------ planar engine


def elementwise(op: str, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """fp16 bits of one planar op, following the rules in :mod:`anesim.numerics.planar`."""
    x = coerce_input(values(a))
    y = coerce_input(values(b)) if b is not None else x
    x, y = np.broadcast_arrays(x, y)
    with np.errstate(all="ignore"):
        table = {
            "add": lambda: x + y,
            "sub": lambda: x - y,
            "mul": lambda: x * y,
            "max": lambda: np.where(x >= y, x, y),
            "min": lambda: np.where(x <= y, x, y),
            "div": lambda: x / y,
            "ave": lambda: round16(x + y) * 0.5,
            "eq": lambda: (x == y) * 1.0,
            "ne": lambda: (x != y) * 1.0,
            "gt": lambda: (x > y) * 1.0,
            "ge": lambda: (x >= y) * 1.0,
            "lt": lambda: (x < y) * 1.0,
            "le": lambda: (x <= y) * 1.0,
            "copy": lambda: x,
            "abs": lambda: np.abs(x),
            "neg": lambda: -x,
            "square": lambda: x * x,
            "recip": lambda: np.where(x == 0, np.inf, 1.0 / x),
            "rsqrt": lambda: np.where(x == 0, np.inf, np.where(x < 0, 0.0, 1.0 / np.sqrt(x))),
            "sqrt": lambda: np.where(x <= 0, 0.0, np.sqrt(x)),
            "relu": lambda: np.where(x > 0, x, 0.0),
            "relu6": lambda: np.where(x > 0, np.minimum(x, 6.0), 0.0),
            "floor": lambda: np.floor(x),
            "ceil": lambda: np.ceil(x),
            "sign": lambda: np.sign(x) + 0.0,
            "frac": lambda: x - np.floor(x),
        }
        if op not in table:
            raise ValueError(f"unknown elementwise op {op!r}")
        return bits_of(flush_nan(table[op]()))


def pool(x: np.ndarray, mode: str, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
         padding: tuple[int, int, int, int] = (0, 0, 0, 0), include_pad: bool = False) -> np.ndarray:
    """fp16 bits of max/min/avg pooling over the last two axes; padding never wins max/min."""
    v = coerce_input(values(x))
    kh, kw = kernel
    sy, sx = stride or kernel
    top, bottom, left, right = padding
    h, w = v.shape[-2:]
    ho = (h + top + bottom - kh) // sy + 1
    wo = (w + left + right - kw) // sx + 1
    out = np.zeros(v.shape[:-2] + (ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            taps = [(oy * sy + ky - top, ox * sx + kx - left)
                    for ky in range(kh) for kx in range(kw)]
            inside = [(iy, ix) for iy, ix in taps if 0 <= iy < h and 0 <= ix < w]
            if not inside:  # a window wholly in the padding yields 0
                out[..., oy, ox] = 0.0
                continue
            window = np.stack([v[..., iy, ix] for iy, ix in inside], axis=-1)
            if mode == "max":
                out[..., oy, ox] = window.max(axis=-1)
            elif mode == "min":
                out[..., oy, ox] = window.min(axis=-1)
            else:
                total = np.zeros(window.shape[:-1], np.float32)
                for i in range(window.shape[-1]):
                    total = (total + window[..., i].astype(np.float32)).astype(np.float32)
                count = kh * kw if include_pad else len(inside)
                with np.errstate(invalid="ignore"):
                    out[..., oy, ox] = flush_nan(total.astype(np.float64) * round16(1.0 / count))
    return bits_of(out)


# ------------------------------------------------------------------------------ lookup tables


def apply_lut(x: np.ndarray, lut: Lut) -> np.ndarray:
    """fp16 bits of a :class:`anesim.numerics.lut.Lut` applied to fp16 bits, step by step.

    The steps are the numbered ones of docs/numerics.md (*Activation lookup tables*): each
    input takes the first outcome that decides it (positive-only fold, then the clamps), the
    rest go through the argument mode and the table; sign and post-processing apply to all.
    """
    # 1. NaN becomes +inf
    v = coerce_input(values(x))
    with np.errstate(all="ignore"):
        # 2. pre-scale, one fp16 rounding
        if lut.pre_scale != 1.0:
            v = flush_nan(round16(v * lut.pre_scale))
        # 3. input fold: odd/even see |x| (odd remembers the sign); positive-only zeroes
        #    every negative input (−0 is not negative: nothing is folded for it)
        negative = v < 0
        u = np.where(negative, -v, v) if lut.symmetry in ("odd", "even") else v.copy()
        sign = np.where(negative, -1.0, 1.0) if lut.symmetry == "odd" else np.ones_like(v)
        zeroed = negative if lut.symmetry == "positive" else np.zeros(v.shape, bool)
        # 4. clamps on the folded value (∓inf always clamp)
        low = ~zeroed & ((u < lut.lo) | (u == -np.inf))
        high = ~zeroed & ~low & ((u > lut.hi) | (u == np.inf))
        live = ~(zeroed | low | high)  # finite from here on
        w = np.where(live, u, 0.0)
        # 5./6. argument mode, table, rescaling
        y = _lut_mode(w, lut)
        y = np.where(zeroed, 0.0, np.where(low, lut.below, np.where(high, lut.above, y)))
        y = sign * y
        # 7. post-scale, then post-bias, one fp16 rounding each
        if lut.post_scale != 1.0:
            y = flush_nan(round16(y * lut.post_scale))
        if lut.post_bias != 0.0:
            y = flush_nan(round16(y + lut.post_bias))
    return bits_of(y)


def _lut_line(slope: float, intercept: float, arg: np.ndarray) -> np.ndarray:
    """One fp16 line RN16(RN16(slope · arg) + intercept), indeterminate forms flushed to +0."""
    return flush_nan(round16(flush_nan(round16(slope * arg)) + intercept))


def _lut_table(arg: np.ndarray, lut: Lut) -> np.ndarray:
    """The table at finite arguments: segments inside the knot span, tails (or the end
    segments extended) outside it; on an empty span the point itself takes knot 0."""
    first, last = lut.x_first, lut.x_last
    if lut.knots is None:
        inside = arg.copy()  # the identity table
    elif last == first:
        inside = np.full(arg.shape, flush_nan(values(lut.knots[:1]))[0])
    else:
        seg = np.floor((arg - first) * (SEGMENTS / (last - first)))
        seg = np.clip(seg, 0, SEGMENTS - 1).astype(int)  # beyond the span: the end segments
        inside = np.zeros(arg.shape)
        for k in range(SEGMENTS):
            on = seg == k
            inside[on] = _lut_line(lut.slopes[k], lut.intercepts[k], arg[on])
    if lut.tails is None:
        return inside
    # the tails are table words: fp16 slope and intercept below the span, then above it
    s_lo, b_lo, s_hi, b_hi = (float(round16(np.float64(t))) for t in lut.tails)
    return np.where(arg < first, _lut_line(s_lo, b_lo, arg),
                    np.where(arg > last, _lut_line(s_hi, b_hi, arg), inside))


def _lut_mode(u: np.ndarray, lut: Lut) -> np.ndarray:
    """Steps 5 and 6 on finite folded inputs u: reduce, look up, rescale."""
    red = lut.reduction
    if red == "none":
        return _lut_table(u, lut)
    if red in ("int", "frac"):
        whole = np.where(u < 0, np.ceil(u), np.floor(u))  # toward zero, keeps the sign of u
        return whole if red == "int" else round16(u - whole)  # frac: what int leaves
    if red == "exp2":
        n = np.floor(u)
        return round16(np.ldexp(_lut_table(u - n, lut), n.astype(int)))
    # the mantissa modes: u = m · 2**e with m in [0.5, 1)
    m, e = np.frexp(np.where(u > 0, u, 1.0))
    if red in ("sqrt", "rsqrt"):  # m in [0.5, 2) with an even exponent
        odd = e % 2 != 0
        m, e = np.where(odd, 2.0 * m, m), np.where(odd, e - 1, e)
    t = _lut_table(m, lut)
    y = {"recip": lambda: round16(np.ldexp(t, -e)),
         "rsqrt": lambda: round16(np.ldexp(t, -(e // 2))),
         "sqrt": lambda: round16(np.ldexp(t, e // 2)),
         "log2": lambda: flush_nan(round16(t + e))}[red]()
    at_zero = {"log2": -np.inf, "sqrt": 0.0}.get(red, np.inf)
    return np.where(u == 0, at_zero, np.where(u < 0, 0.0, y))  # below zero: indeterminate, +0
