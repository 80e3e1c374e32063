"""Frontends: one module per way of describing a model, each producing the same graph.

In comes a model description - calls on the Python :class:`~anesim.compiler.frontends.builder.Builder`
(``builder``), a program file in YAML or JSON (``program_file``), an ONNX model (``onnx``), a
Core ML ML program (``coreml``) or an ANE netplist (``netplist``); out goes a checked
:class:`~anesim.compiler.graph.Graph` of the operations in :mod:`anesim.compiler.graph.ops`,
with constants that are given arrays or seeded generators. Frontends import only the graph
package: they know nothing of the chip, the lowering or the backend.
"""
