"""Fit the chip parameters marked ``fitted`` to the measured traces, and measure how well they hold.

The mapped rows of one chip are grouped into measurements (a rate row that restates a latency
row stays with it) and split deterministically: a seeded hash sends ``holdout`` of the groups
to a held-back split that the fit never sees. The timing parameters are fitted by a coordinate
search in log space over a fixed grid (factors 2^(k/2), then 2^(k/8) around the best, never
beyond 4x either way of the configured value), minimising the mean absolute log error of the
calibration split's timing points; every evaluated parameter vector is memoised. The energy
model's coefficients (section ``power``) enter the power points linearly; they are then
solved at the fitted timing for the same objective, the mean absolute log error of the
calibration split's power rows (non-negative, by a coordinate search from the least-squares
solution). Leave-one-family-out cross-validation reuses the
memo: each timing family is predicted by a fit that did not see it.
"""

from __future__ import annotations

import hashlib
import itertools
import io
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from anesim.chips import load_chip
from anesim.chips.params import Param
from anesim.chips.schema import ChipConfig
from anesim.errors import ConfigError, InputError
from anesim.timing.power import energy_features
from anesim.validate.runner import validate_chip
from anesim.validate.simulate import PipelineTimer, Simulator, Timer
from anesim.validate.stats import Point, summarize
from anesim.validate.traces import TraceRow, load_traces

COARSE = [2 ** (k / 2) for k in range(-4, 5)]  # 0.25x .. 4x
FINE = [2 ** (k / 8) for k in range(-3, 4)]  # about -23 % .. +30 %
Values = tuple[float, ...]


@dataclass(frozen=True)
class FittedParam:
    """A chip parameter marked ``fitted``: where it lives and whether other generations share it."""

    key: str
    value: float
    integer: bool
    file: Path
    shared: bool  # defined above the chip's own generation, so other generations inherit it


def fitted_params(chip: ChipConfig, derived: bool = False, include: Sequence[str] = ()) -> list[FittedParam]:
    """Every parameter of the chip whose provenance is ``fitted``, or whose key is in ``include``,
    with the file defining it.

    With ``derived``, the Params the cross-generation rules derive for the chip are included too,
    as the chip's own (fitting them to a measurement file of that chip writes a per-chip value
    into its own file, which then stands instead of the rule).
    """
    chain = [Path(f) for f in chip.source_files]
    raw = [yaml.safe_load(f.read_text(encoding="utf-8")) or {} for f in chain]
    own = {p.resolve() for p in chain[:2]}  # the chip file and the generation it names
    out = []
    for section in type(chip).model_fields:
        block = getattr(chip, section)
        if not hasattr(type(block), "model_fields"):
            continue
        for name in type(block).model_fields:
            param = getattr(block, name)
            if isinstance(param, Param) and derived and f"{section}.{name}" in chip.derived_params:
                out.append(FittedParam(f"{section}.{name}", param.value, isinstance(param.value, int), chain[0],
                                       False))
            elif isinstance(param, Param) and (param.provenance == "fitted" or f"{section}.{name}" in include):
                key = f"{section}.{name}"
                # the nearest file in the inheritance chain that sets the key defines it
                file = next((f for f, d in zip(chain, raw) if name in (d.get(section) or {})), chain[-1])
                out.append(FittedParam(key, param.value, isinstance(param.value, int), file,
                                       file.resolve() not in own))
    return out


def with_values(chip: ChipConfig, params: Sequence[FittedParam], values: Values) -> ChipConfig:
    """A copy of the chip with the given fitted values (no file is touched)."""
    updates: dict[str, dict[str, Any]] = {}
    for p, v in zip(params, values):
        section, name = p.key.split(".")
        old = getattr(getattr(chip, section), name)
        value = int(round(v)) if p.integer else float(v)
        updates.setdefault(section, {})[name] = old.model_copy(update={"value": value})
    return chip.model_copy(update={s: getattr(chip, s).model_copy(update=u) for s, u in updates.items()})


def group_of(row: TraceRow) -> str:
    """The measurement a row belongs to: the row it restates, or itself."""
    return row.restates or row.id


