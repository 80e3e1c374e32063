"""Fit the cross-generation model's shared constants, and cross-validate it chip by chip.

The shared constants (chips/model/scaling.yaml) reach a chip only through a few derived
Params: the MAC width, the weight stream, the refetch ratio, the planar rate and the three
energy coefficients. A fit must evaluate many constant vectors, so it runs on a surrogate built
from a handful of full simulations per chip:

- each chip is simulated at the Params its rules give at the model's reference constants (its
  ``fit`` block) and with each derived timing Param halved and doubled; every point's
  log(simulated / measured) is then modelled as its value at the reference plus, per Param, a
  piecewise-linear function of log(Param / reference Param) through those three simulations
  (linear beyond them);
- the energy coefficients enter a power point linearly, so they are solved directly at the
  fitted timing, for the timing search's objective (mean absolute log error, non-negative).

Timing constants are fitted by a deterministic coordinate search in log space over each
constant's fixed range, from the reference, on the mean absolute log error; nothing reads the
values a previous fit wrote, so a refit is idempotent. Every figure reported as out-of-sample
or in-sample is then measured by a full simulation at the fitted constants, never by the
surrogate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anesim.chips import load_chip
from anesim.chips.loader import resolve_file
from anesim.chips.scaling import constants_of, derive, load_model
from anesim.chips.schema import ChipConfig
from anesim.errors import AnesimError, InputError
from anesim.validate.calibrate import COARSE, FINE, power_solve
from anesim.validate.methods import measure
from anesim.validate.runner import point_of, validated_chips
from anesim.validate.simulate import PipelineTimer, Simulator
from anesim.validate.stats import LATENCY_QUANTITIES, Point, summarize
from anesim.validate.traces import TraceRow, load_traces

TIMING_PARAMS = ("ne.mac_lanes_per_out_channel", "dram.weight_bytes_per_s", "dram.weight_refetch_ratio",
                 "dram.scratch_bytes_per_s", "planar.elements_per_cycle")
POWER_PARAMS = ("power.engine_w", "power.mac_energy_j", "power.dram_byte_energy_j")
# in the order of POWER_PARAMS: each energy coefficient is one constant times chip facts
POWER_CONSTANTS = ("engine_floor_w", "mac_energy_j_n5", "dram_byte_energy_j_n5")
PROBE = math.log(2.0)  # each timing Param is simulated at half and at twice its shipped value
Constants = dict[str, float]
Progress = Callable[[str], None]


def chip_family(name: str) -> str:
    """The family a calibration chip belongs to: its first word (M1, M5)."""
    return name.split()[0]


def _set(chip: ChipConfig, values: dict[str, float]) -> ChipConfig:
    """A copy of the chip with the given dotted Params set (no file is touched)."""
    updates: dict[str, dict[str, Any]] = {}
    for key, v in values.items():
        section, name = key.split(".")
        old = getattr(getattr(chip, section), name)
        value = int(round(v)) if isinstance(old.value, int) else float(v)
        updates.setdefault(section, {})[name] = old.model_copy(update={"value": value})
    return chip.model_copy(update={s: getattr(chip, s).model_copy(update=u) for s, u in updates.items()})


@dataclass
class Simulated:
    """Full-simulation points of one chip, and the power rows' workload timings."""

    points: dict[str, Point]
    power: dict[str, tuple[float, float, float]]  # row id -> (latency s, MACs, DRAM bytes) of its workload


def simulate_rows(name: str, chip: ChipConfig, rows: Sequence[TraceRow], timer: PipelineTimer) -> Simulated:
    """Every mapped row of chip ``name`` simulated on ``chip``; rows the simulator refuses are left out."""
    sim = Simulator(chip, timer)
    points: dict[str, Point] = {}
    power: dict[str, tuple[float, float, float]] = {}
    for row in rows:
        if row.target != name or not row.mapped:
            continue
        try:
            m = measure(sim, row.family or "", row.method or "", row.params, row.quantity or "")
        except AnesimError:
            continue
        points[row.id] = point_of(row, m.value, m.latency_s, m.work, m.params)
        if row.family == "power":
            t = sim.time(row.params["workload"], {k: v for k, v in row.params.items() if k != "workload"})
            power[row.id] = (t.latency_s, t.macs, t.dram_bytes)
    return Simulated(points, power)


