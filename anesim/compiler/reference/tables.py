"""How a compiled task reads an activation lookup table: the semantics the lowering assumes.

A table (:class:`~anesim.program.model.ActivationTable`, built by
:mod:`anesim.compiler.lowering.luts`) is read piecewise-linearly between its uniformly spaced
samples, with the header's constants outside its range; a range-reduced table tabulates one
octave of the mantissa and handles the exponent separately (command-stream.md §5). This is the
float32 reading the reference interpreter uses, not the engine's fixed-point one
(:mod:`anesim.numerics.lut`).
"""

from __future__ import annotations

import math

import numpy as np

from anesim.program.model import ActivationTable


def _interp(ys: np.ndarray, grid0: float, step: float, v: np.ndarray) -> np.ndarray:
    pos = (v - grid0) / step
    idx = np.clip(np.floor(pos), 0, len(ys) - 2).astype(np.int64)
    frac = np.clip(pos - idx, 0.0, 1.0)
    return ys[idx] + (ys[idx + 1] - ys[idx]) * frac


def _evaluate_reduced(table: ActivationTable, x: np.ndarray) -> np.ndarray:
    ys = table.samples.view(np.float16).astype(np.float64)
    x = np.asarray(x, np.float64)
    name = table.reduction
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if name == "exp2":
            whole = np.floor(x)
            out = np.ldexp(_interp(ys, 0.0, 1 / 32, x - whole), np.clip(whole, -64, 64).astype(np.int64))
            out = np.where(x < table.range_lo, table.value_below, out)
            return np.where(x > table.range_hi, table.value_above, out)
        mag = np.abs(x)
        m, e = np.frexp(np.where(mag > 0, mag, 1.0))  # m in [0.5, 1)
        if name == "recip":
            out = np.sign(x) * np.ldexp(_interp(ys, 0.5, 1 / 64, m), -e)
            return np.where(x == 0, math.inf, out)
        if name == "log2":
            out = _interp(ys, 0.5, 1 / 64, m) + e
            return np.where(x < 0, 0.0, np.where(x == 0, -math.inf, out))
        odd = (e % 2) != 0
        m2 = np.where(odd, m * 2.0, m)  # in [0.5, 2)
        k = np.where(odd, (e - 1) // 2, e // 2)
        t = _interp(ys, 0.0, 1 / 16, m2)
        if name == "sqrt":
            out = np.ldexp(t, k)
            return np.where(x <= 0, 0.0, out)
        out = np.ldexp(t, -k)  # rsqrt
        return np.where(x < 0, 0.0, np.where(x == 0, math.inf, out))


def evaluate(table: ActivationTable, x: np.ndarray) -> np.ndarray:
    """Read a table the way the lowering assumes the engine does (for tests and host code)."""
    if table.reduction != "none":
        return _evaluate_reduced(table, x).astype(np.float32)
    ys = table.samples.view(np.float16).astype(np.float32)
    lo, hi = table.range_lo, table.range_hi
    first, last = table.knot_span or (lo, hi)
    x = np.asarray(x, np.float32)
    pos = (x - np.float32(first)) / np.float32(last - first) * (len(ys) - 1)
    idx = np.clip(np.floor(pos), 0, len(ys) - 2).astype(np.int64)
    frac = pos - idx
    if table.tails is None:  # no tails: the end knots hold outside the span
        out = ys[idx] + (ys[idx + 1] - ys[idx]) * np.clip(frac, 0.0, 1.0)
    else:
        out = ys[idx] + (ys[idx + 1] - ys[idx]) * frac
        s_lo, b_lo, s_hi, b_hi = (np.float32(v) for v in table.tails)
        out = np.where(x < first, s_lo * x + b_lo, out)
        out = np.where(x > last, s_hi * x + b_hi, out)
    out = np.where(x < lo, np.float32(table.value_below), out)
    out = np.where(x > hi, np.float32(table.value_above), out)
    return out.astype(np.float32)
