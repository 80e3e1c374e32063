"""Measurement methods: turn simulated timings into the metric a source measured.

Each method reproduces how the source obtained its number:

- ``single_dispatch``: latency of one dispatch of a loaded program (sources take the minimum
  over repeated calls, which is what a deterministic simulator gives);
- ``sustained``: time per iteration of back-to-back dispatches of one program;
- ``per_layer_slope``: (T(n2) - T(n1)) / (n2 - n1) from two simulated chain depths;
- ``intercept``: the fixed per-dispatch cost, T(n1) - n1 * slope;
- ``peak_over_sizes`` / ``median_over_sizes``: the best or median rate over the source's sweep;
- ``ridge``: peak GEMM FLOP/s over peak stream B/s;
- ``dram_bytes``: DRAM bytes of one dispatch;
- ``step_ratio``: per-layer slope after an OCG-pass step over the slope before it;
- ``throughput_ratio``: n * T(1 output channel) / T(n output channels);
- ``sustained_power``: the engine rail's average power over a back-to-back loop of the
  workload named by ``params["workload"]`` (anesim.timing.power).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import median
from typing import Any

from anesim.errors import UnsupportedError
from anesim.timing.power import dispatch_energy_j
from anesim.validate import workloads
from anesim.validate.simulate import Simulator

Params = dict[str, Any]
_TINY = 1e-12  # floor for slopes and intercepts, so a non-positive difference stays finite


@dataclass(frozen=True)
class Measure:
    """A simulated value of a row's quantity, with its latency-equivalent and the work used."""

    value: float
    latency_s: float | None
    work: float | None
    params: Params | None = None  # the workload evaluated (for a sweep, the size chosen)


def _strip(p: Params, *keys: str) -> Params:
    return {k: v for k, v in p.items() if k not in keys}


def _as_quantity(family: str, p: Params, quantity: str, seconds: float) -> Measure:
    seconds = max(seconds, _TINY)
    if quantity == "latency":
        return Measure(seconds, seconds, None, p)
    w = workloads.work(family, p, quantity)
    if w is None:
        raise UnsupportedError("no work count for this quantity", found=f"{family} {quantity}")
    return Measure(w / seconds, seconds, w, p)


def expand(family: str, p: Params) -> list[Params]:
    """The workloads of a sweep: one params dict per size or configuration."""
    if "configs" in p:
        rest = _strip(p, "configs")
        return [{**rest, "c": c, "batch": b} for c, b in p["configs"]]
    rest = _strip(p, "sizes")
    if family == "gemm":
        return [{**rest, "m": n, "k": n, "n": n} for n in p["sizes"]]
    if family == "gemv":
        return [{**rest, "k": n, "n": n} for n in p["sizes"]]
    return [{**rest, "rows": r} for r in p["sizes"]]


def single_dispatch(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Latency of one dispatch (per layer when params say ``per: layer``)."""
    seconds = sim.time(family, p).latency_s
    if p.get("per") == "layer":
        seconds /= p["layers"]
    return _as_quantity(family, p, quantity, seconds)


def sustained(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Time per iteration of back-to-back dispatches."""
    return _as_quantity(family, p, quantity, sim.time(family, p).sustained_s)


def _slope(sim: Simulator, family: str, p: Params) -> tuple[float, float, int]:
    d1, d2 = p["depths"]
    base = _strip(p, "depths")
    t1 = sim.time(family, {**base, "depth": d1}).latency_s
    t2 = sim.time(family, {**base, "depth": d2}).latency_s
    return (t2 - t1) / (d2 - d1), t1, d1


def per_layer_slope(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Marginal time of one more layer in a fused chain."""
    slope, _, _ = _slope(sim, family, p)
    return _as_quantity(family, _strip(p, "depths"), quantity, slope)


def intercept(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Fixed per-dispatch cost: the chain's time with its layers' slope taken away."""
    slope, t1, d1 = _slope(sim, family, p)
    return _as_quantity(family, p, quantity, t1 - d1 * slope)


def _rates(sim: Simulator, family: str, p: Params, quantity: str) -> list[Measure]:
    return [single_dispatch(sim, family, q, quantity) for q in expand(family, p)]


def peak_over_sizes(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """The best rate over the sweep, with the latency at the size that reached it."""
    return max(_rates(sim, family, p, quantity), key=lambda m: m.value)


def median_over_sizes(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """The median rate over the sweep; latency-equivalent at the size nearest the median."""
    rates = _rates(sim, family, p, quantity)
    mid = median(m.value for m in rates)
    near = min(rates, key=lambda m: abs(m.value - mid))
    return Measure(mid, near.work / mid if near.work else None, near.work, near.params)


def ridge(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Peak GEMM FLOP/s over peak relu-stream B/s, each over the source's sweep."""
    flops = peak_over_sizes(sim, "gemm", {"sizes": p["gemm_sizes"]}, "flop_rate").value
    stream = {"op": "relu", "cols": p["cols"], "sizes": p["stream_rows"]}
    bw = peak_over_sizes(sim, "elementwise", stream, "byte_rate").value
    return Measure(flops / bw, None, None)


def dram_bytes(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """DRAM bytes moved by one dispatch."""
    return Measure(sim.time(family, p).dram_bytes, None, None, p)


def step_ratio(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Per-layer slope of C_to x C_to 1x1 chains over that of C_from x C_from chains."""
    base = _strip(p, "c_from", "c_to")
    before, _, _ = _slope(sim, "conv1x1_chain", {**base, "c": p["c_from"]})
    after, _, _ = _slope(sim, "conv1x1_chain", {**base, "c": p["c_to"]})
    return Measure(max(after, _TINY) / max(before, _TINY), None, None)


def throughput_ratio(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """n * T(C_out = 1) / T(C_out = n): throughput of n output channels over one."""
    n = int(p["c_out"])
    t1 = sim.time(family, {**p, "c_out": 1}).latency_s
    tn = sim.time(family, p).latency_s
    return Measure(n * t1 / max(tn, _TINY), None, None)


def sustained_power(sim: Simulator, family: str, p: Params, quantity: str) -> Measure:
    """Average engine-rail power (W) while the workload runs back to back."""
    t = sim.time(p["workload"], _strip(p, "workload"))
    joules = dispatch_energy_j(sim.chip, t.latency_s, t.macs, t.dram_bytes)
    return Measure(joules / max(t.latency_s, _TINY), None, None, p)


METHODS: dict[str, Callable[[Simulator, str, Params, str], Measure]] = {
    "single_dispatch": single_dispatch,
    "sustained": sustained,
    "per_layer_slope": per_layer_slope,
    "intercept": intercept,
    "peak_over_sizes": peak_over_sizes,
    "median_over_sizes": median_over_sizes,
    "ridge": ridge,
    "dram_bytes": dram_bytes,
    "step_ratio": step_ratio,
    "throughput_ratio": throughput_ratio,
    "sustained_power": sustained_power,
}


def measure(sim: Simulator, family: str, method: str, params: Params, quantity: str) -> Measure:
    """Run one measurement method on the simulator."""
    try:
        fn = METHODS[method]
    except KeyError:
        raise UnsupportedError("unknown measurement method", found=repr(method),
                               expected=", ".join(METHODS)) from None
    return fn(sim, family, params, quantity)
