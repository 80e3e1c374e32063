"""Safe graph rewrites that keep a layer on the engine (``anesim check --fix``).

- ``split-kernel``: a convolution wider than the tier allows becomes convolutions over column
  ranges of its kernel, each reading a width slice of the input, summed (exact up to fp16 sums).
- ``linear-as-conv``: a linear layer ``x @ W`` over the width axis, whose input is a model input
  and whose result a model output, becomes a 1x1 convolution in the channels-first (1, C, 1, S)
  layout; the model's input and output become channels-first (the caller transposes outside).
- ``static-shape`` is applied by re-reading the model with its dimensions bound (the ONNX loader).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Constant, Graph, Node, TensorInfo
from anesim.compiler.graph.ops import _padding, check_node
from anesim.compiler.lowering.capability import Limits


@dataclass(frozen=True)
class Applied:
    """One rewrite that was applied."""

    fix: str
    layer: str
    what: str


def _copy(graph: Graph) -> Graph:
    g = copy.copy(graph)
    g.inputs, g.constants, g.values = dict(graph.inputs), dict(graph.constants), dict(graph.values)
    g.nodes, g.outputs = list(graph.nodes), list(graph.outputs)
    return g


def _node(g: Graph, name: str, op: str, inputs: tuple[str, ...], output: str, where: str, **attrs: object) -> Node:
    merged, shape = check_node(op, [g.info(i).shape for i in inputs], dict(attrs), where=where)
    g.values[output] = TensorInfo(output, shape)
    return Node(name, op, inputs, output, merged, where)


def _constant(g: Graph, name: str, array: np.ndarray) -> str:
    data = ConstantData.from_array(np.ascontiguousarray(array, dtype=np.float32))
    g.constants[name] = Constant(name, data)
    g.values[name] = TensorInfo(name, data.shape, data.dtype)
    return name


def split_kernel(g: Graph, node: Node, limits: Limits) -> list[Node] | None:
    """Pieces of a too-wide convolution (stride 1 along the width, no dilation), or None."""
    w_shape = g.info(node.inputs[1]).shape
    kh, kw = w_shape[2:]
    stride, dilation = node.attrs["stride"], node.attrs["dilation"]
    if kh > limits.kernel_h or tuple(dilation) != (1, 1) or stride[1] != 1 or kw <= limits.kernel_w:
        return None
    x = node.inputs[0]
    n, c, h, w = g.info(x).nchw
    top, bottom, left, right = _padding(node.attrs["padding"], (kh, kw), tuple(stride), tuple(dilation), (h, w))
    weights = g.constants[node.inputs[1]].data.array()
    pieces = -(-kw // limits.kernel_w)
    width = -(-kw // pieces)
    parts: list[Node] = []
    partial: list[str] = []
    for j in range(pieces):
        a, b = j * width, min(kw, (j + 1) * width)
        lj, rj = left - a, right - (kw - b)
        src = x
        start, end = max(-lj, 0), w - max(-rj, 0)
        if start or end != w:
            src = f"{node.name}/part{j}/cols"
            parts.append(_node(g, src, "slice", (x,), src, node.where, axis=-1, start=start, end=end, step=1))
        wname = _constant(g, f"{node.name}/part{j}.weight", weights[:, :, :, a:b])
        ins: tuple[str, ...] = (src, wname)
        if j == 0 and len(node.inputs) > 2:
            ins += (node.inputs[2],)
        out = f"{node.name}/part{j}"
        parts.append(_node(g, out, "conv2d", ins, out, node.where, stride=tuple(stride),
                           padding=[top, bottom, max(lj, 0), max(rj, 0)], groups=node.attrs["groups"]))
        partial.append(out)
    acc = partial[0]
    for j, other in enumerate(partial[1:], 1):
        out = node.output if j == len(partial) - 1 else f"{node.name}/sum{j}"
        name = node.name if j == len(partial) - 1 else out
        parts.append(_node(g, name, "add", (acc, other), out, node.where))
        acc = out
    return parts


def linear_as_conv(g: Graph, node: Node, limits: Limits) -> list[Node] | None:
    """A 1x1 convolution in channels-first layout for ``x @ W`` (x a model input, the result an output)."""
    if node.op != "matmul" or node.attrs["transpose_a"]:
        return None
    x, wname = node.inputs
    if wname not in g.constants or x not in g.inputs or node.output not in g.outputs:
        return None
    if len(g.consumers(x)) != 1 or g.consumers(node.output):
        return None
    xs = g.info(x).shape
    if len(xs) > 3 or (len(xs) == 3 and xs[0] != 1) or len(g.info(wname).shape) != 2:
        return None
    seq, k = xs[-2], xs[-1]
    weights = g.constants[wname].data.array()
    if node.attrs["transpose_b"]:
        weights = weights.T
    out_features = weights.shape[1]
    info = TensorInfo(x, (1, k, 1, seq), g.inputs[x].dtype)
    g.inputs[x] = info
    g.values[x] = info
    kernel = weights.T.reshape(out_features, k, 1, 1)
    # a kernel's output channels count as its batch extent in placement: chunks within the limit
    step = limits.max_dimension
    if out_features <= step:
        wname = _constant(g, f"{node.name}.conv_weight", kernel)
        return [_node(g, node.name, "conv2d", (x, wname), node.output, node.where)]
    parts, outs = [], []
    for j, lo in enumerate(range(0, out_features, step)):
        wname = _constant(g, f"{node.name}/part{j}.conv_weight", kernel[lo:lo + step])
        out = f"{node.name}/part{j}"
        parts.append(_node(g, out, "conv2d", (x, wname), out, node.where))
        outs.append(out)
    parts.append(_node(g, node.name, "concat", tuple(outs), node.output, node.where, axis=1))
    return parts


def apply_fixes(graph: Graph, limits: Limits, host: dict[str, str | None]) -> tuple[Graph, list[Applied]]:
    """The graph with every safe rewrite for a layer that left the engine applied."""
    g = _copy(graph)
    applied: list[Applied] = []
    nodes: list[Node] = []
    for node in graph.nodes:
        fix = host.get(node.name)
        parts = None
        if fix == "split-kernel" and node.op == "conv2d" and node.inputs[1] in g.constants:
            parts = split_kernel(g, node, limits)
            what = f"kernel split into {sum(1 for p in parts or [] if p.op == 'conv2d')} convolutions of width <= {limits.kernel_w}"
        elif fix == "linear-as-conv":
            parts = linear_as_conv(g, node, limits)
            what = "1x1 convolution in the channels-first (1, C, 1, S) layout; input and output are channels-first"
        if parts is None:
            nodes.append(node)
            continue
        nodes += parts
        applied.append(Applied(fix, node.name, what))  # type: ignore[arg-type]
    g.nodes = nodes
    return g, applied