def held_back(row: TraceRow, seed: int, fraction: float) -> bool:
    """Deterministic split by a seeded hash of the row's measurement group."""
    h = hashlib.sha256(f"{seed}:{group_of(row)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 < fraction


def abs_log_error(p: Point) -> float:
    """|log(simulated / measured)| in latency space (a large finite value for a failed point)."""
    ratio = 1.0 + p.error_pct / 100.0
    return abs(math.log(ratio)) if math.isfinite(ratio) and ratio > 0 else 10.0


@dataclass
class Evaluator:
    """Validates one chip at given fitted values, memoising per-row points."""

    name: str
    chip: ChipConfig
    params: list[FittedParam]
    rows: Sequence[TraceRow]
    timer: Timer
    progress: Callable[[int], None] | None = None
    memo: dict[Values, dict[str, Point]] = field(default_factory=dict)

    def points(self, values: Values) -> dict[str, Point]:
        """Points keyed by row id at these values."""
        key = tuple(int(round(v)) if p.integer else float(f"{v:.6g}") for p, v in zip(self.params, values))
        hit = self.memo.get(key)
        if hit is None:
            variant = with_values(self.chip, self.params, key)
            result = validate_chip(self.name, self.rows, timer=self.timer, chip=variant)
            hit = {p.id: p for p in result.points}
            self.memo[key] = hit
            if self.progress:
                self.progress(len(self.memo))
        return hit

    def objective(self, values: Values, ids: set[str]) -> float:
        """Mean absolute log error over the rows in ``ids``."""
        pts = self.points(values)
        errs = [abs_log_error(pts[i]) for i in ids if i in pts]
        return math.fsum(errs) / len(errs) if errs else math.inf


BOUND = 4.0  # a fitted value stays within this factor of the configured one
# the coefficients in the order of anesim.timing.power.energy_features
POWER_KEYS = ("power.engine_w", "power.mac_energy_j", "power.dram_byte_energy_j")
# floors for a coefficient the fit drives to zero (the schema wants positive values)
POWER_FLOORS = (1e-3, 1e-15, 1e-15)


def _nonneg_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |a x - b| subject to x >= 0, by trying every support (three unknowns at most)."""
    n = a.shape[1]
    best, best_res = np.zeros(n), float(np.sum(b ** 2))
    for mask in range(1, 1 << n):
        cols = [j for j in range(n) if mask >> j & 1]
        x, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
        if np.any(x < 0):
            continue
        full = np.zeros(n)
        full[cols] = x
        res = float(np.sum((a @ full - b) ** 2))
        if res < best_res - 1e-15:
            best, best_res = full, res
    return best


def _log_error(a: np.ndarray, x: np.ndarray) -> float:
    """Mean |log(a x)|: a's rows are features over measured values, so a x is simulated / measured."""
    return float(np.mean(np.abs(np.log(np.maximum(a @ x, 1e-300)))))


def _exact_vertices(a: np.ndarray) -> np.ndarray:
    """Every non-negative x (one per column) that fits some k rows exactly on k of its columns.

    An absolute-error fit of k free coefficients has an optimum that fits k rows exactly (as
    in least absolute deviations), so these are the candidates a search starts from.
    """
    m, n = a.shape
    out = []
    for k in range(1, min(n, m) + 1):
        rows = np.array(list(itertools.combinations(range(m), k)))
        for cols in itertools.combinations(range(n), k):
            sub = a[rows][:, :, cols]  # (candidates, k, k)
            ok = np.abs(np.linalg.det(sub)) > 1e-12
            if not ok.any():
                continue
            sol = np.linalg.solve(sub[ok], np.ones((int(ok.sum()), k, 1)))[:, :, 0]
            sol = sol[(sol >= 0).all(axis=1)]
            full = np.zeros((len(sol), n))
            full[:, list(cols)] = sol
            out.append(full)
    return np.concatenate(out) if out else np.zeros((0, n))


def power_solve(a: np.ndarray) -> np.ndarray:
    """Non-negative x minimising the mean absolute log error of ``a x`` against 1.

    The power rows are scored like the timing rows (mean |log(simulated / measured)|, the
    objective of the timing search): least squares of the relative error let the few rows
    that are 2-5x off (a DRAM stream at 0.15 W, the guide's dispatch-floor rail) pull every
    coefficient. The search starts at the best of the exact-fit vertices (and the
    non-negative least-squares solution), then refines by a deterministic coordinate search
    in log space, halving the step from a factor of 2 to about 1.0001. ``a`` should have
    columns of comparable size (the callers scale them).
    """
    cands = np.vstack([_exact_vertices(a), _nonneg_lstsq(a, np.ones(a.shape[0]))[None, :]])
    errs = np.mean(np.abs(np.log(np.maximum(a @ cands.T, 1e-300))), axis=0)
    x = cands[int(np.argmin(errs))].copy()
    best = _log_error(a, x)
    step = math.log(2.0)
    while step > 1e-4:
        moved = True
        while moved:
            moved = False
            for j in range(a.shape[1]):
                if x[j] == 0:
                    continue  # the vertex set already tried this coefficient at zero and not
                for s in (step, -step):
                    trial = x.copy()
                    trial[j] *= math.exp(s)
                    err = _log_error(a, trial)
                    if err < best - 1e-13:
                        x, best, moved = trial, err, True
                        break
        step /= 2
    return x


def fit_power(ev: Evaluator, values: Values, ids: set[str]) -> dict[str, float] | None:
    """Energy coefficients minimising the mean absolute log error of the power rows in ``ids``."""
    chip = with_values(ev.chip, ev.params, values)
    sim = Simulator(chip, ev.timer)
    feats, measured = [], []
    for row in ev.rows:
        if row.id not in ids or row.family != "power" or row.method != "sustained_power":
            continue
        inner = {k: v for k, v in row.params.items() if k != "workload"}
        t = sim.time(row.params["workload"], inner)
        seconds = max(t.latency_s, 1e-12)
        # power = energy / latency: each coefficient's feature over the call's duration
        feats.append([f / seconds for f in energy_features(t.latency_s, t.macs, t.dram_bytes)])
        measured.append(float(row.measured))  # type: ignore[arg-type]
    if len(feats) < 3:
        return None
    a = np.asarray(feats) / np.asarray(measured)[:, None]
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300)  # columns span 20 decades
    x = power_solve(a / scale) / scale
    return {k: max(float(v), floor) for k, v, floor in zip(POWER_KEYS, x, POWER_FLOORS)}