def log_ratio(p: Point) -> float:
    """log(simulated / measured) in latency space (a large finite value for a failed point)."""
    r = 1.0 + p.error_pct / 100.0
    return math.log(r) if math.isfinite(r) and r > 0 else 10.0



def derived_values(raw: dict[str, Any], file: Path, constants: Constants) -> dict[str, float]:
    """The fitted Params of merged chip data under ``constants`` (the rules re-evaluated)."""
    data = copy.deepcopy(raw)
    derive(data, file, constants=constants)
    return {k: float(data[k.split(".")[0]][k.split(".")[1]]["value"]) for k in TIMING_PARAMS + POWER_PARAMS}


@dataclass
class ChipSurface:
    """The surrogate of one chip: shipped-Param values and each point's response to the timing Params."""

    name: str
    chip: ChipConfig
    raw: dict[str, Any]  # merged chip data before rules, for re-deriving Params under other constants
    file: Path
    base: dict[str, float]  # shipped values of the derived Params
    ids: list[str]  # timing (non-power) points
    log0: np.ndarray
    resp: dict[str, tuple[np.ndarray, np.ndarray]]  # Param -> (log ratio at half, at double) minus log0
    power_ids: list[str]
    power_meas: np.ndarray
    power_t0: np.ndarray  # log latency of each power row's workload
    power_resp: dict[str, tuple[np.ndarray, np.ndarray]]
    power_macs: np.ndarray
    power_bytes: np.ndarray
    points0: dict[str, Point] = field(default_factory=dict)

    def sustained_fraction_floor(self) -> float:
        """The least sustained_fraction that keeps this chip's peak at or above its best measured rate.

        The best rate is the highest FLOP/s one program was measured to sustain in the chip's rows
        (slopes and intercepts, which subtract a fixed cost, do not count): a peak below it would
        make that measurement impossible (docs/chips.md, "How mac_lanes_per_out_channel is set").
        """
        rates = [p.measured for p in self.points0.values()
                 if p.quantity == "flop_rate" and p.method not in ("per_layer_slope", "intercept")]
        f = self.chip.facts
        if not rates or f.vendor_tops is None:
            return 0.0
        per_lane = 2.0 * self.chip.ne.cores.value * self.chip.ne.out_channels_per_cycle_fp16.value * self.chip.ne.clock_hz.value
        vendor = f.vendor_tops.value * 1e12 * (0.5 if f.vendor_tops_counts and f.vendor_tops_counts.value == "int8" else 1.0)
        lanes = 1 << max(0, math.ceil(math.log2(max(rates) / per_lane) - 1e-12))
        return (lanes / 2) * per_lane / vendor * 1.0001  # just above the step to half the lanes

    def params_at(self, constants: Constants) -> dict[str, float]:
        """The chip's derived Params under ``constants`` (the rules re-evaluated, nothing validated)."""
        return derived_values(self.raw, self.file, constants)

    def _shift(self, resp: dict[str, tuple[np.ndarray, np.ndarray]], params: dict[str, float], n: int) -> np.ndarray:
        out = np.zeros(n)
        for key, (lo, hi) in resp.items():
            x = math.log(params[key] / self.base[key])
            if x:
                out += np.where(x < 0, -x * lo / PROBE, x * hi / PROBE)
        return out

    def timing_log_ratios(self, params: dict[str, float]) -> np.ndarray:
        """Surrogate log(simulated / measured) of every timing point."""
        return self.log0 + self._shift(self.resp, params, len(self.ids))

    def power_multipliers(self, constants: Constants) -> np.ndarray:
        """What each power constant is multiplied by to give the chip's energy coefficient: its rule
        evaluated with that constant at 1 (each power rule is linear in its one constant)."""
        unit = self.params_at({**constants, **{k: 1.0 for k in POWER_CONSTANTS}})
        return np.array([unit[param] for param in POWER_PARAMS])

    def power_features(self, params: dict[str, float], multipliers: np.ndarray) -> np.ndarray:
        """Per power row: the features the three power constants multiply, over measured watts."""
        t = np.exp(self.power_t0 + self._shift(self.power_resp, params, len(self.power_ids)))
        feats = np.stack([np.full_like(t, 1.0), self.power_macs / t, self.power_bytes / t], axis=1) * multipliers
        return feats / self.power_meas[:, None]


def reference_constants() -> Constants:
    """The constants the surrogate is built at: the model's ``fit`` references over its values.

    Fitted timing constants start from their ``reference`` (chips/model/scaling.yaml, ``fit``),
    never from the values a previous fit wrote, so refitting from a written fit is idempotent.
    """
    model = load_model()
    out = constants_of(model)
    for k, r in model.fit.items():
        if k in out:
            out[k] = float(r.reference)
    return out


