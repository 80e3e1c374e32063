"""Per-task output statistics: how many results overflowed, were NaN, or saturated."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from anesim.program.model import Task

_FP16_MAX_BITS = 0x7BFF  # 65504, the largest finite fp16 magnitude


@dataclass(frozen=True)
class TaskOutputStats:
    """What one task wrote: counts of infinite, NaN and saturated results, and the largest finite one.

    ``saturated`` counts fp16 results at the largest finite magnitude (±65504) and, for int8/uint8
    destinations, results outside the integer range that the store clipped (an infinity included).
    ``segment`` is the dispatch the task belongs to (compiled models run in segments; else 0).
    """

    segment: int
    index: int
    name: str
    dtype: str
    elements: int
    inf: int
    nan: int
    saturated: int
    max_abs: float

    @property
    def overflowed(self) -> bool:
        """Whether any result is infinite or NaN."""
        return self.inf > 0 or self.nan > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return asdict(self)


def task_output_stats(task: Task, bits: np.ndarray, segment: int = 0) -> TaskOutputStats:
    """Statistics of a task's result, from the fp16 bits the task computed (before the store)."""
    flat = np.asarray(bits, np.uint16).reshape(-1)
    mag = flat & np.uint16(0x7FFF)
    inf = int(np.count_nonzero(mag == 0x7C00))
    nan = int(np.count_nonzero(mag > 0x7C00))
    finite = mag[mag < 0x7C00]
    max_abs = float(finite.max().view(np.float16)) if finite.size else 0.0
    dtype = task.result.dtype
    if dtype == "fp16":
        saturated = int(np.count_nonzero(mag == _FP16_MAX_BITS))
    else:
        lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
        with np.errstate(invalid="ignore"):
            v = flat.view(np.float16).astype(np.float32)
            saturated = int(np.count_nonzero((np.rint(v) < lo) | (np.rint(v) > hi)))
    name = task.name or f"task {task.index}"
    return TaskOutputStats(segment, task.index, name, dtype, int(flat.size), inf, nan, saturated, max_abs)
