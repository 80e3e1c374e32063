"""Assertions for tests of ANE-targeted models: outputs, overflow, latency.

Each raises ``AssertionError`` with a message that names the model, the chip, the output or task
and the numbers, so a CI log says what went wrong without a rerun.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from anesim.chips import load_chip
from anesim.testing.run import ModelRun, chip_key

if TYPE_CHECKING:
    from anesim.testing.baseline import Baseline

_FP16_MIN_SPACING = 2.0**-24  # spacing of the fp16 subnormals
WORST_SHOWN = 5  # rows of the table of worst elements in a failure message
SLOWEST_SHOWN = 3  # tasks named in a latency failure


def fp16_ulp(values: np.ndarray) -> np.ndarray:
    """The fp16 spacing at each value (the subnormal spacing near zero; inf beyond fp16's range)."""
    v = np.abs(np.asarray(values, np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exponent = np.floor(np.log2(np.where(v > 0, v, _FP16_MIN_SPACING)))
    exponent = np.clip(exponent, -14, 15)
    spacing = np.exp2(exponent - 10)
    return np.where(v >= 65520.0, np.inf, np.maximum(spacing, _FP16_MIN_SPACING))


def _pairs(actual: Any, reference: Any) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(what, {output label: (actual, reference)}) from arrays, mappings or a ModelRun; a label is the
    output's name with its closing quote and, for a run, the task that wrote it."""
    what = ""
    if isinstance(actual, ModelRun):
        what = actual.describe()
        writers = actual.output_tasks
        actual = actual.outputs
    else:
        writers = {}
    if isinstance(actual, Mapping):
        if not isinstance(reference, Mapping):
            if len(actual) != 1:
                raise AssertionError(f"{what or 'outputs'}: {len(actual)} outputs ({', '.join(actual)}) "
                                     "but one reference array; give a mapping of name to array")
            reference = {next(iter(actual)): reference}
        missing = sorted(set(reference) - set(actual))
        if missing:
            raise AssertionError(f"{what or 'outputs'}: no output named {missing[0]!r}; "
                                 f"outputs are {', '.join(sorted(actual))}")
        return what, {(f"{k}' (written by {writers[k]})" if k in writers else f"{k}'"):
                      (np.asarray(actual[k]), np.asarray(reference[k])) for k in reference}
    return what, {"": (np.asarray(actual), np.asarray(reference))}


def assert_ane_close(actual: Any, reference: Any, *, ulp: float | None = None, rtol: float | None = None,
                     atol: float = 0.0) -> None:
    """Fail unless every element of ``actual`` lies within a tolerance of ``reference``.

    ``actual`` is an array, a mapping of output name to array, or a :class:`ModelRun` (its
    outputs); ``reference`` an array or a mapping (only the names it holds are compared).
    An element passes if it is within ``ulp`` fp16 spacings of the reference value, or within
    ``rtol * |reference| + atol`` (whichever tolerances are given; at least one of ``ulp`` and
    ``rtol``). Infinities pass only where the reference holds the same infinity; NaN never.
    The message lists the worst elements with their index, both values and both errors.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    if ulp is None and rtol is None:
        raise TypeError("assert_ane_close needs a tolerance: ulp= (fp16 spacings) or rtol= (relative)")
    what, pairs = _pairs(actual, reference)
    problems = []
    for name, (act, ref) in pairs.items():
        label = f"output '{name}" if name else "array"
        if act.shape != ref.shape:
            if act.size != ref.size:
                problems.append(f"{label}: shape {act.shape}, reference shape {ref.shape}")
                continue
            ref = ref.reshape(act.shape)
        a = act.astype(np.float64)
        r = ref.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a - r)
            ulps = diff / fp16_ulp(r)
            rel = diff / np.abs(r)
        same_inf = np.isinf(a) & np.isinf(r) & (np.sign(a) == np.sign(r))
        ok = np.zeros(a.shape, bool)
        if ulp is not None:
            ok |= ulps <= ulp
        if rtol is not None:
            ok |= diff <= rtol * np.abs(r) + atol
        ok = (ok & np.isfinite(diff)) | same_inf
        bad = ~ok
        if not bad.any():
            continue
        score = np.where(np.isfinite(ulps), ulps, np.inf)
        order = np.argsort(np.where(bad, score, -1.0), axis=None, kind="stable")[::-1][: min(WORST_SHOWN, int(bad.sum()))]
        rows = []
        for flat in order:
            idx = np.unravel_index(flat, a.shape)
            rows.append(f"    {str(tuple(int(i) for i in idx)):<18} {a[idx]:>12.6g} {r[idx]:>12.6g} "
                        f"{diff[idx]:>11.4g} {ulps[idx]:>10.4g} {100 * rel[idx]:>9.3g} %")
        n_bad = int(bad.sum())
        problems.append(
            f"{label}: {n_bad} of {a.size} elements ({100 * n_bad / max(a.size, 1):.3g} %) outside the tolerance; "
            f"max {np.nanmax(np.where(np.isfinite(ulps), ulps, np.nan), initial=0):.4g} ulp; worst:\n"
            f"    {'index':<18} {'actual':>12} {'reference':>12} {'|diff|':>11} {'ulp':>10} {'rel':>11}\n"
            + "\n".join(rows))
    if problems:
        tol = ", ".join(t for t in (f"ulp={ulp}" if ulp is not None else "",
                                    f"rtol={rtol}" if rtol is not None else "",
                                    f"atol={atol}" if atol else "") if t)
        head = f"{what}: " if what else ""
        raise AssertionError(f"{head}outputs differ from the reference ({tol}):\n" + "\n".join(problems))


def assert_no_overflow(run: ModelRun, *, allow_saturation: bool = False) -> None:
    """Fail if any task of the run wrote an infinity or a NaN (or saturated, unless allowed).

    The message names each offending task with its counts, so the layer that overflowed fp16
    (or hit the M1 MAC port limit of 2^15) is the first thing in the log.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    bad = [s for s in run.task_stats if s.overflowed or (s.saturated and not allow_saturation)]
    outputs = []
    for name, value in run.outputs.items():
        v = np.asarray(value, np.float64)
        if not np.all(np.isfinite(v)):
            outputs.append(f"output '{name}': {int(np.isinf(v).sum())} inf, {int(np.isnan(v).sum())} NaN")
    if not bad and not outputs:
        return
    lines = [f"    task {s.index} '{s.name}'" + (f" (segment {s.segment})" if s.segment else "")
             + f": {s.inf} inf, {s.nan} NaN, {s.saturated} saturated of {s.elements} {s.dtype} results "
             f"(largest finite {s.max_abs:.6g})" for s in bad]
    kinds = "fp16 overflow" if any(s.overflowed for s in bad) or outputs else "saturation"
    first = f"first in task {bad[0].index} '{bad[0].name}'" if bad else "in host operations"
    raise AssertionError(f"{run.describe()}: {kinds} in {len(bad)} of {len(run.task_stats)} tasks, {first} "
                         f"({run.numerics} numerics):\n" + "\n".join(lines + [f"    {o}" for o in outputs]))


def assert_latency(run: ModelRun, chip: str | None = None, max_s: float | None = None, *,
                   baseline: Baseline | None = None, tolerance: float | None = None) -> None:
    """Fail if the model's predicted latency on ``chip`` exceeds ``max_s`` or its baseline.

    ``chip`` defaults to the run's chip; another chip compiles and times the model for it.
    With ``baseline`` the bound is the baseline's latency × (1 + tolerance) (the baseline's own
    tolerance when None); with ``pytest --anesim-update-baseline`` the latency is recorded instead.
    The message gives the latency, the bound, the excess and the slowest tasks.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    if max_s is None and baseline is None:
        raise TypeError("assert_latency needs max_s= (seconds) or baseline= (the anesim_baseline fixture)")
    config = load_chip(chip) if chip is not None else load_chip(run.chip)
    key = chip_key(config)
    timing = run.timing_on(config)
    latency = timing.latency_s
    bounds: list[tuple[float, str]] = []
    if max_s is not None:
        bounds.append((float(max_s), f"the limit {_s(max_s)}"))
    if baseline is not None:
        if baseline.update:
            baseline.record(run.model, key, timing)
        else:
            entry = baseline.latency_s(run.model, key)
            if entry is None:
                raise AssertionError(f"{run.describe(key)}: no baseline entry in {baseline.path} "
                                     "(run pytest --anesim-update-baseline to record one)")
            tol = baseline.tolerance if tolerance is None else tolerance
            bound = entry * (1 + tol)
            bounds.append((bound, f"the baseline {_s(entry)} + {100 * tol:.3g} % = {_s(bound)}; "
                                  f"{100 * (latency / entry - 1):.3g} % slower than the baseline"))
    failed = [(b, text) for b, text in bounds if latency > b]
    if not failed:
        return
    slow = sorted(timing.tasks, key=lambda t: t.cycles, reverse=True)[:SLOWEST_SHOWN]
    tasks = "; ".join(f"task {t.index} '{t.name}' {t.cycles:,.0f} cycles ({t.bound})" for t in slow)
    reasons = "; ".join(text for _, text in failed)
    raise AssertionError(f"{run.describe(key)}: predicted latency {_s(latency)} exceeds {reasons}. "
                         f"Slowest tasks: {tasks}")


def _s(seconds: float) -> str:
    """A duration with a readable unit."""
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= factor:
            return f"{seconds / factor:.4g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"
