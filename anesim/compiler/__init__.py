"""The compiler: describe a model (builder, program YAML, ONNX, Core ML), lower it to tasks.

    from anesim.compiler import Builder, compile_graph, compile_file
    result = compile_file("programs/resnet50.yaml", "m1")
    print(result.report())
    program = result.program
"""

from anesim.compiler.api import compile_file, compile_graph, load_graph
from anesim.compiler.frontends.builder import Builder, Tensor
from anesim.compiler.graph.graph import Graph
from anesim.compiler.result import CompileResult, HostOp, Segment

__all__ = ["Builder", "CompileResult", "Graph", "HostOp", "Segment", "Tensor", "compile_file",
           "compile_graph", "load_graph"]
