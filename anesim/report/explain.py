"""``explain``: for each task and layer, which resource bounds its simulated time, and why.

Every task of a timing result is set against four resources, each as the time that resource
alone would need for the task's work (a lower bound when the others were free):

- **compute**: the busier of the NE and planar stages, without the fixed per-layer overhead;
- **DRAM bandwidth**: the task's activation and weight bytes over their stream ceilings (and
  both over the shared peak), plus one access latency;
- **L2 capacity (spills)**: the DRAM time again, when an operand in the on-chip pool is larger
  than the working-set cap and so streams through DRAM instead of staying resident;
- **dispatch overhead**: the firmware's per-task descriptor cost plus the per-layer overhead.

The verdict is the resource whose time is closest to the simulated time. All figures come from
the timing result (:class:`~anesim.timing.result.TaskTiming`) and the chip file; the chip keys
behind each resource are listed so that a reader can change one and predict the effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.program.model import Program
from anesim.timing import costs
from anesim.timing.result import HostTiming, TaskTiming, TimingResult

COMPUTE, DRAM, L2, DISPATCH = "compute", "DRAM bandwidth", "L2 capacity (spills)", "dispatch overhead"
RESOURCES = (COMPUTE, DRAM, L2, DISPATCH)

# The chip-file keys that set each resource's time, and how the time scales with them.
KEYS: dict[str, tuple[str, ...]] = {
    COMPUTE: ("ne.clock_hz", "ne.cores", "ne.out_channels_per_cycle_fp16", "ne.out_channels_per_cycle_int8",
              "ne.mac_lanes_per_out_channel", "planar.elements_per_cycle"),
    DRAM: ("dram.activation_bytes_per_s", "dram.scratch_bytes_per_s", "dram.weight_bytes_per_s",
           "dram.peak_bytes_per_s", "dram.latency_s"),
    L2: ("memory.working_set_cap_bytes", "memory.kernel_cache_bytes", "dram.scratch_bytes_per_s"),
    DISPATCH: ("dispatch.per_task_overhead_s", "ne.per_layer_overhead_cycles"),
}
LEVERS: dict[str, str] = {
    COMPUTE: "time scales as 1 / (clock x cores x out-channels per cycle x lanes) for NE work, "
             "1 / (clock x planar elements per cycle) for planar work",
    DRAM: "time scales as bytes / stream ceiling: doubling a ceiling halves this part",
    L2: "raising the working-set cap above the spilled operand keeps it on chip and removes its DRAM traffic",
    DISPATCH: "a fixed cost per task: fusing tasks or lowering the overhead keys removes it",
}


def chip_value(chip: ChipConfig, key: str) -> Any:
    """The value of a dotted chip key such as ``dram.activation_bytes_per_s``."""
    obj: Any = chip
    for part in key.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "value", obj)


def chip_provenance(chip: ChipConfig, key: str) -> str:
    """Where a dotted chip key's value comes from (its provenance tag)."""
    obj: Any = chip
    for part in key.split("."):
        obj = getattr(obj, part)
    return str(getattr(obj, "provenance", ""))


def layer_of(name: str) -> str:
    """The layer a task belongs to: its name up to the first ':' (the compiler's naming)."""
    return name.split(":", 1)[0] if name else name


def closest(simulated_s: float, times: dict[str, float]) -> str:
    """The resource whose time is closest to ``simulated_s`` (ties to the earlier in RESOURCES)."""
    return min(RESOURCES, key=lambda r: (abs(simulated_s - times[r]), RESOURCES.index(r)))


@dataclass(frozen=True)
class TaskExplanation:
    """One task's simulated time beside the time each resource alone would need."""

    index: int
    name: str
    layer: str
    kind: str
    simulated_s: float
    times_s: dict[str, float]
    bound: str
    explained: float  # the bound resource's time / the simulated time
    waited_on: str  # what the engine saw the task stall on (TaskTiming.bound)
    numbers: dict[str, float]
    spilled: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerExplanation:
    """A layer's tasks summed: simulated time and each resource's time."""

    layer: str
    tasks: tuple[int, ...]
    simulated_s: float
    times_s: dict[str, float]
    bound: str
    explained: float


@dataclass
class Explanation:
    """Why a program takes the time it takes on a chip: per task, per layer, and the keys."""

    chip: str
    program: str
    latency_s: float
    dispatch_s: dict[str, float]
    tasks: list[TaskExplanation]
    layers: list[LayerExplanation]
    keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    levers: dict[str, str] = field(default_factory=dict)
    host_tasks: list[HostTiming] = field(default_factory=list)  # the CPU fallback (outside the four resources)
    host_s: float = 0.0

    def bound_share(self) -> dict[str, float]:
        """Fraction of the summed layer time whose layer is bound by each resource."""
        total = sum(lay.simulated_s for lay in self.layers) or 1.0
        return {r: sum(lay.simulated_s for lay in self.layers if lay.bound == r) / total for r in RESOURCES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "chip": self.chip, "program": self.program, "latency_s": self.latency_s,
            "dispatch_s": dict(self.dispatch_s), "bound_share": self.bound_share(),
            "keys": self.keys, "levers": self.levers,
            "layers": [asdict(x) for x in self.layers], "tasks": [asdict(x) for x in self.tasks],
            "host_tasks": [asdict(x) for x in self.host_tasks], "host_s": self.host_s,
        }


