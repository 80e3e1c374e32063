"""The CPU fallback's time: host operations between engine segments, at the chip's CPU rates.

Core ML runs a layer the engine cannot on the CPU in fp32 (integers exactly). A host operation
costs the larger of its arithmetic at ``cpu.fp32_flops_per_s`` and its traffic (inputs read and
result written in their host types, fp16 engine tensors and weights as fp32) at
``cpu.memory_bytes_per_s``;
each switch between the engine and the CPU costs ``cpu.handoff_s``. The arithmetic of an ONNX
node run by the onnx reference is counted from its shapes for the contracting operators
(convolutions, products, recurrent cells) and as one operation per element read or written for
the rest: an estimate, which the reports say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from anesim.chips.schema import ChipConfig
from anesim.compiler.graph.graph import HOST_DTYPE, Graph, Node
from anesim.compiler.graph.ops import ONNX_HOST_OP, node_macs
from anesim.errors import ConfigError, UnsupportedError

ENGINE_TYPE_BYTES = {"fp16": 4, "int8": 1, "uint8": 1}  # as the host reads them (fp16 widened to fp32)


@dataclass(frozen=True)
class HostCost:
    """One host operation's estimated CPU time and what it was computed from."""

    name: str
    op: str
    reason: str
    flops: float
    bytes: int
    seconds: float


def _bytes(graph: Graph, node: Node) -> int:
    total = 0
    names = list(node.inputs) + [node.output]  # weights too: the CPU reads them from memory
    in_dtypes = node.attrs.get("in_dtypes", ()) if node.op == ONNX_HOST_OP else ()
    for k, name in enumerate(names):
        info = graph.info(name)
        if node.op == ONNX_HOST_OP and k < len(in_dtypes):
            size = np.dtype(in_dtypes[k]).itemsize
        elif node.op == ONNX_HOST_OP and name == node.output:
            size = np.dtype(node.attrs["onnx_dtype"]).itemsize
        elif info.dtype == HOST_DTYPE:
            size = 8
        elif info.dtype in ENGINE_TYPE_BYTES:
            size = ENGINE_TYPE_BYTES[info.dtype]
        else:  # a new engine type must say how the host reads it, not borrow fp32's width
            raise UnsupportedError("the CPU-fallback cost has no host width for this element type",
                                   where=f"host operation '{node.name}': tensor '{name}'",
                                   expected=", ".join(sorted(ENGINE_TYPE_BYTES)) + " or a host type",
                                   found=info.dtype)
        total += math.prod(info.shape) * size
    return total


def _onnx_macs(node: Node) -> int:
    """Multiply-accumulates of the contracting ONNX operators, from their input shapes."""
    op = node.attrs["source_type"]
    shapes = [tuple(s) for s in node.attrs.get("in_shapes", ())]
    out = tuple(node.attrs["onnx_shape"])
    out_elems = math.prod(out) if out else 1
    if node.attrs.get("output_index", 0) != 0 or not shapes:
        return 0  # a node's work is charged once, to its first output
    if op in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "DeformConv") and len(shapes) > 1:
        w = shapes[1] if op != "QLinearConv" else (shapes[3] if len(shapes) > 3 else shapes[1])
        per_out = math.prod(w[1:]) if op != "ConvTranspose" else math.prod(w[2:]) * w[0]
        return out_elems * per_out if op != "ConvTranspose" else math.prod(shapes[0]) * math.prod(w[1:])
    if op in ("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul", "Einsum") and shapes[0]:
        return out_elems * shapes[0][-1]
    if op in ("RNN", "GRU", "LSTM") and len(shapes) > 2 and len(shapes[0]) == 3:
        seq, batch, inp = shapes[0]
        gates_hidden = shapes[1][1] if len(shapes[1]) > 1 else 0
        hidden = shapes[2][2] if len(shapes[2]) > 2 else 0
        directions = shapes[1][0] if shapes[1] else 1
        return seq * batch * directions * gates_hidden * (inp + hidden)
    return 0


def host_cost(graph: Graph, node: Node, chip: ChipConfig, reason: str = "") -> HostCost:
    """The CPU time of one host operation on ``chip``."""
    cpu = chip.cpu
    if cpu is None:
        raise ConfigError("the chip has no CPU model to time host operations with",
                          file=chip.source_files[0] if chip.source_files else None, where="cpu",
                          expected="cpu.fp32_flops_per_s, cpu.memory_bytes_per_s, cpu.handoff_s")
    nbytes = _bytes(graph, node)
    if node.op == ONNX_HOST_OP:
        macs = _onnx_macs(node)
        flops = 2.0 * macs if macs else float(sum(math.prod(s) for s in node.attrs.get("in_shapes", ()))
                                               + math.prod(node.attrs["onnx_shape"] or (1,)))
        op = str(node.attrs["source_type"])
    else:
        flops = 2.0 * node_macs(graph, node) or float(graph.info(node.output).elements)
        op = node.op
    seconds = max(flops / cpu.fp32_flops_per_s.value, nbytes / cpu.memory_bytes_per_s.value)
    return HostCost(node.name, op, reason, flops, nbytes, seconds)


def host_blocks(result: Any, chip: ChipConfig) -> list[list[HostCost]]:
    """The host work of a compile result: one list before each segment, then one after the last."""
    graph = result.graph
    blocks = [[host_cost(graph, h.node, chip, h.reason) for h in seg.host_before] for seg in result.segments]
    blocks.append([host_cost(graph, h.node, chip, h.reason) for h in result.host_after])
    return blocks