def _candidates(p: FittedParam, centre: float, factors: list[float]) -> list[float]:
    out: list[float] = []
    for f in factors:
        v = min(max(centre * f, p.value / BOUND), p.value * BOUND)
        v = float(max(1, int(round(v)))) if p.integer else v
        if v not in out:
            out.append(v)
    return out


def coordinate_search(ev: Evaluator, start: Values, ids: set[str], free: Sequence[bool]) -> tuple[Values, list[bool]]:
    """Coordinate descent over the coarse then the fine log grid; ties keep the current value.

    Returns the values and, per parameter, whether moving it alone ever changed the objective:
    a parameter no point in ``ids`` depends on is left where it was, and is not a fit.
    """
    best = list(start)
    best_obj = ev.objective(tuple(best), ids)
    informed = [False] * len(best)
    for factors in (COARSE, FINE):
        for _ in range(3):  # passes until no coordinate moves
            moved = False
            for j, p in enumerate(ev.params):
                if not free[j]:
                    continue
                base = best_obj
                for v in _candidates(p, best[j], factors):
                    trial = list(best)
                    trial[j] = v
                    obj = ev.objective(tuple(trial), ids)
                    informed[j] = informed[j] or abs(obj - base) > 1e-12
                    if obj < best_obj - 1e-12:
                        best, best_obj, moved = trial, obj, True
            if not moved:
                break
    return tuple(best), informed


@dataclass
class Calibration:
    """The outcome of one calibration: values before and after, and the errors on each split."""

    chip: str
    params: list[FittedParam]
    free: list[bool]  # fitted: free to move, and some calibration point depends on it
    start: Values
    fitted: Values
    calibration: dict[str, Any]
    held_back: dict[str, Any]
    before_held_back: dict[str, Any]
    family_cv: dict[str, Any] | None
    evaluations: int
    split: str
    files: tuple[str, ...]  # the chip file fitted and the generation files it inherits
    held: list[str] = field(default_factory=list)  # per parameter not fitted, why ("" for one fitted)


def _summary(ev: Evaluator, values: Values, ids: set[str]) -> dict[str, Any]:
    pts = ev.points(values)
    return summarize([pts[i] for i in sorted(ids) if i in pts])


def family_cv(ev: Evaluator, start: Values, ids: set[str], free: Sequence[bool]) -> dict[str, Any]:
    """Leave-one-family-out: each family's points predicted by a fit on the other families."""
    fams: dict[str, set[str]] = {}
    for i, p in ev.points(start).items():
        if i in ids:
            fams.setdefault(p.family, set()).add(i)
    predicted: list[Point] = []
    per_family = {}
    for fam in sorted(fams):
        fit, _ = coordinate_search(ev, start, ids - fams[fam], free)
        pts = ev.points(fit)
        mine = [pts[i] for i in sorted(fams[fam]) if i in pts]
        predicted += mine
        per_family[fam] = {"n_points": len(mine),
                           "median_abs_pct_error": round(median(p.abs_error_pct for p in mine), 4) if mine else None}
    out = summarize(predicted)
    out["families"] = per_family
    return out


