"""The reference: what graph operations and compiled tasks compute, in plain float32 numpy.

In comes a graph node with its input arrays (:mod:`~anesim.compiler.reference.ops`: the
meaning of every graph operation, used by constant folding, by the host work between engine
segments, and as the reference tests compare against), or a compiled program with its inputs
(:mod:`~anesim.compiler.reference.program`: the task semantics the compiler assumes, read
through each task's layouts and lookup tables); out go arrays. It reads the graph's data
structures and the program model and nothing else of the compiler, so every stage may use it.
It is not the engine's numerics; :mod:`anesim.functional` is.
"""

from anesim.compiler.reference.ops import fp16_inputs, run_graph, run_node
from anesim.compiler.reference.program import run_program

__all__ = ["fp16_inputs", "run_graph", "run_node", "run_program"]
