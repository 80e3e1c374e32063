"""The typed result of a timing simulation, and its JSON form."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class UnitStats:
    """Busy time of one unit; utilisation over the whole call and over the engine's span."""

    name: str
    busy_s: float
    busy_cycles: float
    utilisation: float  # busy / latency
    engine_utilisation: float  # busy inside the engine span / the span (dispatch stages excluded)


@dataclass(frozen=True)
class TaskTiming:
    """One task's row of the per-task table."""

    index: int
    name: str
    kind: str
    start_s: float
    end_s: float
    cycles: float  # from its first source DMA to its last result write
    ne_cycles: int
    planar_cycles: int
    cores: int
    passes: int
    tiles: int
    macs: int
    kernel_bytes: int
    dram_activation_bytes: int
    dram_weight_bytes: int
    stall_input_cycles: float
    stall_weight_cycles: float
    stall_output_cycles: float
    bound: str  # what the task mostly waited on, or "compute"
    spilled: tuple[str, ...] = ()
    dram_scratch_bytes: int = 0  # the part of dram_activation_bytes on the scratch stream


@dataclass(frozen=True)
class HostTiming:
    """One host operation (the CPU fallback) on the call's timeline."""

    name: str
    op: str
    reason: str
    start_s: float
    end_s: float
    flops: float
    bytes: int
    kind: str = "host"
    unit: str = "cpu"


@dataclass(frozen=True)
class TraceEvent:
    """One slice of the timeline: a unit busy with something from start to end."""

    unit: str
    name: str
    start_s: float
    end_s: float
    task: int  # -1 for dispatch stages


@dataclass(frozen=True)
class SimStats:
    """How the simulation itself ran (not part of the simulated result)."""

    wall_s: float
    loop_events: int
    tile_events: int
    batched_steps: int
    steps: int


@dataclass
class TimingResult:
    """Latency, cycles, utilisation, DRAM traffic and a timeline of one program on one chip."""

    chip: str
    program: str
    clock_hz: float
    latency_s: float
    engine_cycles: int  # engine span: first descriptor issued to last result written
    dispatch_s: dict[str, float]
    units: dict[str, UnitStats]
    dram_bytes: dict[str, int]  # per stream: "activation" and "weight"
    dram_contention_s: float
    macs: int
    flops_per_s: float  # 2 x MACs over the whole call latency
    engine_flops_per_s: float  # 2 x MACs over the engine span
    tasks: list[TaskTiming]
    sim: SimStats
    trace_units: tuple[str, ...] = ()
    energy_j: float = 0.0  # the rail's energy over the call (anesim.timing.power)
    # where the measured value is expected to lie, for a chip without calibration rows
    # (anesim.timing.uncertainty); None on a calibrated chip
    latency_range_s: tuple[float, float] | None = None
    energy_range_j: tuple[float, float] | None = None
    prediction: str = ""  # how the range was obtained, or "" when there is none
    host_tasks: list[HostTiming] = field(default_factory=list)  # the CPU fallback, in call order
    host_s: float = 0.0  # CPU time of the host operations, handoffs included
    handoffs: int = 0  # switches between the engine and the CPU
    _trace: list[tuple[int, str, float, float, int]] = field(default_factory=list, repr=False)

    @property
    def dram_bytes_total(self) -> int:
        """DRAM bytes over both streams."""
        return sum(self.dram_bytes.values())

    @property
    def power_w(self) -> float:
        """Average power over the call (and over a back-to-back loop of it)."""
        return self.energy_j / self.latency_s if self.latency_s else 0.0

    @property
    def engine_s(self) -> float:
        """The engine span in seconds."""
        return self.engine_cycles / self.clock_hz

    @property
    def trace(self) -> Iterator[TraceEvent]:
        """Every recorded slice, in the order it was recorded."""
        units = self.trace_units
        c = self.clock_hz
        for unit, name, start, end, task in self._trace:
            yield TraceEvent(units[unit], name, start / c, end / c, task)

    @property
    def trace_len(self) -> int:
        """Number of recorded slices."""
        return len(self._trace)

    def raw_trace(self) -> list[tuple[int, str, float, float, int]]:
        """Slices as (unit index, name, start cycle, end cycle, task): compact, for writers."""
        return self._trace

    def to_dict(self) -> dict[str, Any]:
        """Everything but the trace, as JSON-ready data."""
        return {
            "chip": self.chip,
            "program": self.program,
            "clock_hz": self.clock_hz,
            "latency_s": self.latency_s,
            "engine_cycles": self.engine_cycles,
            "engine_s": self.engine_s,
            "dispatch_s": dict(self.dispatch_s),
            "units": {k: asdict(v) for k, v in self.units.items()},
            "dram_bytes": dict(self.dram_bytes),
            "dram_bytes_total": self.dram_bytes_total,
            "dram_contention_s": self.dram_contention_s,
            "macs": self.macs,
            "flops_per_s": self.flops_per_s,
            "engine_flops_per_s": self.engine_flops_per_s,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "latency_range_s": list(self.latency_range_s) if self.latency_range_s else None,
            "energy_range_j": list(self.energy_range_j) if self.energy_range_j else None,
            "prediction": self.prediction,
            "tasks": [asdict(t) for t in self.tasks],
            "host_tasks": [asdict(t) for t in self.host_tasks],
            "host_s": self.host_s,
            "handoffs": self.handoffs,
            "sim": asdict(self.sim),
        }