def _spill_bytes(chip: ChipConfig, task: Any) -> int:
    """Bytes of the pool-space operands over the working-set cap (they stream through DRAM)."""
    lays = list(task.sources) + [task.result]
    return sum(lay.nbytes for lay in lays if lay.space == "pool" and not costs.resident(chip, lay))


def explain_task(chip: ChipConfig, t: TaskTiming, task: Any | None = None) -> TaskExplanation:
    """Set one task's simulated time against each resource's time."""
    clock = chip.ne.clock_hz.value
    d = chip.dram
    has_ne = t.ne_cycles > 0
    layer_overhead = costs.task_overhead_cycles(chip) if has_ne else 0
    ne_work = max(0, t.ne_cycles - layer_overhead)
    compute_s = max(ne_work, t.planar_cycles) / clock
    act, wt, scratch = t.dram_activation_bytes, t.dram_weight_bytes, t.dram_scratch_bytes
    streams = max((act - scratch) / d.activation_bytes_per_s.value, scratch / d.scratch_bytes_per_s.value,
                  wt / d.weight_bytes_per_s.value, (act + wt) / d.peak_bytes_per_s.value)
    dram_s = streams + (d.latency_s.value if act + wt else 0.0)
    spill = _spill_bytes(chip, task) if task is not None else 0
    l2_s = dram_s if t.spilled else 0.0
    dispatch_s = chip.dispatch.per_task_overhead_s.value + layer_overhead / clock
    times = {COMPUTE: compute_s, DRAM: dram_s, L2: l2_s, DISPATCH: dispatch_s}
    sim = t.cycles / clock
    bound = closest(sim, times)
    if bound == DRAM and t.spilled:  # the same bytes, but they are in DRAM because of the cap
        bound = L2
    peak = costs.mac_peak_per_cycle(chip)
    numbers = {
        "macs": t.macs, "ne_cycles": t.ne_cycles, "planar_cycles": t.planar_cycles,
        "layer_overhead_cycles": layer_overhead, "cores": t.cores, "passes": t.passes, "tiles": t.tiles,
        "mac_utilisation": t.macs / (t.cycles * peak) if t.cycles and peak else 0.0,
        "dram_activation_bytes": act, "dram_scratch_bytes": scratch, "dram_weight_bytes": wt,
        "kernel_bytes": t.kernel_bytes,
        "spilled_bytes": spill, "simulated_cycles": t.cycles,
        "stall_input_cycles": t.stall_input_cycles, "stall_weight_cycles": t.stall_weight_cycles,
        "stall_output_cycles": t.stall_output_cycles,
    }
    return TaskExplanation(t.index, t.name, layer_of(t.name), t.kind, sim, times, bound,
                           times[bound] / sim if sim else 0.0, t.bound, numbers, tuple(t.spilled))


def explain_layers(tasks: Sequence[TaskExplanation]) -> list[LayerExplanation]:
    """Sum consecutive tasks of one layer and give the layer its own verdict."""
    groups: dict[str, list[TaskExplanation]] = {}
    for t in tasks:
        groups.setdefault(t.layer, []).append(t)
    out = []
    for name, ts in groups.items():
        sim = sum(t.simulated_s for t in ts)
        times = {r: sum(t.times_s[r] for t in ts) for r in RESOURCES}
        bound = closest(sim, times)
        if bound == DRAM and times[L2] >= 0.5 * times[DRAM] > 0:
            bound = L2
        out.append(LayerExplanation(name, tuple(t.index for t in ts), sim, times, bound,
                                    times[bound] / sim if sim else 0.0))
    return out


def programs_of(target: Any) -> list[Program]:
    """The programs a target runs as, in the order the timing result lists their tasks."""
    if isinstance(target, Program):
        return [target]
    segments = getattr(target, "segments", None) or ()
    progs = [s.program for s in segments if isinstance(getattr(s, "program", None), Program)]
    inner = getattr(target, "program", None)
    return progs or ([inner] if isinstance(inner, Program) else [])


def explain(target: Program | Any, chip: ChipConfig, result: TimingResult | None = None) -> Explanation:
    """Explain ``target`` (a Program or compile result) on ``chip``; simulates it unless ``result`` is given."""
    if result is None:
        from anesim.timing import simulate

        result = simulate(target, chip, trace=False)
    program_tasks = [task for p in programs_of(target) for task in p.tasks]
    if len(program_tasks) != len(result.tasks):
        program_tasks = [None] * len(result.tasks)
    tasks = [explain_task(chip, t, task) for t, task in zip(result.tasks, program_tasks)]
    keys = {r: [{"key": k, "value": chip_value(chip, k), "provenance": chip_provenance(chip, k)}
                for k in KEYS[r]] for r in RESOURCES}
    return Explanation(result.chip, result.program, result.latency_s, dict(result.dispatch_s), tasks,
                       explain_layers(tasks), keys, dict(LEVERS), list(result.host_tasks), result.host_s)
