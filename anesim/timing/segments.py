"""Time a model that the compiler split into several dispatches (segments) as one call.

Each segment is its own command: it pays the whole dispatch sequence and runs its tasks; the
segments follow one another (one command in flight). Host work between segments runs on the
CPU (:mod:`anesim.timing.cpu`, the CPU fallback): it starts when the previous dispatch has
completed, and the next dispatch starts after it; every switch between the engine and the CPU
costs the chip's ``cpu.handoff_s``.

The call's :func:`timeline` (where each dispatch and host operation starts) needs only the
dispatches' latencies, so each dispatch is packaged in place, its tasks numbered and timed on
the call's timeline from the start (``simulate.package``); :func:`combine` then joins the
tables and sums the totals without copying a row (a whole model has thousands of tasks).
"""

from __future__ import annotations

from dataclasses import dataclass

from anesim.timing.cpu import HostCost
from anesim.timing.result import HostTiming, SimStats, TimingResult, UnitStats


@dataclass
class Timeline:
    """Where the dispatches and host operations of one call sit, in seconds from its start."""

    dispatch_start_s: list[float]  # per dispatch
    host: list[list[HostTiming]]  # per host block: before each dispatch and, last, after the final one
    handoffs: int  # switches between the engine and the CPU
    end_s: float  # the call's latency


def timeline(latencies_s: list[float], host: list[list[HostCost]] | None = None,
             handoff_s: float = 0.0) -> Timeline:
    """Lay dispatches of the given latencies and the host work between them end to end.

    ``host`` holds the host work before each dispatch and, last, after the final one (None: no
    host work). With no dispatch (a model wholly on the host) the call costs one handoff.
    """
    host = host or [[] for _ in range(len(latencies_s) + 1)]
    starts: list[float] = []
    placed: list[list[HostTiming]] = []
    handoffs = 0
    offset_s = 0.0

    def run_host(block: list[HostCost], before_engine: bool, after_engine: bool) -> None:
        nonlocal offset_s, handoffs
        rows: list[HostTiming] = []
        placed.append(rows)
        if not block:
            return
        handoffs += int(before_engine) + int(after_engine)
        offset_s += handoff_s * int(after_engine)
        for h in block:
            rows.append(HostTiming(h.name, h.op, h.reason, offset_s, offset_s + h.seconds, h.flops, h.bytes))
            offset_s += h.seconds
        offset_s += handoff_s * int(before_engine)

    for k, latency_s in enumerate(latencies_s):
        run_host(host[k], True, k > 0)
        starts.append(offset_s)
        offset_s += latency_s
    run_host(host[-1], False, bool(latencies_s))
    if not latencies_s:
        # wholly on the CPU: the request still crosses from the caller to the CPU path once, so
        # a call takes time even when its host work is empty
        handoffs += 1
        offset_s += handoff_s
    return Timeline(starts, placed, handoffs, offset_s)


def combine(results: list[TimingResult], program: str, line: Timeline,
            template: TimingResult | None = None) -> TimingResult:
    """One result for dispatches run back to back: times add, tasks and trace follow in order.

    Each of ``results`` is a dispatch packaged at its place on ``line`` (tasks numbered after the
    earlier dispatches' and timed from ``line.dispatch_start_s``). A model wholly on the host has
    no dispatch: ``results`` is empty and ``template`` (an empty program's result) gives the
    chip's clock and units.
    """
    first = results[0] if results else template
    assert first is not None, "combine needs a result or a template"
    assert len(line.host) == len(results) + 1, "one host block before each dispatch and one after the last"
    clock = first.clock_hz
    units_of_trace = first.trace_units + (("cpu",) if any(line.host) else ())
    cpu_unit = len(units_of_trace) - 1

    def host_slices(block: list[HostTiming]) -> list[tuple[int, str, float, float, int]]:
        return [(cpu_unit, f"{h.op} {h.name}", h.start_s * clock, h.end_s * clock, -1) for h in block]

    tasks, trace = [], []
    for block, r in zip(line.host, results):
        trace += host_slices(block)
        tasks += r.tasks
        trace += r.raw_trace()
    trace += host_slices(line.host[-1])
    host_tasks = [h for block in line.host for h in block]
    latency = line.end_s
    engine_cycles = sum(r.engine_cycles for r in results)
    host_s = latency - sum(r.latency_s for r in results)
    units = {}
    for name in first.units:
        busy = sum(r.units[name].busy_s for r in results)
        engine_busy = sum(r.units[name].engine_utilisation * r.engine_s for r in results)
        units[name] = UnitStats(name, busy, busy * clock, busy / latency if latency else 0.0,
                                engine_busy / (engine_cycles / clock) if engine_cycles else 0.0)
    if host_tasks:
        busy = host_s
        units["cpu"] = UnitStats("cpu", busy, busy * clock, busy / latency if latency else 0.0, 0.0)
    macs = sum(r.macs for r in results)
    return TimingResult(
        chip=first.chip, program=program, clock_hz=clock, latency_s=latency, engine_cycles=engine_cycles,
        dispatch_s={k: sum(r.dispatch_s[k] for r in results) for k in first.dispatch_s},
        units=units,
        dram_bytes={k: sum(r.dram_bytes[k] for r in results) for k in first.dram_bytes},
        dram_contention_s=sum(r.dram_contention_s for r in results),
        macs=macs,
        flops_per_s=2.0 * macs / latency if latency else 0.0,
        engine_flops_per_s=2.0 * macs * clock / engine_cycles if engine_cycles else 0.0,
        tasks=tasks,
        sim=SimStats(sum(r.sim.wall_s for r in results), sum(r.sim.loop_events for r in results),
                     sum(r.sim.tile_events for r in results), sum(r.sim.batched_steps for r in results),
                     sum(r.sim.steps for r in results)),
        trace_units=units_of_trace,
        energy_j=sum(r.energy_j for r in results),
        host_tasks=host_tasks,
        host_s=host_s,
        handoffs=line.handoffs,
        _trace=trace,
    )