def _held_reason(p: FittedParam, free: bool, searched: bool, informed: bool, power_solved: bool,
                 only: str | None) -> str:
    """Why a parameter was not fitted ("" when it was)."""
    if not free:
        if only is not None and not p.key.startswith(only):
            return f"held (--only {only})"
        return "shared with other generations: held (pass --param to fit)"
    if searched and not informed:
        return "held: no calibration point depends on it"
    if not searched and not power_solved:
        return "held: fewer than 3 power rows in the calibration split"
    return ""


def calibrate(name: str, *, rows: Sequence[TraceRow] | None = None, timer: Timer | None = None,
              seed: int = 7, holdout: float = 0.25, include: Sequence[str] = (), cv: bool = True,
              progress: Callable[[int], None] | None = None, only: str | None = None,
              derived: bool = False, chip_file: str | Path | None = None) -> Calibration:
    """Fit the chip's fitted parameters on the calibration split; nothing is written.

    ``name`` is the chip the measurements name; ``chip_file`` a chip file of one's own to fit
    instead of the shipped one of that name. ``only`` restricts the fit to the keys that start
    with it (``power`` fits the energy model alone and holds the timing parameters at their
    configured values).
    """
    if not 0.0 <= holdout < 1.0:  # (NaN fails this too)
        raise InputError("--holdout is the fraction of measurement groups held back",
                         expected="a number from 0 up to, not including, 1", found=str(holdout))
    rows = load_traces() if rows is None else rows
    chip = load_chip(chip_file if chip_file is not None else name)
    params = fitted_params(chip, derived, include)
    unknown = sorted(set(include) - {p.key for p in params})
    if unknown:
        raise InputError("--param names no parameter of the chip", found=", ".join(unknown),
                         expected="a key such as dispatch.per_task_overhead_s (anesim chips show NAME lists them)")
    if not params:
        raise InputError("the chip has no parameters marked fitted", found=repr(name),
                         expected="--param KEY to fit one (e.g. dispatch.per_task_overhead_s), --measurements "
                                  "to fit the chip's derived parameters to a file, or --shared")
    if only is not None and not any(p.key.startswith(only) for p in params):
        raise InputError("--only matches none of the parameters to fit", found=only,
                         expected="a prefix of one of " + ", ".join(p.key for p in params))
    free = [(not p.shared or p.key in include) and (only is None or p.key.startswith(only)) for p in params]
    mine = [r for r in rows if r.target == name and r.mapped]
    if not mine:
        raise InputError("no measured traces for this chip", found=repr(name))
    held = {r.id for r in mine if held_back(r, seed, holdout)}
    cal = {r.id for r in mine} - held
    if not cal:
        raise InputError("every row of the chip falls in the held-back split: nothing to fit on",
                         expected="more rows, or a smaller --holdout", found=f"{len(mine)} row(s), --holdout {holdout}")
    keys = frozenset(p.key for p in params)
    ev = Evaluator(name, chip, params, rows, timer or PipelineTimer(keys), progress)
    start = tuple(float(p.value) for p in params)
    power = {r.id for r in mine if r.family == "power"}
    searched = [f and p.key not in POWER_KEYS for f, p in zip(free, params)]
    fitted, informed = coordinate_search(ev, start, cal - power, searched)
    solved = fit_power(ev, fitted, cal & power)
    if solved is not None:
        fitted = tuple(solved[p.key] if f and p.key in solved else v for p, f, v in zip(params, free, fitted))
    # (a parameter no calibration point moves, or an energy coefficient without the three power
    # rows that solve them, stays as it was and is not written as fitted on these measurements)
    reasons = [_held_reason(p, f, s, i, solved is not None, only) for p, f, s, i in zip(params, free, searched, informed)]
    moved = [p.key for p, s, i in zip(params, searched, informed) if s and i]
    if len(moved) > len(cal - power):
        raise InputError(f"{len(cal - power)} calibration point(s) cannot fit the {len(moved)} parameters they "
                         f"depend on ({', '.join(moved)})",
                         expected="at least one calibration point per parameter: more measurements, a smaller "
                                  "--holdout, or --only PREFIX to fit fewer parameters",
                         found=f"{len(cal - power)} of the chip's {len(mine)} mapped rows in the calibration split")
    return Calibration(
        chip=name, params=params, free=[not h for h in reasons], start=start, fitted=fitted, held=reasons,
        calibration=_summary(ev, fitted, cal), held_back=_summary(ev, fitted, held),
        before_held_back=_summary(ev, start, held),
        family_cv=family_cv(ev, start, (cal | held) - power, searched) if cv else None,
        evaluations=len(ev.memo),
        split=f"{round(100 * (1 - holdout))} % of measurement groups by seeded hash (seed {seed})",
        files=tuple(chip.source_files),
    )


