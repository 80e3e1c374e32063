"""Time a model that the compiler split into several dispatches (segments) as one call.

Each segment is its own command: it pays the whole dispatch sequence and runs its tasks; the
segments follow one another (one command in flight). Host work between segments runs on the
CPU and is not timed here; the combined result says how many dispatches it holds.
"""

from __future__ import annotations

from dataclasses import replace

from anesim.timing.result import SimStats, TimingResult, UnitStats


def combine(results: list[TimingResult], program: str) -> TimingResult:
    """One result for dispatches run back to back: times add, tasks and trace follow in order."""
    first = results[0]
    clock = first.clock_hz
    latency = sum(r.latency_s for r in results)
    engine_cycles = sum(r.engine_cycles for r in results)
    tasks, trace = [], []
    offset_s = 0.0
    for r in results:
        base = len(tasks)
        tasks += [replace(t, index=base + t.index, start_s=t.start_s + offset_s, end_s=t.end_s + offset_s)
                  for t in r.tasks]
        shift = offset_s * clock
        trace += [(u, name, start + shift, end + shift, task + base if task >= 0 else task)
                  for u, name, start, end, task in r.raw_trace()]
        offset_s += r.latency_s
    units = {}
    for name in first.units:
        busy = sum(r.units[name].busy_s for r in results)
        engine_busy = sum(r.units[name].engine_utilisation * r.engine_s for r in results)
        units[name] = UnitStats(name, busy, busy * clock, busy / latency if latency else 0.0,
                                engine_busy / (engine_cycles / clock) if engine_cycles else 0.0)
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
        trace_units=first.trace_units,
        energy_j=sum(r.energy_j for r in results),
        _trace=trace,
    )