def build_surface(name: str, rows: Sequence[TraceRow], timer: PipelineTimer,
                  progress: Progress | None = None, reference: Constants | None = None) -> ChipSurface:
    """Simulate one chip at the reference constants' Params and with each timing Param halved and doubled."""
    shipped = load_chip(name)
    file = Path(shipped.source_files[0])
    raw, _, _ = resolve_file(file)
    base = derived_values(raw, file, reference or reference_constants())
    chip = _set(shipped, {k: base[k] for k in TIMING_PARAMS})
    if progress:
        progress(f"{name}: reference Params")
    s0 = simulate_rows(name, chip, rows, timer)
    ids = [i for i, p in s0.points.items() if p.family != "power"]
    pids = [i for i in s0.points if i in s0.power]
    log0 = np.array([log_ratio(s0.points[i]) for i in ids])
    t0 = np.array([math.log(max(s0.power[i][0], 1e-12)) for i in pids])
    resp, presp = {}, {}
    for key in TIMING_PARAMS:
        pair, ppair = [], []
        for factor in (0.5, 2.0):
            if progress:
                progress(f"{name}: {key} x {factor:g}")
            s = simulate_rows(name, _set(chip, {key: base[key] * factor}), rows, timer)
            pair.append(np.array([log_ratio(s.points[i]) if i in s.points else 10.0 for i in ids]) - log0)
            ppair.append(np.array([math.log(max(s.power.get(i, s0.power[i])[0], 1e-12)) for i in pids]) - t0)
        resp[key] = (pair[0], pair[1])
        presp[key] = (ppair[0], ppair[1])
    return ChipSurface(
        name=name, chip=shipped, raw=raw, file=file, base=base, ids=ids, log0=log0, resp=resp, power_ids=pids,
        power_meas=np.array([float(s0.points[i].measured) for i in pids]), power_t0=t0, power_resp=presp,
        power_macs=np.array([s0.power[i][1] for i in pids]), power_bytes=np.array([s0.power[i][2] for i in pids]),
        points0=s0.points,
    )


def _timing_objective(surfaces: Sequence[ChipSurface], constants: Constants) -> float:
    errs = np.concatenate([np.abs(s.timing_log_ratios(s.params_at(constants))) for s in surfaces])
    return float(errs.mean()) if errs.size else math.inf


def _grid(low: float, high: float, centre: float, factors: Sequence[float]) -> list[float]:
    """Candidates around ``centre`` on a log grid, clipped to [low, high]."""
    out: list[float] = []
    for f in factors:
        v = min(max(centre * f, low), high)
        if v not in out:
            out.append(v)
    return out


GLOBAL_STEPS = 24  # the first pass scans each constant's whole range at this many log-spaced points


def fit_constants(surfaces: Sequence[ChipSurface], start: Constants | None = None) -> Constants:
    """Shared constants fitted on the given chips: timing by coordinate search, energy by ``power_solve``.

    The search is deterministic and does not read the constants the model file holds: it starts
    at the ``fit`` references (or ``start``), scans each timing constant's whole range, then
    refines on the coarse and the fine log grid until no coordinate moves. Ties keep the
    current value, so the result depends on the surrogate and the data alone.
    """
    model = load_model()
    best = dict(start or reference_constants())
    timing = [k for k in best if k not in POWER_CONSTANTS and model.constants[k].provenance == "fitted"]
    missing = [k for k in timing if k not in model.fit]
    if missing:
        raise InputError("a fitted constant has no search range", where="chips/model/scaling.yaml, key 'fit'",
                         expected="reference, low and high for " + ", ".join(missing))
    memo: dict[tuple[float, ...], float] = {}

    def objective(c: Constants) -> float:
        key = tuple(float(f"{c[k]:.6g}") for k in timing)
        if key not in memo:
            memo[key] = _timing_objective(surfaces, c)
        return memo[key]

    # the MAC width may not put any chip's peak below a rate it was measured to sustain
    floors = {"sustained_fraction": max([s.sustained_fraction_floor() for s in surfaces] + [0.0])}
    low = {k: max(model.fit[k].low, floors.get(k, 0.0)) for k in timing}
    high = {k: max(model.fit[k].high, low[k]) for k in timing}
    for k in timing:
        best[k] = min(max(best[k], low[k]), high[k])
    best_obj = objective(best)
    scan = {k: [low[k] * (high[k] / low[k]) ** (i / (GLOBAL_STEPS - 1)) for i in range(GLOBAL_STEPS)] for k in timing}
    for stage in ("scan", COARSE, FINE):
        for _ in range(4):
            moved = False
            for k in timing:
                cands = scan[k] if stage == "scan" else _grid(low[k], high[k], best[k], stage)
                for v in cands:
                    trial = {**best, k: v}
                    obj = objective(trial)
                    if obj < best_obj - 1e-12:
                        best, best_obj, moved = trial, obj, True
            if not moved:
                break
    feats = [s.power_features(s.params_at(best), s.power_multipliers(best)) for s in surfaces if s.power_ids]
    if feats:
        a = np.concatenate(feats)
        scale = np.maximum(np.abs(a).max(axis=0), 1e-300)
        x = power_solve(a / scale) / scale
        for k, v, floor in zip(POWER_CONSTANTS, x, (1e-3, 1e-15, 1e-15)):
            best[k] = max(float(v), floor)
    return {k: float(f"{v:.4g}") for k, v in best.items()}


