"""Validate chips: simulate every mapped trace row of a chip and compare with the measurement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anesim.chips import load_chip
from anesim.chips.loader import normalize_name
from anesim.chips.schema import ChipConfig
from anesim.errors import AnesimError, InputError
from anesim.validate.methods import measure
from anesim.validate.simulate import Simulator, Timer
from anesim.validate.stats import Point, by_family, signed_error_pct, summarize
from anesim.validate.traces import TRACE_FILES, TraceRow, load_traces

Progress = Callable[[str, int, int], None]


@dataclass
class ChipValidation:
    """The validation of one chip: its points, excluded-row count and rows that failed to run."""

    chip: str
    points: list[Point]
    n_excluded: int
    failures: list[tuple[str, str]] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # the chip's excluded rows per reason

    def summary(self) -> dict[str, Any]:
        """Overall figures, per-family figures and every point, as plain data."""
        out = summarize(self.points, self.n_excluded)
        out["families"] = by_family(self.points)
        out["points"] = [p.as_dict() for p in self.points]
        return out


def validated_chips(rows: Iterable[TraceRow]) -> list[str]:
    """Chips that have mapped rows, in first-appearance order."""
    seen: dict[str, None] = {}
    for r in rows:
        if r.mapped and r.target:
            seen.setdefault(r.target, None)
    return list(seen)


def resolve_chips(spec: str | ChipConfig, rows: Sequence[TraceRow]) -> list[str]:
    """Trace chip names for a --chip argument (a name, alias or chip file, or 'all') or a loaded chip."""
    names = validated_chips(rows)
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return names
    wanted = spec if isinstance(spec, ChipConfig) else load_chip(spec)
    aliases = {normalize_name(n) for n in (wanted.name, *wanted.aliases)}
    for name in names:
        if normalize_name(name) in aliases:
            return [name]
    raise InputError("no measured traces for this chip", found=repr(spec if isinstance(spec, str) else wanted.name),
                     expected="all, or one of " + ", ".join(names))


def point_of(row: TraceRow, value: float, latency_s: float | None, work: float | None,
             params: dict[str, Any] | None = None) -> Point:
    """The comparison of one row's measurement with its simulated value."""
    assert row.measured is not None and row.quantity is not None and row.family and row.method
    q = row.quantity
    if q == "latency":
        meas_lat = row.measured
    elif q in ("flop_rate", "byte_rate", "token_rate") and work:
        meas_lat = work / row.measured
    else:
        meas_lat, latency_s = None, None
    return Point(
        id=row.id, chip=row.target or "", family=row.family, method=row.method, quantity=q,
        measured=row.measured, simulated=value, measured_latency_s=meas_lat,
        simulated_latency_s=latency_s, error_pct=signed_error_pct(q, row.measured, value),
        workload=row.workload, shape=row.shape, metric=row.metric, value=row.value, source=row.source,
        params=params,
    )


def validate_chip(name: str, rows: Sequence[TraceRow] | None = None, *, timer: Timer | None = None,
                  chip: ChipConfig | None = None, progress: Progress | None = None) -> ChipValidation:
    """Simulate every mapped row of one chip (its own config unless ``chip`` is given)."""
    rows = load_traces() if rows is None else rows
    mine = [r for r in rows if r.target == name]
    todo = [r for r in mine if r.mapped]
    sim = Simulator(chip or load_chip(name), timer)
    points: list[Point] = []
    failures: list[tuple[str, str]] = []
    for i, row in enumerate(todo):
        if progress:
            progress(name, i, len(todo))
        try:
            m = measure(sim, row.family or "", row.method or "", row.params, row.quantity or "")
        except AnesimError as exc:
            failures.append((row.id, str(exc)))
            continue
        points.append(point_of(row, m.value, m.latency_s, m.work, m.params))
    reasons = Counter(r.reason or "?" for r in mine if not r.mapped)
    if failures:
        reasons["not_simulated"] += len(failures)
    return ChipValidation(name, points, sum(not r.mapped for r in mine), failures, dict(reasons.most_common()))


