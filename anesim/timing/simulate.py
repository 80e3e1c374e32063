"""``simulate(program, chip)``: plan, run the event model, package a :class:`TimingResult`."""

from __future__ import annotations

import math
from pathlib import Path

from anesim.chips.loader import load_chip
from anesim.chips.schema import ChipConfig
from anesim.collector import collector_paused
from anesim.errors import InputError
from anesim.frozen import frozen_instance
from anesim.program.model import Program
from anesim.timing import costs
from anesim.timing.cpu import host_blocks
from anesim.timing.engine import UNITS, EngineOutput
from anesim.timing.output import PlanSummary
from anesim.timing.parallel import simulate_dispatches
from anesim.timing.power import dispatch_energy_j
from anesim.timing.result import SimStats, TaskTiming, TimingResult, UnitStats
from anesim.timing.segments import combine, timeline
from anesim.timing.uncertainty import interval_for


def _bound(st_in: float, st_w: float, st_out: float, compute: float) -> str:
    """What a task mostly waited on: the largest of its three DMA stalls and its compute time;
    compute wins a tie, and a tie between stalls goes to the first (input, weight, output)."""
    name, most = "input DMA", st_in
    if st_w > most:
        name, most = "weight DMA", st_w
    if st_out > most:
        name, most = "output DMA", st_out
    return "compute" if compute >= most else name


def latency_s(out: EngineOutput, chip: ChipConfig) -> float:
    """A dispatch's latency: from its submission to the completion of its last stage."""
    return out.end_cycles / chip.ne.clock_hz.value


def package(plan: PlanSummary, chip: ChipConfig, program: Program, out: EngineOutput, *,
            first_index: int = 0, start_s: float = 0.0) -> TimingResult:
    """Turn raw engine output (cycles) into the typed result (seconds and cycles).

    A dispatch that is part of a longer call (:mod:`~anesim.timing.segments`) is packaged in
    place: its tasks' indices count from ``first_index`` and its tasks and trace slices are
    timed from ``start_s``, where it starts on the call's timeline.
    """
    clock = chip.ne.clock_hz.value
    latency_cycles = out.end_cycles
    latency = latency_s(out, chip)
    span = max(0.0, out.engine_end - out.engine_start)
    units = {
        u: UnitStats(
            u,
            out.busy[u] / clock,
            out.busy[u],
            out.busy[u] / latency_cycles if latency_cycles else 0.0,
            (out.busy[u] - out.busy_dispatch[u]) / span if span else 0.0,
        )
        for u in UNITS
    }
    # activation bytes of both tile-DMA streams (the host's buffers and the program's own)
    act = int(round(out.dram_bytes.get("activation", 0.0) + out.dram_bytes.get("scratch", 0.0)))
    wt = int(round(out.dram_bytes.get("weight", 0.0)))
    tasks = [
        frozen_instance(TaskTiming, {
            "index": first_index + task.index,
            "name": task.name or f"task{pos}",
            "kind": kind,
            "start_s": st.start / clock + start_s,
            "end_s": st.end / clock + start_s,
            "cycles": st.end - st.start,
            "ne_cycles": st.ne_cycles,
            "planar_cycles": st.planar_cycles,
            "cores": cores,
            "passes": passes,
            "tiles": tiles,
            "macs": macs,
            "kernel_bytes": kernel_bytes,
            "dram_activation_bytes": int(round(st.dram_activation_bytes)),
            "dram_weight_bytes": int(round(st.dram_weight_bytes)),
            "stall_input_cycles": st.stall_input,
            "stall_weight_cycles": st.stall_weight,
            "stall_output_cycles": st.stall_output,
            "bound": _bound(st.stall_input, st.stall_weight, st.stall_output,
                            float(max(st.ne_cycles, st.planar_cycles))),
            "spilled": spilled,
            "dram_scratch_bytes": int(round(st.dram_scratch_bytes)),
        })
        for pos, (task, (kind, cores, passes, tiles, macs, kernel_bytes, spilled), st)
        in enumerate(zip(program.tasks, plan.tasks, out.task_stats))
    ]
    trace = out.trace
    if first_index or start_s:
        shift = start_s * clock
        trace = [(u, name, start + shift, end + shift, task + first_index if task >= 0 else task)
                 for u, name, start, end, task in trace]
    macs = sum(row[4] for row in plan.tasks)
    return TimingResult(
        chip=chip.name,
        program=program.name,
        clock_hz=clock,
        latency_s=latency,
        engine_cycles=int(math.ceil(span - 1e-9)),
        dispatch_s=costs.dispatch_components_s(chip),
        units=units,
        dram_bytes={"activation": act, "weight": wt},
        dram_contention_s=out.dram_contention_cycles / clock,
        macs=macs,
        flops_per_s=2.0 * macs / latency if latency else 0.0,
        engine_flops_per_s=2.0 * macs * clock / span if span else 0.0,
        tasks=tasks,
        sim=SimStats(out.wall_s, out.loop_events, out.tile_events, out.batched_steps, plan.steps),
        trace_units=UNITS,
        energy_j=dispatch_energy_j(chip, latency, macs, act + wt),
        _trace=trace,
    )