def predict(surface: ChipSurface, constants: Constants, rows: Sequence[TraceRow],
            timer: PipelineTimer) -> list[Point]:
    """Full simulation of one chip with its derived Params at ``constants``."""
    values = surface.params_at(constants)
    chip = _set(surface.chip, values)
    return list(simulate_rows(surface.name, chip, rows, timer).points.values())


def _figures(points: Sequence[Point]) -> dict[str, Any]:
    s = summarize(points)
    return {"points": s["n_points"], "median_abs_error_pct": s["median_abs_pct_error"],
            "log_r": s["log_pearson_r"]}


@dataclass
class CrossValidation:
    """In-sample and out-of-sample figures per chip, per fold, and the constants of every fit."""

    chips: dict[str, dict[str, Any]]  # chip -> points, in-sample and out-of-sample figures
    folds: list[dict[str, Any]]
    constants: Constants  # fitted on every chip
    in_sample: dict[str, list[Point]]
    loco: dict[str, list[Point]]
    lofo: dict[str, list[Point]]

    def pooled(self) -> dict[str, Any]:
        """Pooled in-sample, leave-one-chip-out and leave-one-family-out figures."""
        return {"in_sample": _figures([p for v in self.in_sample.values() for p in v]),
                "leave_one_chip_out": _figures([p for v in self.loco.values() for p in v]),
                "leave_one_family_out": _figures([p for v in self.lofo.values() for p in v])}

    def to_json(self) -> dict[str, Any]:
        """The --cross-validate --json document."""
        return {"constants": self.constants, "chips": self.chips, "pooled": self.pooled(), "folds": self.folds}


def surfaces_for(rows: Sequence[TraceRow] | None = None, progress: Progress | None = None,
                 timer: PipelineTimer | None = None) -> tuple[list[ChipSurface], PipelineTimer, Sequence[TraceRow]]:
    """The surrogate of every calibration chip with mapped rows."""
    rows = load_traces() if rows is None else rows
    timer = timer or PipelineTimer(frozenset(TIMING_PARAMS + POWER_PARAMS))
    names = validated_chips(rows)
    if not names:
        raise InputError("no calibration chip has mapped rows")
    return [build_surface(n, rows, timer, progress) for n in names], timer, rows


