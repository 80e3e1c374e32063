"""Time a model that the compiler split into several dispatches (segments) as one call.

Each segment is its own command: it pays the whole dispatch sequence and runs its tasks; the
segments follow one another (one command in flight). Host work between segments runs on the
CPU (:mod:`anesim.timing.cpu`, the CPU fallback): it starts when the previous dispatch has
completed, and the next dispatch starts after it; every switch between the engine and the CPU
costs the chip's ``cpu.handoff_s``.
"""

from __future__ import annotations

from anesim.timing.cpu import HostCost
from anesim.timing.result import HostTiming, SimStats, TaskTiming, TimingResult, UnitStats


def _shifted(t: TaskTiming, base: int, offset_s: float) -> TaskTiming:
    """``t`` moved ``base`` places down the task list and ``offset_s`` later: ``dataclasses.replace``
    without its per-call field walk and frozen-attribute sets (a whole model has thousands of tasks)."""
    moved = object.__new__(TaskTiming)
    fields = moved.__dict__
    fields.update(t.__dict__)
    fields["index"] = base + t.index
    fields["start_s"] = t.start_s + offset_s
    fields["end_s"] = t.end_s + offset_s
    return moved


def combine(results: list[TimingResult], program: str, host: list[list[HostCost]] | None = None,
            handoff_s: float = 0.0, template: TimingResult | None = None) -> TimingResult:
    """One result for dispatches run back to back: times add, tasks and trace follow in order.

    ``host`` holds the host work before each dispatch and, last, after the final one. A model
    wholly on the host has no dispatch: ``results`` is empty and ``template`` (an empty
    program's result) gives the chip's clock and units, and the call costs one handoff.
    """
    first = results[0] if results else template
    assert first is not None, "combine needs a result or a template"
    clock = first.clock_hz
    host = host or [[] for _ in range(len(results) + 1)]
    units_of_trace = first.trace_units + (("cpu",) if any(host) else ())
    cpu_unit = len(units_of_trace) - 1
    tasks, trace, host_tasks = [], [], []
    handoffs = 0
    offset_s = 0.0

    def run_host(block: list[HostCost], before_engine: bool, after_engine: bool) -> None:
        nonlocal offset_s, handoffs
        if not block:
            return
        switches = int(before_engine) + int(after_engine)
        handoffs += switches
        offset_s += handoff_s * int(after_engine)
        for h in block:
            host_tasks.append(HostTiming(h.name, h.op, h.reason, offset_s, offset_s + h.seconds, h.flops, h.bytes))
            trace.append((cpu_unit, f"{h.op} {h.name}", offset_s * clock, (offset_s + h.seconds) * clock, -1))
            offset_s += h.seconds
        offset_s += handoff_s * int(before_engine)

    for k, r in enumerate(results):
        run_host(host[k], True, k > 0)
        base = len(tasks)
        tasks += [_shifted(t, base, offset_s) for t in r.tasks]
        shift = offset_s * clock
        trace += [(u, name, start + shift, end + shift, task + base if task >= 0 else task)
                  for u, name, start, end, task in r.raw_trace()]
        offset_s += r.latency_s
    run_host(host[-1], False, bool(results))
    if not results:
        # wholly on the CPU: the request still crosses from the caller to the CPU path once, so
        # a call takes time even when its host work is empty
        handoffs += 1
        offset_s += handoff_s
    latency = offset_s
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
        handoffs=handoffs,
        _trace=trace,
    )
