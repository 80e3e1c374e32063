"""Figures of a timing result: a timeline per unit with pool occupancy, utilisation per task,
and a chip's roofline with a program's tasks placed on it.

Every function returns a matplotlib :class:`~matplotlib.figure.Figure` built without pyplot (so
it never changes the caller's backend; a notebook shows it inline) and writes it when given a
path. The timeline reads the slices the timing engine records (the same ones ``--trace``
writes); pool occupancy is derived from the program's layouts and each task's start and end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from anesim.chips.schema import ChipConfig
from anesim.program.model import Program
from anesim.report.explain import programs_of
from anesim.timing import costs
from anesim.timing.result import TimingResult

# The engine's unit names, as a reader of the guide knows them, top to bottom.
UNIT_LABELS = {
    "host": "host (dispatch)",
    "firmware": "firmware (dispatch)",
    "kernel_dma": "kernel DMA (weights)",
    "tile_dma_src": "DMA in (tiles)",
    "ne": "NE (MAC array)",
    "planar": "PE (planar)",
    "tile_dma_dst": "DMA out (results)",
}
_TASK_COLOURS = 20  # tab20: neighbouring tasks differ, so pipelining shows


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


def pool_occupancy(programs: Sequence[Program], result: TimingResult, chip: ChipConfig) -> tuple[list[float], list[float]]:
    """A step function (times in s, bytes) of the pool-resident operands of the running program.

    A resident pool tensor is live from the start of the first task that writes or reads it to
    the end of its last reader; a task overwriting the same range starts a new tensor. Operands
    over the working-set cap stream through DRAM and are not counted here.
    """
    intervals: list[tuple[float, float, int]] = []
    i = 0
    for prog in programs:
        live: dict[tuple[int, int], list[float]] = {}
        for task in prog.tasks:
            if i >= len(result.tasks):
                break
            t = result.tasks[i]
            i += 1
            for lay in task.sources:
                if lay.space == "pool" and costs.resident(chip, lay):
                    key = (lay.offset_bytes, lay.span_bytes)
                    if key in live:
                        live[key][1] = max(live[key][1], t.end_s)
                    else:
                        live[key] = [t.start_s, t.end_s, lay.nbytes]
            r = task.result
            if r.space == "pool" and costs.resident(chip, r):
                key = (r.offset_bytes, r.span_bytes)
                if key in live:
                    s, e, n = live.pop(key)
                    intervals.append((s, e, int(n)))
                live[key] = [t.start_s, t.end_s, r.nbytes]
        intervals += [(s, e, int(n)) for s, e, n in live.values()]
    edges = sorted([(s, n) for s, _, n in intervals] + [(e, -n) for _, e, n in intervals])
    times, level, out = [0.0], 0.0, [0.0]
    for when, delta in edges:
        level += delta
        times.append(when)
        out.append(max(0.0, level))
    times.append(result.latency_s)
    out.append(out[-1])
    return times, out


def timeline_plot(result: TimingResult, path: str | Path | None = None, *, programs: Sequence[Program] = (),
                  chip: ChipConfig | None = None, title: str | None = None) -> Figure:
    """A Gantt chart per unit (dispatch, DMA in/out, NE, PE), coloured by task, with pool occupancy below."""
    if not result.trace_len:
        from anesim.errors import InputError

        raise InputError("the timing result has no timeline", expected="a result simulated with trace=True",
                         found="no recorded slices")
    units = list(result.trace_units)
    show_pool = bool(programs) and chip is not None
    fig = Figure(figsize=(11, 5.8 if show_pool else 4.2))
    if show_pool:
        ax, axp = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    else:
        ax, axp = fig.subplots(1, 1), None
    cmap = __import__("matplotlib").colormaps["tab20"]
    scale = 1e6  # µs
    per_unit: dict[int, list[tuple[float, float, int]]] = {u: [] for u in range(len(units))}
    clock = result.clock_hz
    for u, _name, start, end, task in result.raw_trace():
        if end > start:
            per_unit[u].append((start / clock * scale, (end - start) / clock * scale, task))
    for row, u in enumerate(range(len(units))):
        slices = per_unit[u]
        if not slices:
            continue
        colours = ["0.55" if task < 0 else cmap(task % _TASK_COLOURS) for *_, task in slices]
        ax.broken_barh([(s, w) for s, w, _ in slices], (row - 0.38, 0.76), facecolors=colours,
                       edgecolors="none", linewidth=0)
    ax.set_yticks(range(len(units)), [UNIT_LABELS.get(u, u) for u in units], fontsize=8)
    ax.set_ylim(len(units) - 0.4, -0.6)
    ax.grid(True, axis="x", lw=0.3)
    n_tasks = len(result.tasks)
    # (a chip without calibration rows of its own: the prediction's range, as the CLI prints it)
    ranged = (f" (range {result.latency_range_s[0] * 1e6:,.1f}-{result.latency_range_s[1] * 1e6:,.1f} µs)"
              if result.latency_range_s else "")
    ax.set_title(title or f"{result.program} on {result.chip}: {result.latency_s * 1e6:,.1f} µs{ranged}, "
                 f"{n_tasks} task{'s' if n_tasks != 1 else ''} (colour = task, grey = dispatch)", fontsize=10)
    if axp is not None and chip is not None:
        t, b = pool_occupancy(programs, result, chip)
        axp.step([x * scale for x in t], [y / 2**20 for y in b], where="post", color="tab:purple", lw=1)
        axp.fill_between([x * scale for x in t], [y / 2**20 for y in b], step="post", color="tab:purple", alpha=0.25)
        cap = chip.memory.working_set_cap_bytes.value / 2**20
        axp.axhline(cap, color="tab:red", lw=0.8, ls="--")
        axp.text(0.995, cap, f"working-set cap {cap:.2f} MiB (memory.working_set_cap_bytes)", fontsize=7,
                 color="tab:red", ha="right", va="bottom", transform=axp.get_yaxis_transform())
        axp.set_ylabel("L2 pool\nresident MiB", fontsize=8)
        axp.set_ylim(0, max(cap, max(b) / 2**20) * 1.25)
        axp.grid(True, lw=0.3)
        axp.set_xlabel("time (µs)")
    else:
        ax.set_xlabel("time (µs)")
    fig.tight_layout()
    return _save(fig, path)


def utilisation_plot(result: TimingResult, chip: ChipConfig, path: str | Path | None = None, *,
                     top: int = 40) -> Figure:
    """Per task (the ``top`` longest, in program order): MAC-array use, NE/PE busy share and DMA stall share."""
    peak = costs.mac_peak_per_cycle(chip)
    tasks = sorted(sorted(result.tasks, key=lambda t: -t.cycles)[:top], key=lambda t: t.index)
    fig = Figure(figsize=(11, 3.2 + 0.12 * len(tasks)))
    ax = fig.subplots()
    labels = [f"{t.index} {t.name}"[:34] for t in tasks]
    ys = list(range(len(tasks)))
    h = 0.27

    def share(x: float, t: Any) -> float:
        return 100 * x / t.cycles if t.cycles else 0.0

    ax.barh([y - h for y in ys], [share(t.macs / peak, t) for t in tasks], h, color="tab:green",
            label="MAC array used (MACs / peak MACs over the task)")
    ax.barh(ys, [share(max(t.ne_cycles, t.planar_cycles), t) for t in tasks], h, color="tab:blue",
            label="NE or PE busy")
    ax.barh([y + h for y in ys], [share(t.stall_input_cycles + t.stall_weight_cycles + t.stall_output_cycles, t)
                                  for t in tasks], h, color="tab:orange", label="stalled on DMA")
    ax.set_yticks(ys, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("% of the task's time (first source DMA to last result write)")
    shown = f"the {len(tasks)} longest of {len(result.tasks)} tasks" if len(result.tasks) > len(tasks) else "every task"
    ax.set_title(f"{result.program} on {result.chip}: utilisation per task ({shown})", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", lw=0.3)
    fig.tight_layout()
    return _save(fig, path)


def task_roofline_plot(chip: ChipConfig, result: TimingResult, path: str | Path | None = None, *,
                       label: str | None = None, ax: Any = None) -> Figure:
    """The chip's roofs (peak fp16, DRAM streams) with each MAC-bearing task placed at its
    arithmetic intensity (FLOP per DRAM byte) and achieved FLOP/s."""
    fig = ax.figure if ax is not None else Figure(figsize=(7.6, 5.4))
    ax = ax if ax is not None else fig.subplots()
    peak = chip.peak_fp16_flops_per_s
    xs = [10 ** (i / 20) for i in range(-40, 101)]
    for name, bw, col in (("activation stream", chip.dram.activation_bytes_per_s.value, "tab:red"),
                          ("weight stream", chip.dram.weight_bytes_per_s.value, "tab:blue")):
        ax.plot(xs, [min(peak, bw * x) for x in xs], color=col, lw=1.1,
                label=f"{name} {bw / 1e9:.1f} GB/s (ridge {peak / bw:.0f} FLOP/B)")
    ax.axhline(peak, color="black", lw=0.6, ls=":")
    pts = [(2 * t.macs / (t.dram_activation_bytes + t.dram_weight_bytes), 2 * t.macs / (t.cycles / result.clock_hz))
           for t in result.tasks if t.macs and t.cycles and (t.dram_activation_bytes + t.dram_weight_bytes)]
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.7,
                   label=label or f"{result.program}: {len(pts)} tasks")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(peak / 1e5, peak * 3)
    ax.set_xlabel("arithmetic intensity (FLOP per DRAM byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(f"{chip.name}: peak fp16 {peak / 1e12:.2f} TFLOP/s", fontsize=10)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