def cross_validate(rows: Sequence[TraceRow] | None = None, progress: Progress | None = None) -> CrossValidation:
    """Leave-one-chip-out and leave-one-family-out cross-validation of the shared constants."""
    surfaces, timer, rows = surfaces_for(rows, progress)
    by_name = {s.name: s for s in surfaces}
    folds: list[dict[str, Any]] = []
    if progress:
        progress("fit on every chip")
    everything = fit_constants(surfaces)
    in_sample = {s.name: predict(s, everything, rows, timer) for s in surfaces}
    loco: dict[str, list[Point]] = {}
    for s in surfaces:
        if progress:
            progress(f"leave out {s.name}")
        c = fit_constants([t for t in surfaces if t is not s])
        loco[s.name] = predict(s, c, rows, timer)
        folds.append({"kind": "leave_one_chip_out", "fitted_on": [t.name for t in surfaces if t is not s],
                      "predicted": [s.name], "constants": c, **_figures(loco[s.name])})
    lofo: dict[str, list[Point]] = {}
    families = sorted({chip_family(s.name) for s in surfaces})
    if len(families) > 1:
        for fam in families:
            if progress:
                progress(f"leave out the {fam} family")
            train = [s for s in surfaces if chip_family(s.name) != fam]
            test = [s for s in surfaces if chip_family(s.name) == fam]
            c = fit_constants(train)
            for s in test:
                lofo[s.name] = predict(s, c, rows, timer)
            folds.append({"kind": "leave_one_family_out", "fitted_on": [t.name for t in train],
                          "predicted": [t.name for t in test], "constants": c,
                          **_figures([p for t in test for p in lofo[t.name]])})
    chips = {}
    for name in by_name:
        chips[name] = {
            "points": len(in_sample[name]),
            "in_sample_median_abs_error_pct": _figures(in_sample[name])["median_abs_error_pct"],
            "leave_one_chip_out_median_abs_error_pct": _figures(loco[name])["median_abs_error_pct"],
            "leave_one_family_out_median_abs_error_pct":
                _figures(lofo[name])["median_abs_error_pct"] if name in lofo else None,
            "in_sample_log_r": _figures(in_sample[name])["log_r"],
            "leave_one_chip_out_log_r": _figures(loco[name])["log_r"],
            "leave_one_family_out_log_r": _figures(lofo[name])["log_r"] if name in lofo else None,
        }
    return CrossValidation(chips, folds, everything, in_sample, loco, lofo)


def quantile_ratio(points: Iterable[Point], q: float, power: bool) -> float | None:
    """The q-quantile of simulated / measured over latency-like points (or power points)."""
    vals = [log_ratio(p) for p in points
            if (p.family == "power") == power and (power or p.quantity in LATENCY_QUANTITIES)]
    if len(vals) < 5:
        return None
    return float(math.exp(np.quantile(np.array(vals), q)))


COVERAGE = (0.1, 0.9)  # the quantile span of the shipped prediction intervals


def _interval(points: Sequence[Point], basis: str) -> dict[str, Any]:
    lat = [quantile_ratio(points, q, power=False) for q in COVERAGE]
    pw = [quantile_ratio(points, q, power=True) for q in COVERAGE]
    return {"basis": basis, "points": sum(1 for p in points if p.family != "power"),
            "latency_ratio": [round(v, 4) for v in lat] if None not in lat else None,
            "power_ratio": [round(v, 4) for v in pw] if None not in pw else None}


def uncertainty_data(cv: CrossValidation) -> dict[str, Any]:
    """The shipped uncertainty file's content: ratio quantiles of out-of-sample points."""
    loco = [p for v in cv.loco.values() for p in v]
    lofo = [p for v in cv.lofo.values() for p in v] or loco
    gens = sorted({load_chip(n).identity.generation for n in cv.chips})
    return {
        "schema": "anesim-uncertainty/1",
        "generated_by": "anesim validate --cross-validate --write",
        "note": ("simulated / measured at the 10th and 90th percentile of out-of-sample points; a prediction "
                 "L has the range L / high .. L / low (anesim/timing/uncertainty.py)"),
        "coverage": round(COVERAGE[1] - COVERAGE[0], 3),
        "calibrated_chips": sorted(cv.chips),
        "calibrated_generations": gens,
        "same_generation": _interval(loco, "leave_one_chip_out"),
        "other_generation": _interval(lofo, "leave_one_family_out"),
    }


def write_uncertainty(cv: CrossValidation, path: Path | None = None) -> Path:
    """Write the uncertainty file (the shipped one unless a path is given)."""
    import yaml

    from anesim.timing.uncertainty import uncertainty_path

    path = path or uncertainty_path()
    text = ("# Prediction intervals for chips without calibration rows. Generated by\n"
            "# `anesim validate --cross-validate --write`; do not edit by hand.\n")
    path.write_text(text + yaml.safe_dump(uncertainty_data(cv), sort_keys=False), encoding="utf-8")
    return path


def write_constants(constants: Constants, source: str) -> Path:
    """Write fitted shared constants into the scaling model file, keeping its comments."""
    from anesim.chips import scaling
    from anesim.validate.calibrate import set_param

    path = scaling.model_path()
    model = load_model()
    for key, value in constants.items():
        if model.constants[key].provenance == "fitted":
            set_param(path, f"constants.{key}", float(f"{value:.4g}"), source)
    scaling._load.cache_clear()
    return path
