"""What the engine of one chip can run: per-node placement on the engine or on the host.

An operation the engine cannot run (a transpose that moves the width axis, a product that needs
its right operand transposed at run time, a kernel wider than the tier allows, an extent over
the chip's maximum dimension, a reduction over the batch axis) is placed on the host. Core ML
does the same: the graph is cut into engine segments with host work between them, and each
segment costs its own dispatch (guide ch. 22, "multi-segment graph cuts").
"""

from __future__ import annotations

from dataclasses import dataclass

from anesim.chips.schema import ChipConfig
from anesim.compiler.graph.graph import Graph, Node, as_nchw, axis_nchw
from anesim.compiler.graph.ops import HOST_OPS
from anesim.compiler.lowering.views import Buffer, permute_view, reshape_view

# Kernel-size limits per capability tier (ane-guide appendix A, "per-chip numeric limits":
# max kernel W fp16 13 and H 29 up to the A13 tier, 16 and 32 from the A14 tier).
KERNEL_LIMITS = {"pre-A13": (13, 29), "A13": (13, 29)}
KERNEL_LIMITS_LATER = (16, 32)
MAX_CHANNELS = 65536  # ane-guide ch. 17 design-rule table (channel axis)
# Kernel bytes one task can stream through the kernel DMA before the compiler splits the layer
# into sub-layers (ane-guide ch. 24 ExceedKmemSizeLimit: 16 MB for streamable weights when the
# streaming master 0x48f is set, which it is on every listed generation).
KERNEL_STREAM_CAP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The limits of one chip the compiler checks."""

    max_dimension: int
    kernel_w: int
    kernel_h: int
    dtypes: tuple[str, ...]
    cores: int
    kernel_task_bytes: int


def limits_of(chip: ChipConfig) -> Limits:
    """The compile limits of a chip from its capability tier and geometry."""
    kw, kh = KERNEL_LIMITS.get(chip.capability.tier, KERNEL_LIMITS_LATER)
    return Limits(chip.capability.max_dimension.value, kw, kh, tuple(chip.capability.dtypes),
                  chip.ne.cores.value, KERNEL_STREAM_CAP_BYTES)


def _packed(shape: tuple[int, ...]) -> Buffer:
    n, c, h, w = as_nchw(shape)
    return Buffer(0, "probe", "intermediate", n, c, h, w)


def host_reason(graph: Graph, node: Node, limits: Limits) -> str | None:
    """Why ``node`` must run on the host, or None when the engine can run it."""
    out = graph.info(node.output)
    shapes = [graph.info(i).shape for i in node.inputs] + [out.shape]
    for shape in shapes:
        n, c, h, w = as_nchw(shape)
        if max(h, w, n) > limits.max_dimension:
            return f"an extent of {shape} exceeds the chip's maximum dimension {limits.max_dimension}"
        if c > MAX_CHANNELS and node.op not in ("conv2d", "linear"):
            return f"{c} channels exceed the engine's {MAX_CHANNELS}"
    op, a = node.op, node.attrs
    if op in HOST_OPS:
        return HOST_OPS[op]
    if op == "conv2d":
        kh, kw = graph.info(node.inputs[1]).shape[2:]
        if kw > limits.kernel_w or kh > limits.kernel_h:
            return (f"kernel {kh}x{kw} exceeds this tier's limit "
                    f"({limits.kernel_h} high, {limits.kernel_w} wide)")
    if op == "transpose":
        rank = len(graph.info(node.inputs[0]).shape)
        perm4 = tuple(range(4 - rank)) + tuple(p + 4 - rank for p in a["perm"])
        if permute_view(_packed(graph.info(node.inputs[0]).shape).view(), perm4) is None:  # type: ignore[arg-type]
            return "a transpose that moves the width axis needs the host (no DMA stride can express it)"
    if op == "reshape":
        if reshape_view(_packed(graph.info(node.inputs[0]).shape).view(), a["shape"]) is None:
            return (f"reshape {graph.info(node.inputs[0]).shape} -> {tuple(a['shape'])} changes the "
                    f"contiguous width axis; the host relayouts it")
    if op == "slice":
        rank = len(graph.info(node.inputs[0]).shape)
        if axis_nchw(a["axis"], rank) == 3 and a["step"] != 1:
            return "a strided slice of the width axis needs the host"
    if op == "matmul":
        b = node.inputs[1]
        if a["transpose_b"] and b not in graph.constants:
            return "the right operand would need a run-time transpose of its width axis"
        if len(out.shape) > 4:
            return "batched matmul of rank 5"
    if op in ("softmax", "layer_norm", "rms_norm") or op.startswith("reduce_"):
        rank = len(graph.info(node.inputs[0]).shape)
        if axis_nchw(a["axis"], rank) == 0 and as_nchw(graph.info(node.inputs[0]).shape)[0] > 1:
            return "reductions over the batch axis run on the host"
    if op == "concat":
        rank = len(out.shape)
        if axis_nchw(a["axis"], rank) == 0 and any(graph.is_constant(i) for i in node.inputs):
            return None
    return None


def place(graph: Graph, chip: ChipConfig) -> dict[str, str | None]:
    """For every node, None (engine) or the reason it runs on the host."""
    limits = limits_of(chip)
    return {node.name: host_reason(graph, node, limits) for node in graph.nodes}
