"""Activation lookup tables: 33 uniformly spaced fp16 samples plus a 4-value header.

command-stream.md §5: the engine's nonlinearity table is a header of four fp16 values read as
``[range_lo, range_hi, value_below, value_above]`` followed by 33 uniformly spaced samples;
the program model (:class:`ActivationTable`) keeps exactly that. Between samples the table is
read piecewise-linearly; outside the range it returns the constant below or above.

Functions whose tails are constant (or saturate in fp16) are tabulated over a plain range.
GELU grows linearly for large inputs; its table is Apple's: knots over [-4, 4], zero below the
header's -4.4 and the line y = x above the knots (the ``tails`` of the program model, read from
the eiln gelu blob), so a GELU is one table pass as Apple's compiler emits it. SiLU has no
such table in the references (Apple's silu blob is three tasks); the lowering computes it as
``x * sigmoid(x)`` with the bounded factor from a table.

Five tables are *range-reduced*, as Apple's are (the eiln blobs for exp2/exp, inv, sqrt and
log2, command-stream.md §5): the samples cover one octave of the mantissa and the exponent is
handled separately. They carry the model's ``reduction`` field (and ``symmetry="odd"`` for
the reciprocal), which is how the engines recognise them:

- ``exp2``: samples ``2**(k/32)``, k = 0..32; ``2**x = 2**floor(x) * T(frac(x))``. ``exp`` is
  ``exp2`` after a post-scale of log2(e), exactly as Apple's exp kernel does.
- ``recip``: samples ``1/m`` for m in [0.5, 1]; ``1/x = T(m) * 2**-e`` with ``x = m * 2**e``.
- ``sqrt`` / ``rsqrt``: samples over [0, 2] in steps of 1/16 (zero below 0.5, as Apple's sqrt
  table); ``x = m * 4**k`` with m in [0.5, 2): ``sqrt(x) = T(m) * 2**k``, ``rsqrt = T(m) * 2**-k``.
- ``log2``: samples ``log2(m)`` for m in [0.5, 1]; ``log2(x) = T(m) + e``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from anesim.program.model import ActivationTable

SAMPLES = 33
FP16_MAX = 65504.0


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class TableSpec:
    """A function and the range it is tabulated over."""

    fn: Callable[[np.ndarray], np.ndarray]
    lo: float
    hi: float
    below: float
    above: float


# Ranges: where the function has settled to within fp16 resolution of its tail value.
TABLES: dict[str, TableSpec] = {
    "sigmoid": TableSpec(_sigmoid, -8.0, 8.0, 0.0, 1.0),
    "tanh": TableSpec(np.tanh, -4.0, 4.0, -1.0, 1.0),
    "erf": TableSpec(_erf, -3.0, 3.0, -1.0, 1.0),
    "phi": TableSpec(_phi, -5.0, 5.0, 0.0, 1.0),  # the Gaussian CDF, GELU's factor
    "hard_sigmoid": TableSpec(lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0), -3.0, 3.0, 0.0, 1.0),
}

# Tables with linear tails: (function, knot span, header lo, hi, below, above, tails). GELU's
# header and tails are the eiln gelu blob's (tests/test_functional_tables.py reads them).
TAILED: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[float, float], float, float, float, float,
                        tuple[float, float, float, float]]] = {
    "gelu": (lambda x: x * _phi(x), (-4.0, 4.0), -4.3984375, math.inf, 0.0, math.inf, (0.0, 0.0, 1.0, 0.0)),
}

# Range-reduced tables: (header lo, hi, below, above, sample grid, function on the grid).
# Headers of exp2, inv, sqrt and log2 are Apple's (eiln blobs); rsqrt follows sqrt's pattern.
_GRID_EXP = np.arange(SAMPLES) / 32.0
_GRID_OCTAVE = 0.5 + np.arange(SAMPLES) / 64.0
_GRID_SQRT = np.arange(SAMPLES) / 16.0
REDUCED: dict[str, tuple[float, float, float, float, np.ndarray, Callable[[np.ndarray], np.ndarray]]] = {
    "exp2": (-25.0, 16.0, 0.0, math.inf, _GRID_EXP, lambda g: np.exp2(g)),
    "recip": (0.0, math.inf, math.inf, 0.0, _GRID_OCTAVE, lambda g: 1.0 / g),
    "sqrt": (0.0, math.inf, 0.0, math.inf, _GRID_SQRT, lambda g: np.where(g >= 0.5, np.sqrt(g), 0.0)),
    "rsqrt": (0.0, math.inf, math.inf, 0.0, _GRID_SQRT,
              lambda g: np.where(g >= 0.5, 1.0 / np.sqrt(np.maximum(g, 0.5)), 0.0)),
    "log2": (-math.inf, math.inf, 0.0, math.inf, _GRID_OCTAVE, lambda g: np.log2(g)),
}
# graph op -> (table, post-scale applied before the table)
LUT_OPS: dict[str, tuple[str, float]] = {
    "exp": ("exp2", 1.0 / math.log(2.0)),
    "reciprocal": ("recip", 1.0),
    "sqrt": ("sqrt", 1.0),
    "rsqrt": ("rsqrt", 1.0),
}


def clip_table(lo: float, hi: float, name: str = "clip") -> ActivationTable:
    """A table for clip(x, lo, hi): exact, since the function is linear inside the range."""
    xs = np.linspace(lo, hi, SAMPLES)
    return _table(xs, xs, lo, hi, lo, hi, name)


# A model asks for the same few tables once per softmax or norm tile: each is built once and
# shared (a table is frozen; nothing writes its samples).
@lru_cache(maxsize=256)
def build_table(name: str, lo: float | None = None, hi: float | None = None) -> ActivationTable:
    """The table of a named function, optionally over a custom range."""
    if name in REDUCED:
        h_lo, h_hi, below, above, grid, fn = REDUCED[name]
        return _table(grid, fn(grid), h_lo, h_hi, below, above, name, reduction=name,
                      symmetry="odd" if name == "recip" else "none")
    if name in TAILED and lo is None and hi is None:
        fn, span, h_lo, h_hi, below, above, tails = TAILED[name]
        xs = np.linspace(span[0], span[1], SAMPLES)
        table = _table(xs, fn(xs.astype(np.float64)), h_lo, h_hi, below, above, name)
        return replace(table, knot_span=span, tails=tails)
    spec = TABLES[name]
    lo = spec.lo if lo is None else float(lo)
    hi = spec.hi if hi is None else float(hi)
    xs = np.linspace(lo, hi, SAMPLES)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ys = spec.fn(xs.astype(np.float64))
    below = spec.below if lo == spec.lo else float(spec.fn(np.array([lo]))[0])
    above = spec.above if hi == spec.hi else float(spec.fn(np.array([hi]))[0])
    return _table(xs, ys, lo, hi, below, above, name)


def _table(xs: np.ndarray, ys: np.ndarray, lo: float, hi: float, below: float, above: float,
           name: str, reduction: str = "none", symmetry: str = "none") -> ActivationTable:
    with np.errstate(over="ignore"):
        samples = np.asarray(ys, np.float64).clip(-FP16_MAX, FP16_MAX).astype(np.float16).view(np.uint16)
    return ActivationTable(float(np.float16(lo)), float(np.float16(hi)), below, above,
                           samples.copy(), name, reduction, symmetry)  # type: ignore[arg-type]
