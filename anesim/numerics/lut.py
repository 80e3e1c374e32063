"""Activation lookup tables: 33-knot piecewise-linear curves evaluated with fp16 arithmetic.

A :class:`Lut` holds the knots the kernel DMA fetches (33 fp16 values evenly spaced over
``[x_first, x_last]``) plus the handling around them. Evaluation of one input ``x``:

1. NaN becomes +inf (the input boundary rule), so a NaN lands on a clamp value;
2. ``x ← RN16(x · pre_scale)``;
3. symmetry fold: ``odd`` and ``even`` tables see ``u = |x|`` (odd tables restore the sign);
   a ``positive`` table gives +0 for every negative input;
4. clamps: ``u < lo`` (or −inf) gives ``below``; ``u > hi`` (or +inf) gives ``above``;
5. range reduction splits ``u`` so the table sees a bounded argument (``exp2``: integer and
   fraction; ``recip``/``log2``: mantissa in [0.5, 1); ``sqrt``/``rsqrt``: mantissa in
   [0.5, 2) with an even exponent) and rescales the table value afterwards; ``int`` and
   ``frac`` return the integer part (toward zero) and the fractional part of ``u``;
6. the bracketing segment ``i`` evaluates ``RN16(RN16(slope_i · u) + intercept_i)``; inputs
   outside the knot span use the end segments (linear extrapolation), or the table's two
   ``tails`` ``RN16(RN16(slope · u) + intercept)`` when it has them; slopes and intercepts
   are derived from the knots once and held as fp16. A table with tails may have an empty
   knot span (``x_first == x_last``): the tails then meet at that point, which takes knot 0;
7. ``y ← RN16(y · post_scale)``, then ``y ← RN16(y + post_bias)``.
Indeterminate intermediate results become +0. ``knots=None`` makes the table the identity, which
with clamps gives relu, relu6 and hard-tanh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
from numba import njit, prange

from anesim.numerics.fp16 import f16_to_f32, f32_to_f16, rn16_64

KNOTS = 33
SEGMENTS = KNOTS - 1
Symmetry = Literal["none", "odd", "even", "positive"]
Reduction = Literal["none", "exp2", "recip", "rsqrt", "sqrt", "log2", "int", "frac"]
_SYMMETRY_CODES = {"none": 0, "odd": 1, "even": 2, "positive": 3}
_REDUCTION_CODES = {"none": 0, "exp2": 1, "recip": 2, "rsqrt": 3, "sqrt": 4, "log2": 5, "int": 6, "frac": 7}


def _fp16(value: float) -> float:
    """A Python float rounded to the nearest fp16 value."""
    with np.errstate(over="ignore"):
        return float(np.float16(value))


@dataclass(frozen=True)
class Lut:
    """A piecewise-linear activation table and the fp16 handling around it."""

    knots: np.ndarray | None  # 33 fp16 bit patterns (uint16); None: identity inside the clamps
    x_first: float = 0.0  # argument at knot 0 (after fold and reduction)
    x_last: float = 1.0  # argument at knot 32
    lo: float = -math.inf  # folded inputs below lo give `below`
    hi: float = math.inf  # folded inputs above hi give `above`
    below: float = 0.0
    above: float = 0.0
    symmetry: Symmetry = "none"
    reduction: Reduction = "none"
    pre_scale: float = 1.0
    post_scale: float = 1.0
    post_bias: float = 0.0
    name: str = "custom"
    # (slope, intercept) below the knot span, then above it; None: extrapolate the end segments
    tails: tuple[float, float, float, float] | None = None
    _segments: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.knots is not None:
            knots = np.asarray(self.knots, dtype=np.uint16).reshape(-1)
            if knots.shape[0] != KNOTS:
                raise ValueError(f"a Lut holds {KNOTS} knots, got {knots.shape[0]}")
            object.__setattr__(self, "knots", knots)
        if self.symmetry not in _SYMMETRY_CODES:
            raise ValueError(f"unknown symmetry {self.symmetry!r}")
        if self.reduction not in _REDUCTION_CODES:
            raise ValueError(f"unknown range reduction {self.reduction!r}")
        if not (self.x_last > self.x_first or (self.tails is not None and self.x_last == self.x_first)):
            raise ValueError("a Lut needs x_last > x_first (or equal, with tails)")
        if self.tails is not None and len(self.tails) != 4:
            raise ValueError("tails are (slope_below, intercept_below, slope_above, intercept_above)")
        object.__setattr__(self, "_segments", self._derive_segments())

    def _derive_segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-segment fp16 slope and intercept (as float64 values) from the knots."""
        if self.knots is None:
            return np.zeros(SEGMENTS), np.zeros(SEGMENTS)
        v = self.knots.view(np.float16).astype(np.float64)
        if self.x_last == self.x_first:  # an empty span: only knot 0 is ever read
            return np.zeros(SEGMENTS), np.full(SEGMENTS, np.nan_to_num(v[0]))
        step = (self.x_last - self.x_first) / SEGMENTS
        x = self.x_first + step * np.arange(SEGMENTS)
        with np.errstate(over="ignore", invalid="ignore"):
            slope = ((v[1:] - v[:-1]) / step).astype(np.float16).astype(np.float64)
            intercept = (v[:-1] - slope * x).astype(np.float16).astype(np.float64)
        return np.nan_to_num(slope), np.nan_to_num(intercept)

    @property
    def slopes(self) -> np.ndarray:
        """fp16 slope of each of the 32 segments (float64 values)."""
        return self._segments[0]

    @property
    def intercepts(self) -> np.ndarray:
        """fp16 intercept of each of the 32 segments (float64 values)."""
        return self._segments[1]

    @classmethod
    def from_table(cls, samples: np.ndarray, range_lo: float, range_hi: float,
                   value_below: float, value_above: float, name: str = "custom", **kw: object) -> Lut:
        """A plain table over [range_lo, range_hi] that clamps to the given values outside it."""
        return cls(np.asarray(samples, np.uint16), x_first=range_lo, x_last=range_hi, lo=range_lo,
                   hi=range_hi, below=value_below, above=value_above, name=name, **kw)  # type: ignore[arg-type]

    def params(self) -> np.ndarray:
        """The scalar parameters as one float64 array, in the order the kernel reads them."""
        tails = (0.0, 0.0, 0.0, 0.0) if self.tails is None else tuple(_fp16(t) for t in self.tails)
        return np.array([self.x_first, self.x_last, self.lo, self.hi, self.below, self.above,
                         self.pre_scale, self.post_scale, self.post_bias,
                         _SYMMETRY_CODES[self.symmetry], _REDUCTION_CODES[self.reduction],
                         0.0 if self.knots is None else 1.0, *tails,
                         0.0 if self.tails is None else 1.0], np.float64)


