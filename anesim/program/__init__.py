"""The typed, generation-independent program model."""

from anesim.program.model import (
    ActivationTable, Kernel, Layout, NeStage, PlanarStage, Program, Slot, Task, TensorSpec,
    align_up,
)

__all__ = [
    "ActivationTable", "Kernel", "Layout", "NeStage", "PlanarStage", "Program", "Slot", "Task",
    "TensorSpec", "align_up",
]
