"""The typed, generation-independent program model."""

from anesim.program.model import (
    ActivationTable, Kernel, KernelPlacement, Layout, NeStage, PlanarStage, Program, Slot, Task, TensorSpec,
    align_up,
)

__all__ = [
    "ActivationTable", "Kernel", "KernelPlacement", "Layout", "NeStage", "PlanarStage", "Program", "Slot", "Task",
    "TensorSpec", "align_up",
]