@njit(inline="always")
def _no_nan(x: np.float64) -> np.float64:
    return 0.0 if np.isnan(x) else x


@njit(inline="always")
def _segment(u, x_first, x_last, slopes, intercepts, has_knots):  # type: ignore[no-untyped-def]
    """The table (or identity) at argument u, with the end segments extrapolated."""
    if not has_knots:
        return u
    t = (u - x_first) * (32.0 / (x_last - x_first))
    i = int(np.floor(t)) if t < 32.0 else 31
    i = min(max(i, 0), 31)
    return _no_nan(rn16_64(_no_nan(rn16_64(slopes[i] * u)) + intercepts[i]))


@njit(inline="always")
def _ldexp(y: np.float64, e: int) -> np.float64:
    """y * 2**e without overflow in the scale factor, rounded to fp16."""
    while e > 60:
        y = y * 2.0**60
        e -= 60
    while e < -60:
        y = y * 2.0**-60
        e += 60
    return rn16_64(y * 2.0**e)


@njit(inline="always")
def _line(u, slope, intercept):  # type: ignore[no-untyped-def]
    """A tail: RN16(RN16(slope · u) + intercept)."""
    return _no_nan(rn16_64(_no_nan(rn16_64(slope * u)) + intercept))


@njit(inline="always")
def _table(u, prm, slopes, intercepts, has_knots):  # type: ignore[no-untyped-def]
    """The table at argument u: the tails outside the knot span when the table has them (knot 0
    on an empty span), else the segments with the end ones extrapolated."""
    if prm[16] != 0.0:
        if u < prm[0]:
            return _line(u, prm[12], prm[13])
        if u > prm[1]:
            return _line(u, prm[14], prm[15])
        if prm[1] == prm[0]:
            return intercepts[0] if has_knots else u
    return _segment(u, prm[0], prm[1], slopes, intercepts, has_knots)


