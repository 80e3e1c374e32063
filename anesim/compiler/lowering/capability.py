"""What the engine of one chip can run: per-node placement on the engine or on the host.

Every decision comes from the rule table (:mod:`.rules`, ``placement_rules.yaml``): the op's
status on the chip's capability tier (the guide's Appendix A), then the conditions under which a
node still leaves the engine (extents, kernel sizes, dtypes, dynamic shapes, width-moving
relayouts). A node placed on the host cuts the graph into engine segments with host work between
them, each segment costing its own dispatch (guide ch. 22, "multi-segment graph cuts").
"""

from __future__ import annotations

from dataclasses import dataclass
from anesim.chips.schema import ChipConfig
from anesim.compiler.graph.graph import Graph, Node, as_nchw, axis_nchw
from anesim.compiler.graph.ops import ONNX_HOST_OP
from anesim.compiler.lowering.rules import Condition, OpRule, RuleTable, load_rules
from anesim.compiler.lowering.views import Buffer, permute_view, reshape_view

# Kernel bytes one task can stream through the kernel DMA before the compiler splits the layer
# into sub-layers (ane-guide ch. 24 ExceedKmemSizeLimit: 16 MB for streamable weights when the
# streaming master 0x48f is set, which it is on every listed generation).
KERNEL_STREAM_CAP_BYTES = 16 * 1024 * 1024
SOURCE_OP = "source_op"  # an operation of the source model anesim has no graph op for


@dataclass(frozen=True)
class Limits:
    """The limits of one chip the compiler checks."""

    max_dimension: int
    kernel_w: int
    kernel_h: int
    dtypes: tuple[str, ...]
    cores: int
    kernel_task_bytes: int
    tier: str = ""


def limits_of(chip: ChipConfig) -> Limits:
    """The compile limits of a chip from its capability tier and geometry."""
    tier = chip.capability.tier
    kw, kh = load_rules().condition("kernel_size").value(tier)
    return Limits(chip.capability.max_dimension.value, kw, kh, tuple(chip.capability.dtypes),
                  chip.ne.cores.value, KERNEL_STREAM_CAP_BYTES, tier)


@dataclass(frozen=True)
class Decision:
    """Where one node runs and the rule row that decided it."""

    engine: bool
    rule: str  # the row id: an op rule ("recurrent") or a condition ("kernel")
    reason: str  # one line: why (for the host) or what runs (for the engine)
    citation: str
    modelled: bool = True  # False: the engine runs it, anesim's lowering cannot
    assumed: bool = False  # the tier has no cell in the guide's table; the A13 cell is assumed
    suggestion: str | None = None
    fix: str | None = None

    @property
    def host_reason(self) -> str | None:
        """The compiler's view: None (engine) or why the host computes the node."""
        if self.engine and self.modelled:
            return None
        if self.engine:
            return f"{self.reason}; anesim has no lowering for it, so its compiler runs it on the host"
        return self.reason


def _packed(shape: tuple[int, ...]) -> Buffer:
    n, c, h, w = as_nchw(shape)
    return Buffer(0, "probe", "intermediate", n, c, h, w)


def _op_name(node: Node) -> str:
    return str(node.attrs.get("source_type", node.op)) if node.op == SOURCE_OP else node.op


