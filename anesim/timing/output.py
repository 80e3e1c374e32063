"""What one simulation of the event model leaves behind, in cycles, before packaging (``result.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anesim.timing.plan import ProgramPlan


@dataclass(slots=True)
class TaskStats:
    """What happened to one task during the run (cycles)."""

    start: float = -1.0
    end: float = 0.0
    ne_cycles: int = 0
    planar_cycles: int = 0
    stall_input: float = 0.0
    stall_weight: float = 0.0
    stall_output: float = 0.0
    dram_activation_bytes: float = 0.0  # tile DMA of activations, both streams
    dram_scratch_bytes: float = 0.0  # the part of it on the scratch stream
    dram_weight_bytes: float = 0.0


@dataclass
class EngineOutput:
    """Raw output of one simulation, in cycles; :mod:`~anesim.timing.result` packages it."""

    end_cycles: float
    engine_start: float
    engine_end: float
    busy: dict[str, float]
    busy_dispatch: dict[str, float]
    task_stats: list[TaskStats]
    dram_bytes: dict[str, float]
    dram_busy_cycles: float
    dram_contention_cycles: float
    trace: list[tuple[int, str, float, float, int]]
    tile_events: int
    loop_events: int
    batched_steps: int
    wall_s: float
    dispatch_marks: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class PlanSummary:
    """What packaging reads of a plan: per task (kind, cores, passes, tiles, MACs, kernel bytes,
    spilled operands), and the tile steps. Small to hand back from a worker process, where
    the plan itself stays."""

    tasks: list[tuple[str, int, int, int, int, int, tuple[str, ...]]]
    steps: int


def summarize(plan: ProgramPlan) -> PlanSummary:
    """The :class:`PlanSummary` of ``plan``."""
    return PlanSummary([(tp.kind, tp.cores, tp.passes, tp.tiles, tp.macs, tp.kernel_bytes, tp.spilled)
                        for tp in plan.tasks], plan.steps)