@njit
def lut_eval(x, prm, slopes, intercepts):  # type: ignore[no-untyped-def]
    """One table evaluation (see the module docstring) on an fp16 value held in float64."""
    lo = prm[2]; hi = prm[3]  # noqa: E702
    below = prm[4]; above = prm[5]; pre = prm[6]; post = prm[7]; bias = prm[8]  # noqa: E702
    symmetry = int(prm[9]); reduction = int(prm[10]); has_knots = prm[11] != 0.0  # noqa: E702
    if np.isnan(x):
        x = np.inf
    if pre != 1.0:
        x = _no_nan(rn16_64(x * pre))
    sign = 1.0
    u = x
    if symmetry != 0:
        if x < 0.0:
            sign = -1.0 if symmetry == 1 else 1.0
            u = -x
    if symmetry == 3 and x < 0.0:
        y = 0.0
    elif u < lo or u == -np.inf:
        y = below
    elif u > hi or u == np.inf:
        y = above
    elif reduction == 0:
        y = _table(u, prm, slopes, intercepts, has_knots)
    elif reduction == 6:  # int: the integer part, toward zero (exact on fp16 values)
        y = np.trunc(u)
    elif reduction == 7:  # frac: what int leaves (exact on fp16 values)
        y = u - np.trunc(u)
    elif reduction == 1:  # exp2: 2**n * table(fraction)
        n = np.floor(u)
        y = _ldexp(_table(u - n, prm, slopes, intercepts, has_knots), int(n))
    else:
        if u == 0.0:
            y = -np.inf if reduction == 5 else (0.0 if reduction == 4 else np.inf)
        elif u < 0.0:
            y = 0.0  # log, sqrt, rsqrt of a negative: indeterminate, flushed to +0
        else:
            m, e = math.frexp(u)  # u = m * 2**e, m in [0.5, 1)
            if reduction == 3 or reduction == 4:
                if e % 2 != 0:
                    m = m * 2.0
                    e -= 1
            t = _table(m, prm, slopes, intercepts, has_knots)
            if reduction == 2:
                y = _ldexp(t, -e)
            elif reduction == 3:
                y = _ldexp(t, -(e // 2))
            elif reduction == 4:
                y = _ldexp(t, e // 2)
            else:
                y = _no_nan(rn16_64(t + e))
    y = sign * y
    if post != 1.0:
        y = _no_nan(rn16_64(y * post))
    if bias != 0.0:
        y = _no_nan(rn16_64(y + bias))
    return y


@njit(parallel=True, cache=True)
def lut_kernel(x: np.ndarray, prm: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray,
               out: np.ndarray) -> None:
    """Evaluate one table on a flat float32 array of fp16 values."""
    for i in prange(x.shape[0]):
        out[i] = np.float32(lut_eval(np.float64(x[i]), prm, slopes, intercepts))


def apply_lut(x: np.ndarray, lut: Lut) -> np.ndarray:
    """fp16 bits of the table applied elementwise to fp16 bits ``x``."""
    x = np.asarray(x, dtype=np.uint16)
    v = f16_to_f32(x).reshape(-1)
    out = np.empty(v.shape[0], np.float32)
    lut_kernel(v, lut.params(), lut.slopes, lut.intercepts, out)
    return f32_to_f16(out).reshape(x.shape)


# ----------------------------------------------------------------------------------- builders


def knots_of(fn: Callable[[np.ndarray], np.ndarray], x_first: float, x_last: float) -> np.ndarray:
    """fp16 bits of ``fn`` sampled at the 33 knots of [x_first, x_last]."""
    x = x_first + (x_last - x_first) * np.arange(KNOTS) / SEGMENTS
    with np.errstate(over="ignore", divide="ignore"):
        return np.asarray(fn(x), np.float64).astype(np.float16).view(np.uint16)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


SIGMOID_DOMAIN = (-9.938, 8.320)  # the high-precision sigmoid table's clamp (guide ch. 3)


def sigmoid_lut() -> Lut:
    """Sigmoid over the measured clamp domain, clamping to 0 and 1 outside it."""
    lo, hi = SIGMOID_DOMAIN
    return Lut(knots_of(_sigmoid, lo, hi), lo, hi, lo=lo, hi=hi, below=0.0, above=1.0,
               name="sigmoid")


def tanh_lut() -> Lut:
    """tanh as an odd table over [0, 4] clamping to ±1 (the layout of the M1 tanh kernel)."""
    return Lut(knots_of(np.tanh, 0.0, 4.0), 0.0, 4.0, lo=0.0, hi=4.0, below=0.0, above=1.0,
               symmetry="odd", name="tanh")


def exp2_lut(pre_scale: float = 1.0, name: str = "exp2") -> Lut:
    """2**x by range reduction: a table of 2**f for f in [0, 1] scaled by 2**floor(x)."""
    return Lut(knots_of(np.exp2, 0.0, 1.0), 0.0, 1.0, lo=-25.0, hi=16.0, below=0.0,
               above=math.inf, reduction="exp2", pre_scale=pre_scale, name=name)


def exp_lut() -> Lut:
    """e**x as 2**(x · RN16(log2 e)), the way the M1 exp kernel folds it."""
    return exp2_lut(pre_scale=_fp16(1.0 / math.log(2.0)), name="exp")


def gelu_lut() -> Lut:
    """gelu over [-4, 4], zero below −4.4, the last segment extended above 4."""
    def gelu(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    return Lut(knots_of(gelu, -4.0, 4.0), -4.0, 4.0, lo=-4.4, hi=math.inf, below=0.0,
               above=math.inf, name="gelu")


def silu_lut() -> Lut:
    """silu (swish) over [-8, 8], zero below −8, the last segment extended above 8."""
    return Lut(knots_of(lambda x: x * _sigmoid(x), -8.0, 8.0), -8.0, 8.0, lo=-8.0, hi=math.inf,
               below=0.0, above=math.inf, name="silu")


def recip_lut() -> Lut:
    """1/x: an odd table of 1/m for the mantissa m in [0.5, 1]."""
    return Lut(knots_of(lambda m: 1.0 / m, 0.5, 1.0), 0.5, 1.0, lo=0.0, hi=math.inf,
               below=math.inf, above=0.0, symmetry="odd", reduction="recip", name="recip")


def _even_mantissa_table(fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Knots over [0, 2] with only [0.5, 2] used (the M1 sqrt layout); unused knots repeat."""
    x = 2.0 * np.arange(KNOTS) / SEGMENTS
    return np.asarray(fn(np.maximum(x, 0.5)), np.float64).astype(np.float16).view(np.uint16)


def sqrt_lut() -> Lut:
    """√x: a table of √m for the mantissa m in [0.5, 2) with an even exponent."""
    return Lut(_even_mantissa_table(np.sqrt), 0.0, 2.0, lo=0.0, hi=math.inf, below=0.0,
               above=math.inf, reduction="sqrt", name="sqrt")


def rsqrt_lut() -> Lut:
    """1/√x: a table of 1/√m for the mantissa m in [0.5, 2) with an even exponent."""
    return Lut(_even_mantissa_table(lambda m: 1.0 / np.sqrt(m)), 0.0, 2.0, lo=-math.inf,
               hi=math.inf, below=0.0, above=0.0, reduction="rsqrt", name="rsqrt")


def log2_lut(post_scale: float = 1.0, name: str = "log2") -> Lut:
    """log2 x: the exponent plus a table of log2 m for the mantissa m in [0.5, 1]."""
    return Lut(knots_of(np.log2, 0.5, 1.0), 0.5, 1.0, lo=-math.inf, hi=math.inf, below=0.0,
               above=math.inf, reduction="log2", post_scale=post_scale, name=name)


def log_lut() -> Lut:
    """ln x as RN16(log2 x · RN16(ln 2))."""
    return log2_lut(post_scale=_fp16(math.log(2.0)), name="log")


def relu_lut() -> Lut:
    """relu as an identity table clamped below at 0."""
    return Lut(None, lo=0.0, hi=math.inf, below=0.0, above=math.inf, name="relu")


def relu6_lut() -> Lut:
    """relu6: identity clamped to [0, 6]."""
    return Lut(None, lo=0.0, hi=6.0, below=0.0, above=6.0, name="relu6")


def hardtanh_lut(low: float = -1.0, high: float = 1.0) -> Lut:
    """hard-tanh: identity clamped to [low, high]."""
    return Lut(None, lo=low, hi=high, below=low, above=high, name="hardtanh")


BUILDERS: dict[str, Callable[[], Lut]] = {
    "sigmoid": sigmoid_lut, "tanh": tanh_lut, "exp": exp_lut, "exp2": exp2_lut,
    "gelu": gelu_lut, "silu": silu_lut, "recip": recip_lut, "sqrt": sqrt_lut,
    "rsqrt": rsqrt_lut, "log2": log2_lut, "log": log_lut, "relu": relu_lut,
    "relu6": relu6_lut, "hardtanh": hardtanh_lut,
}


def builtin_lut(name: str) -> Lut:
    """One of the built-in tables by name (see :data:`BUILDERS`)."""
    try:
        return BUILDERS[name]()
    except KeyError:
        raise ValueError(f"no built-in table {name!r}; known: {sorted(BUILDERS)}") from None
