"""The graph: the typed operations a model is made of, and the rewrites that run on them.

In comes a :class:`Graph` built by a frontend (named tensors: inputs, constants, the values
the operations produce; ``ops`` says what each operation takes and yields); out goes the same
kind of graph after the chip-independent passes of :mod:`anesim.compiler.graph.passes`
(constant, transpose and batch-norm folding), ready for the lowering. The
graph knows nothing of chips, buffers or tasks; constant folding computes with the numpy
reference of :mod:`anesim.compiler.reference`.
"""

from anesim.compiler.graph.graph import Constant, Graph, Node, TensorInfo, as_nchw, axis_nchw

__all__ = ["Constant", "Graph", "Node", "TensorInfo", "as_nchw", "axis_nchw"]