def _condition(graph: Graph, node: Node, limits: Limits, table: RuleTable) -> tuple[Condition, str] | None:
    """The first condition that sends an engine-capable node to the host, with its message."""
    tier = limits.tier
    if node.op == SOURCE_OP and node.attrs.get("dynamic"):
        cond = table.condition("dynamic_shape")
        return cond, cond.message.format(dims=", ".join(node.attrs["dynamic"]))
    dtype_cond = table.condition("dtype")
    allowed = dtype_cond.value(tier)
    dtypes = [graph.info(i).dtype for i in node.inputs if not graph.is_constant(i)]
    dtypes.append(str(node.attrs.get("dtype", graph.info(node.output).dtype)))
    for dtype in dtypes:
        if dtype not in allowed:
            return dtype_cond, dtype_cond.message.format(dtype=dtype)
    out = graph.info(node.output)
    shapes = [graph.info(i).shape for i in node.inputs] + [out.shape]
    max_channels = table.condition("max_channels").value(tier)
    max_batch = table.condition("max_batch").value(tier)
    for shape in shapes:
        n, c, h, w = as_nchw(shape)
        if max(h, w) > limits.max_dimension:
            cond = table.condition("max_dimension")
            return cond, cond.message.format(shape=shape, limit=limits.max_dimension)
        if n > max_batch:
            cond = table.condition("max_batch")
            return cond, cond.message.format(n=n, limit=max_batch)
        if c > max_channels and node.op not in ("conv2d", "linear"):
            cond = table.condition("max_channels")
            return cond, cond.message.format(channels=c, limit=max_channels)
    op, a = node.op, node.attrs
    if op == "conv2d":
        kh, kw = graph.info(node.inputs[1]).shape[2:]
        if kw > limits.kernel_w or kh > limits.kernel_h:
            cond = table.condition("kernel_size")
            return cond, cond.message.format(kh=kh, kw=kw, limit_h=limits.kernel_h, limit_w=limits.kernel_w)
    if op == "transpose":
        rank = len(graph.info(node.inputs[0]).shape)
        perm4 = tuple(range(4 - rank)) + tuple(p + 4 - rank for p in a["perm"])
        if permute_view(_packed(graph.info(node.inputs[0]).shape).view(), perm4) is None:  # type: ignore[arg-type]
            cond = table.condition("transpose_width")
            return cond, cond.message
    if op == "reshape":
        src = graph.info(node.inputs[0]).shape
        if reshape_view(_packed(src).view(), a["shape"]) is None:
            cond = table.condition("reshape_width")
            return cond, cond.message.format(src=src, dst=tuple(a["shape"]))
    if op == "slice":
        rank = len(graph.info(node.inputs[0]).shape)
        if axis_nchw(a["axis"], rank) == 3 and a["step"] != 1:
            cond = table.condition("strided_width_slice")
            return cond, cond.message
    if op == "matmul":
        if a["transpose_b"] and node.inputs[1] not in graph.constants:
            cond = table.condition("matmul_transposed_rhs")
            return cond, cond.message
        if len(out.shape) > 4:
            cond = table.condition("matmul_rank")
            return cond, cond.message
    if op in ("softmax", "layer_norm", "rms_norm") or op.startswith("reduce_"):
        rank = len(graph.info(node.inputs[0]).shape)
        if axis_nchw(a["axis"], rank) == 0:  # (a batch of one too: the lowerings reduce C, H or W)
            cond = table.condition("batch_reduction")
            return cond, cond.message
    return None


def decide(graph: Graph, node: Node, limits: Limits) -> Decision:
    """Where ``node`` runs on a chip with ``limits``, and the rule row that says so."""
    table = load_rules()
    tier = limits.tier
    if node.op == ONNX_HOST_OP:
        return _onnx_host_decision(node, table, tier)
    name = _op_name(node)
    rule: OpRule | None = (table.op_rule(name=name) if node.op == SOURCE_OP
                           else table.op_rule(graph_op=node.op))
    assumed = False
    if rule is not None:
        status, assumed = table.status(rule, tier)
        if not table.on_engine(rule, tier):
            detail = f" ({rule.note})" if rule.note else ""
            return Decision(False, rule.id, f"{name}: {status.replace('_', ' ')} on the {tier} tier{detail}",
                            table.citation(rule, tier), assumed=assumed, suggestion=rule.suggestion)
    hit = _condition(graph, node, limits, table)
    if hit is not None:
        cond, message = hit
        return Decision(False, cond.id, message, f"{table.sources[cond.source]}: {cond.detail}",
                        assumed=assumed, suggestion=cond.suggestion, fix=cond.fix)
    if rule is None:
        return Decision(True, "unlisted", f"{name}: no row in the rule table; anesim lowers it",
                        "anesim's lowering", modelled=node.op != SOURCE_OP)
    status, _ = table.status(rule, tier)
    modelled = rule.lowered and node.op != SOURCE_OP
    return Decision(True, rule.id, f"{name}: {status} on the {tier} tier", table.citation(rule, tier),
                    modelled=modelled, assumed=assumed)


def _onnx_host_decision(node: Node, table: RuleTable, tier: str) -> Decision:
    """An ONNX node the importer gave the host: the importer's reason, and the table's row for
    what the hardware could do with it where the table has one."""
    source = str(node.attrs["source_type"])
    reason = f"{source}: {node.attrs['reason']}"
    rule = table.op_rule(name=source)
    if rule is None:
        return Decision(False, "onnx-host", reason, "anesim's ONNX importer (docs/onnx.md, Host ops)")
    status, assumed = table.status(rule, tier)
    if table.on_engine(rule, tier):
        reason += f" (the placement table has it {status} on the {tier} tier)"
    return Decision(False, rule.id, reason, table.citation(rule, tier), assumed=assumed,
                    suggestion=rule.suggestion)


def decisions(graph: Graph, chip: ChipConfig) -> dict[str, Decision]:
    """Every node's decision, by node name."""
    limits = limits_of(chip)
    return {node.name: decide(graph, node, limits) for node in graph.nodes}


def host_reason(graph: Graph, node: Node, limits: Limits) -> str | None:
    """Why ``node`` must run on the host, or None when the engine can run it."""
    return decide(graph, node, limits).host_reason


def place(graph: Graph, chip: ChipConfig) -> dict[str, str | None]:
    """For every node, None (engine) or the reason it runs on the host."""
    return {name: d.host_reason for name, d in decisions(graph, chip).items()}