def validate(spec: str = "all", *, rows: Sequence[TraceRow] | None = None, timer: Timer | None = None,
             progress: Progress | None = None) -> dict[str, ChipValidation]:
    """Validate every chip a --chip argument names (a chip file of one's own: that file, against
    the measurements of the chip it names)."""
    rows = load_traces() if rows is None else rows
    chip = None if spec.strip().lower() == "all" else load_chip(spec)
    return {name: validate_chip(name, rows, timer=timer, chip=chip, progress=progress)
            for name in resolve_chips(spec, rows)}


def chip_families(results: dict[str, ChipValidation]) -> dict[str, dict[str, Any]]:
    """Pooled figures per chip family (M1 with M1 Max, M5 with M5 Pro), the issue's bar."""
    groups: dict[str, list[ChipValidation]] = {}
    for name, v in results.items():
        groups.setdefault(name.split()[0] + " family", []).append(v)
    return {fam: summarize([p for v in vs for p in v.points], sum(v.n_excluded for v in vs))
            for fam, vs in groups.items()}


def coverage(results: dict[str, ChipValidation], rows: Sequence[TraceRow]) -> dict[str, Any]:
    """How many rows of the measurements were used, and how many were excluded for each reason.

    Besides the curation's reasons: ``not_simulated`` (a mapped row the simulator refused) and
    ``chip_not_selected`` (a mapped row of a chip --chip left out); used + excluded = rows.
    """
    reasons = Counter(r.reason or "?" for r in rows if not r.mapped)
    for v in results.values():
        if v.failures:
            reasons["not_simulated"] += len(v.failures)
    unselected = sum(1 for r in rows if r.mapped and r.target not in results)
    if unselected:
        reasons["chip_not_selected"] += unselected
    return {"rows": len(rows), "used": sum(len(v.points) for v in results.values()),
            "excluded": dict(reasons.most_common())}


def figures(points: Sequence[Point], excluded: dict[str, int] | None = None) -> dict[str, Any]:
    """The --json figures of a set of points: count, errors, log-latency r, exclusions by reason."""
    s = summarize(points)
    out: dict[str, Any] = {
        "points": s["n_points"], "median_abs_error_pct": s["median_abs_pct_error"],
        "mean_abs_error_pct": s["mean_abs_pct_error"], "max_abs_error_pct": s["max_abs_pct_error"],
        "log_r": s["log_pearson_r"],
    }
    if excluded is not None:
        out["excluded"] = excluded
    return out


def to_json(results: dict[str, ChipValidation], rows: Sequence[TraceRow] | None = None,
            measurements: str | None = None) -> dict[str, Any]:
    """The --json document: coverage, pooled figures, chip families, and each chip with its points."""
    rows = load_traces() if rows is None else rows
    cov = coverage(results, rows)
    chips = {}
    for name, v in results.items():
        groups: dict[str, list[Point]] = {}
        for p in v.points:
            groups.setdefault(p.family, []).append(p)
        chips[name] = {**figures(v.points, v.excluded),
                       "families": {f: figures(groups[f]) for f in sorted(groups)},
                       "per_point": [p.as_dict() for p in v.points]}
    fams: dict[str, list[ChipValidation]] = {}
    for name, v in results.items():
        fams.setdefault(name.split()[0] + " family", []).append(v)
    return {
        "measurements": measurements or "validation/" + ", validation/".join(TRACE_FILES),
        "coverage": cov,
        "pooled": figures([p for v in results.values() for p in v.points], cov["excluded"]),
        "chip_families": {fam: figures([p for v in vs for p in v.points],
                                       dict(sum((Counter(v.excluded) for v in vs), Counter()).most_common()))
                          for fam, vs in fams.items()},
        "chips": chips,
    }