def _segment_programs(obj: object) -> tuple[str, list[Program]]:
    """The programs to dispatch one after another: a Program, or a compile result's segments."""
    if isinstance(obj, Program):
        return obj.name, [obj]
    inner = getattr(obj, "program", None)
    segments = getattr(obj, "segments", None)
    if isinstance(inner, Program):
        programs = [s.program for s in segments or () if isinstance(getattr(s, "program", None), Program)]
        return inner.name, programs or [inner]
    raise InputError("cannot time this object", expected="an anesim Program or compile result",
                     found=type(obj).__name__)


def simulate(
    program: Program | object,
    chip: ChipConfig | str | Path = "m1",
    *,
    trace: bool = True,
    batch: bool = True,
) -> TimingResult:
    """Time ``program`` on ``chip`` (a ChipConfig, a chip name or a chip YAML path).

    ``program`` is a Program, or a compile result: each of its segments is one dispatch, timed
    back to back, with its host operations between them timed as the CPU fallback
    (:mod:`anesim.timing.cpu`: the chip's ``cpu`` rates and handoff cost).

    ``trace`` keeps the per-slice timeline; ``batch`` lets runs of identical DRAM-free tiles
    advance in closed form and stretches of DRAM-moving tiles be replayed without events.
    Neither changes the simulated times, nor does simulating several dispatches side by side in
    forked processes (:mod:`~anesim.timing.parallel`).
    """
    name, programs = _segment_programs(program)
    cfg = chip if isinstance(chip, ChipConfig) else load_chip(chip)
    with collector_paused():
        # (the plans and engine outputs, hundreds of thousands of objects, are freed when
        # _timed returns: the collector, back on, walks only what the result holds)
        result = _timed(program, name, programs, cfg, trace=trace, batch=batch)
    interval = interval_for(cfg)
    if interval is not None:
        result.latency_range_s = interval.latency_range_s(result.latency_s)
        result.energy_range_j = interval.energy_range_j(result.energy_j)
        result.prediction = (f"no calibration rows for this chip; {round(100 * interval.coverage)} % range "
                             f"from {interval.basis.replace('_', '-')} cross-validation ({interval.points} "
                             "kernel-level points; whole networks: docs/validation.md)")
    return result


def _timed(obj: object, name: str, programs: list[Program], cfg: ChipConfig, *, trace: bool,
           batch: bool) -> TimingResult:
    """Plan, simulate and package ``programs``, the dispatches of ``obj``, as one call."""
    done = simulate_dispatches(programs, cfg, trace=trace, batch=batch)
    outs = [out for _, out in done]
    blocks = host_blocks(obj, cfg) if getattr(obj, "host_ops", None) else None
    if blocks is None and len(outs) == 1:
        return package(done[0][0], cfg, programs[0], outs[0])
    handoff = cfg.cpu.handoff_s.value if blocks and cfg.cpu else 0.0
    if blocks is not None and not getattr(obj, "segments", None):
        # all on the CPU: no dispatch; the empty program's result gives the clock and units
        return combine([], name, timeline([], blocks, handoff), template=package(done[0][0], cfg, programs[0], outs[0]))
    line = timeline([latency_s(out, cfg) for out in outs], blocks, handoff)
    results = []
    first_index = 0
    for segment, (plan, out), start_s in zip(programs, done, line.dispatch_start_s):
        results.append(package(plan, cfg, segment, out, first_index=first_index, start_s=start_s))
        first_index += len(plan.tasks)
    return combine(results, name, line)