def format_value(value: Any) -> str:
    """A YAML scalar for a parameter value: ints plainly, floats in short exponent form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        text = f"{mant}e{int(exp):+d}"
    elif "." not in text:
        text += ".0"
    return text


class _Representer(RoundTripRepresenter):
    """Round-trip representer that writes a new float value in the chip files' short form."""


_Representer.add_representer(
    float, lambda rep, value: rep.represent_scalar("tag:yaml.org,2002:float", format_value(value)))


def _round_trip() -> YAML:
    """ruamel.yaml in round-trip mode: comments, key order, quotes and folded text survive an edit."""
    y = YAML()
    y.Representer = _Representer
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a line the file keeps long
    return y


def set_param(path: Path, dotted: str, value: Any, source: str, provenance: str = "fitted",
              create: bool = False) -> str:
    """Set one parameter's value, provenance and source in a chip file, keeping every comment."""
    y = _round_trip()
    try:
        data = y.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read chip file for editing: {exc}", file=path) from None
    node = data
    keys = dotted.split(".")
    for i, key in enumerate(keys):
        if create and isinstance(node, dict) and key not in node:
            node[key] = {"value": None, "provenance": provenance, "source": ""} if i == len(keys) - 1 else {}
        if not isinstance(node, dict) or key not in node:
            raise ConfigError("parameter not found for editing", file=path, where=f"key '{dotted}'")
        node = node[key]
    for field_name in ("value", "provenance", "source"):
        if isinstance(node, dict) and "rule" in node and field_name not in node:
            del node["rule"]  # a per-chip value replaces the rule in this file
            node["value"], node["provenance"], node["source"] = None, provenance, ""
        if not isinstance(node, dict) or field_name not in node:
            raise ConfigError(f"parameter has no '{field_name}' to edit", file=path, where=f"key '{dotted}'")
    node["value"] = value
    node["provenance"] = provenance
    node["source"] = DoubleQuotedScalarString(source)
    out = io.StringIO()
    y.dump(data, out)
    try:
        path.write_text(out.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the edited chip file: {exc.strerror}", file=path) from None
    return out.getvalue()


def chip_file_copies(files: Sequence[str], out_dir: Path) -> dict[Path, Path]:
    """Copy a chip's file and every generation file it inherits (``files``, the chip's first) into
    ``out_dir``: the chip's own at the top, the others in ``generations/``, where the loader looks
    for a parent first. Returns each original (resolved) with its copy, the chip's own first."""
    copies: dict[Path, Path] = {}
    for n, source in enumerate(Path(f) for f in files):
        target = out_dir / source.name if n == 0 else out_dir / "generations" / source.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not (target.exists() and target.samefile(source)):  # (a calibrated copy, fitted again)
                shutil.copyfile(source, target)
        except OSError as exc:
            raise InputError("cannot write a copy of the chip file", file=target, expected="a folder one can write to",
                             found=exc.strerror or type(exc).__name__) from None
        copies[source.resolve()] = target
    return copies


def write_back(result: Calibration, measured_in: str, out_dir: Path | None = None) -> list[Path]:
    """Write the fitted values into the files that define them; returns the files written.

    ``measured_in`` names the measurements fitted on (``validation/m1.yaml``, or a CSV's path).
    With ``out_dir`` the chip's files are copied there (:func:`chip_file_copies`) and the copies
    are edited, the originals left as they were: ``out_dir/<chip file>`` is the calibrated chip,
    the first file returned.
    """
    copies = chip_file_copies(result.files, out_dir) if out_dir is not None else {}
    held = result.held_back.get("median_abs_pct_error")
    held_text = f"{held:.1f} %" if isinstance(held, (int, float)) else "n/a"
    source = (f"anesim calibrate --chip {result.chip}: fitted on the calibration split "
              f"({result.split}) of {measured_in}; held-back median |err| {held_text}")
    edited = []
    for p, free, v in zip(result.params, result.free, result.fitted):
        if not free:
            continue
        value: Any = int(round(v)) if p.integer else float(f"{v:.4g}")
        target = copies.get(p.file.resolve(), p.file)
        set_param(target, p.key, value, source, create=True)
        if target not in edited:
            edited.append(target)
    if copies:
        own = next(iter(copies.values()))
        return [own] + [f for f in edited if f != own]
    return edited
