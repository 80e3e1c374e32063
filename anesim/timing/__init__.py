"""The timing engine: how long a program takes on a chip, and why.

``simulate(program, chip)`` plans the program's tasks into tile steps (:mod:`.plan`, with the
cost formulas of :mod:`.costs`), runs the discrete-event model (:mod:`.engine` on simpy, its
gates in :mod:`.gate`, DRAM in :mod:`.dram`) and returns a :class:`~.result.TimingResult`; :mod:`.trace`
writes its timeline for Perfetto or Chrome.
"""

from anesim.timing.result import TaskTiming, TimingResult, TraceEvent, UnitStats
from anesim.timing.simulate import simulate

__all__ = ["TaskTiming", "TimingResult", "TraceEvent", "UnitStats", "simulate"]
