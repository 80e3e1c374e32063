"""Design-space sweeps: programs × chips × parameters, timed on Dask, summarised as a table and plots."""

from anesim.sweep.points import SweepPoint, expand, parse_assignments, resolve_chips
from anesim.sweep.simulate import run_point

__all__ = ["SweepPoint", "expand", "parse_assignments", "resolve_chips", "run_point"]
