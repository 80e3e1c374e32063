"""Error statistics of simulated against measured points, per family and overall."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median

# Quantities whose points have a latency (or latency-equivalent) on both sides; ratios and byte
# counts take part in the percentage errors but not in the log-latency correlation.
LATENCY_QUANTITIES = frozenset({"latency", "flop_rate", "byte_rate", "token_rate"})


@dataclass(frozen=True)
class Point:
    """One validated row: its measured and simulated values and the signed error."""

    id: str
    chip: str
    family: str
    method: str
    quantity: str
    measured: float  # SI value of the quantity, as the source gave it
    simulated: float  # SI value of the same quantity from the simulation
    measured_latency_s: float | None  # latency-equivalent (None for ratios and byte counts)
    simulated_latency_s: float | None
    error_pct: float  # signed, in latency space: +10 means the simulation is 10 % slower
    workload: str = ""
    shape: str = ""
    metric: str = ""
    value: str = ""
    source: str = ""
    params: dict[str, object] | None = None  # the workload simulated (a sweep's chosen size)

    @property
    def abs_error_pct(self) -> float:
        """Absolute error in percent."""
        return abs(self.error_pct)

    def as_dict(self) -> dict[str, object]:
        """The point as plain JSON-ready data."""
        d = dict(self.__dict__)
        d["abs_error_pct"] = self.abs_error_pct
        return d


def signed_error_pct(quantity: str, measured: float, simulated: float) -> float:
    """Signed percentage error in latency space.

    For a rate, the latency-equivalent error at fixed work is measured / simulated - 1; for a
    latency, a power, a ratio or a byte count it is simulated / measured - 1.
    """
    if measured <= 0 or simulated <= 0:
        return math.inf
    if quantity in ("flop_rate", "byte_rate", "token_rate"):
        return (measured / simulated - 1.0) * 100.0
    return (simulated / measured - 1.0) * 100.0


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation coefficient, or None with fewer than three points or no spread."""
    n = len(xs)
    if n < 3 or n != len(ys):
        return None
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / math.sqrt(sxx * syy)


def log_pearson(points: Iterable[Point]) -> float | None:
    """Pearson r of log latency, measured against simulated, over latency-like points."""
    pairs = [
        (math.log(p.measured_latency_s), math.log(p.simulated_latency_s))
        for p in points
        if p.quantity in LATENCY_QUANTITIES
        and p.measured_latency_s and p.simulated_latency_s
        and p.measured_latency_s > 0 and p.simulated_latency_s > 0
    ]
    if not pairs:
        return None
    xs, ys = zip(*pairs)
    return pearson(xs, ys)


def _round(x: float | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return x
    return round(x, digits)


def summarize(points: Sequence[Point], n_excluded: int = 0) -> dict[str, object]:
    """n_points, n_excluded, median/mean/max absolute percentage error and log-space r."""
    errs = [p.abs_error_pct for p in points]
    return {
        "n_points": len(points),
        "n_excluded": n_excluded,
        "median_abs_pct_error": _round(median(errs)) if errs else None,
        "mean_abs_pct_error": _round(math.fsum(errs) / len(errs)) if errs else None,
        "max_abs_pct_error": _round(max(errs)) if errs else None,
        "log_pearson_r": _round(log_pearson(points), 5),
    }


def by_family(points: Sequence[Point]) -> dict[str, dict[str, object]]:
    """The same summary for each workload family, families in name order."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(p.family, []).append(p)
    return {name: summarize(groups[name]) for name in sorted(groups)}
