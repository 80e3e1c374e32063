"""Validation against measured M1- and M5-family traces.

``traces`` holds the trace schema and loader; ``curation`` holds the curation rules (data, one
file per published source) and the engine that applies them; ``curate`` rebuilds the traces
from the shared measurement table and ``measurements`` curates any measurement file;
``workloads`` builds each measured workload through the compiler and turns
simulated results into the measured metric; ``stats`` computes the error figures; ``runner``
ties them together per chip; ``report`` draws the plots; ``calibrate`` fits the parameters a
chip file marks ``fitted``.
"""

from anesim.validate.traces import TraceRow, load_traces, trace_dir

__all__ = ["TraceRow", "load_traces", "trace_dir"]
