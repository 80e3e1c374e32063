"""ONNX nodes the engine does not run, given to the host (the CPU fallback Core ML uses).

A node goes to the host when anesim has no engine lowering for it, or when its types, ranks or
attributes are ones the engine cannot compute exactly (integer arithmetic, which wraps; ranks
above 4; empty tensors; run-time weights ...). The host evaluates it with the ``onnx``
package's reference implementation (:mod:`anesim.compiler.reference.onnx_host`) in the exact
ONNX element types; the output shapes and types come from ONNX shape inference. Random
operators stay refused: anesim is deterministic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anesim.compiler.graph.graph import HOST_DTYPE, MAX_RANK, Node, TensorInfo
from anesim.compiler.graph.ops import ONNX_HOST_OP
from anesim.compiler.reference.onnx_host import evaluator

# Domains whose operators the onnx reference implementation evaluates (besides the default one
# and the model's own functions): the classic-ML and training operators are deterministic math.
HOST_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training")
# Element types the engine holds exactly (fp16 storage): floats (rounded), booleans, bytes.
ENGINE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.bool_), np.dtype(np.uint8),
                 np.dtype(np.int8))
# Operators whose results are not functions of their inputs.
RANDOM_OPS = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli")


def _outer_names(graph: Any) -> set[str]:
    """Names a subgraph (and its own subgraphs) reads without defining them."""
    defined = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used |= {i for i in node.input if i and i not in defined}
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                used |= _outer_names(g) - defined
        defined |= set(node.output)
    return used - defined


def engine_holds(dtype: np.dtype, shape: tuple[int, ...]) -> bool:
    """Whether a tensor of this ONNX type and shape can live on the engine."""
    return np.dtype(dtype) in ENGINE_DTYPES and len(shape) <= MAX_RANK and all(d > 0 for d in shape)


class HostHandlers:
    """Importer mixin: emitting a node as a host op, and undoing a handler that gave up."""

    b: Any
    known: dict[str, np.ndarray]
    dtypes: dict[str, np.dtype]
    scalars: set[str]
    _names: set[str]

    def host_only(self, name: str) -> bool:
        """Whether a graph tensor lives on the host only (a type, rank or extent the engine lacks)."""
        info = self.b.graph.values.get(name)
        return info is not None and info.dtype == HOST_DTYPE

    def snapshot(self) -> tuple:
        """What a handler may change, to restore when it refuses and the node goes to the host."""
        g = self.b.graph
        return (len(g.nodes), set(g.values), set(g.constants), list(g.outputs), dict(self.dtypes),
                set(self.scalars), set(self._names), set(self.known), len(g.approximations))

    def restore(self, state: tuple) -> None:
        """Undo a handler's partial work."""
        g = self.b.graph
        nodes, values, constants, outputs, dtypes, scalars, names, known, notes = state
        del g.nodes[nodes:]
        del g.approximations[notes:]
        for k in set(g.values) - values:
            del g.values[k]
        for k in set(g.constants) - constants:
            del g.constants[k]
        g.outputs[:] = outputs
        self.dtypes = dtypes
        self.scalars = scalars
        self._names = names
        for k in set(self.known) - known:
            del self.known[k]

    def host_node(self, reason: str) -> None:
        """Emit the current node as a host op (one graph node per output)."""
        onnx = self.onnx  # type: ignore[attr-defined]
        helper = onnx.helper
        node = self.node  # type: ignore[attr-defined]
        if node.op_type in RANDOM_OPS:
            raise self.fail("random operators are not supported (anesim is deterministic)",  # type: ignore[attr-defined]
                            found=node.op_type)
        graphs = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
        graphs += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
        # values a subgraph reads from the enclosing graph become inputs of the one-node model
        captured = sorted({n for g in graphs for n in _outer_names(g)} - set(node.input))
        self._check_schema(reason)
        inits, graph_inputs, feeds, in_shapes, in_dtypes = [], [], [], [], []
        for name in dict.fromkeys([i for i in node.input if i] + captured):
            if name in self.known:
                inits.append(onnx.numpy_helper.from_array(np.asarray(self.known[name]), name))
                continue
            if name not in self.b.graph.values:
                raise self.fail("unknown tensor", found=repr(name))  # type: ignore[attr-defined]
            shape = () if name in self.scalars else tuple(self.b.graph.info(name).shape)
            dtype = self.dtype(name)  # type: ignore[attr-defined]
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), shape))
            feeds.append(name)
            in_shapes.append(shape)
            in_dtypes.append(dtype.name)
        outs = [o for o in node.output if o]
        model = self.model  # type: ignore[attr-defined]
        opsets = [_reference_opset(o, node) for o in model.opset_import]
        one = helper.make_model(
            helper.make_graph([node], "host", graph_inputs, [helper.make_empty_tensor_value_info(o) for o in outs],
                              inits),
            opset_imports=opsets, functions=list(model.functions),
            ir_version=max(model.ir_version, 9) if opsets != list(model.opset_import) else model.ir_version)
        types = self._infer(one, outs)
        payload = one.SerializeToString()
        try:  # the reference must implement the node; built once here, reused when it runs
            evaluator(payload)
        except Exception as exc:  # the reference raises many types; all mean "cannot run"
            raise self.fail(f"{reason}; the onnx reference implementation cannot run it on the host",
                            found=" ".join(f"{type(exc).__name__}: {exc}".split())[:200]) from None
        for k, (out, (dtype, shape)) in enumerate(zip(outs, types)):
            graph_shape = shape or (1,)
            holds = engine_holds(dtype, graph_shape)
            dt = ("uint8" if dtype == np.uint8 else "fp16") if holds else HOST_DTYPE
            where = self.where()  # type: ignore[attr-defined]
            g = self.b.graph
            name = self.fresh(node.name or out) if k == 0 else self.fresh(f"{node.name or outs[0]}:{out}")  # type: ignore[attr-defined]
            g.add_value(TensorInfo(out, graph_shape, dt), where=where)
            self._names.add(out)
            g.nodes.append(Node(name, ONNX_HOST_OP, tuple(feeds), out, {
                "source_type": node.op_type, "domain": node.domain, "model": payload, "outputs": tuple(outs),
                "output_index": k, "shape": graph_shape, "onnx_shape": shape, "onnx_dtype": dtype.name,
                "in_shapes": tuple(in_shapes), "in_dtypes": tuple(in_dtypes), "reason": reason,
                "file": str(self.file or "")}, where))
            self.dtypes[out] = dtype
            if not shape:
                self.scalars.add(out)

    def _check_schema(self, reason: str) -> None:
        """An attribute the operator's schema does not define is refused (the reference would
        ignore it); so is an operator the installed onnx has no schema for."""
        onnx = self.onnx  # type: ignore[attr-defined]
        node = self.node  # type: ignore[attr-defined]
        if node.domain in self.local_domains:  # type: ignore[attr-defined]
            return  # a function of the model: its body is the definition
        version = next((o.version for o in self.model.opset_import  # type: ignore[attr-defined]
                        if o.domain == node.domain or (not o.domain and node.domain == "ai.onnx")), None)
        try:
            schema = onnx.defs.get_schema(node.op_type, version or 1, node.domain)
        except Exception:  # onnx raises SchemaError; every failure means "no such operator"
            raise self.fail(f"{reason}; the installed onnx defines no such operator for the host to run",  # type: ignore[attr-defined]
                            found=f"{node.domain or 'ai.onnx'} {node.op_type} opset {version}") from None
        unknown = [a.name for a in node.attribute if a.name not in schema.attributes]
        if unknown:
            raise self.fail(f"attribute '{unknown[0]}' is not supported",  # type: ignore[attr-defined]
                            expected=", ".join(sorted(schema.attributes)) or "no attributes",
                            found=f"not in the {node.op_type} schema (opset {schema.since_version})")

    def _infer(self, one: Any, outs: list[str]) -> list[tuple[np.dtype, tuple[int, ...]]]:
        """Each output's element type and static shape, by ONNX shape inference."""
        onnx = self.onnx  # type: ignore[attr-defined]
        try:
            inferred = onnx.shape_inference.infer_shapes(one, strict_mode=True, data_prop=True)
        except Exception as exc:  # inference raises several types; all mean "unknown shape"
            raise self.fail("the host cannot run this node: ONNX shape inference fails",  # type: ignore[attr-defined]
                            found=" ".join(str(exc).split())[:200]) from None
        found = {v.name: v.type for v in inferred.graph.output}
        result = []
        for out in outs:
            t = found.get(out)
            if t is None or not t.HasField("tensor_type") or not t.tensor_type.elem_type:
                raise self.fail("the host cannot run this node: its output is not a tensor of known type",  # type: ignore[attr-defined]
                                found=out)
            tt = t.tensor_type
            dims = list(tt.shape.dim) if tt.HasField("shape") else None
            if dims is None or not all(d.HasField("dim_value") for d in dims):
                raise self.fail("the host cannot run this node: its output shape depends on the data "  # type: ignore[attr-defined]
                                "(anesim compiles static shapes)", found=out)
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            result.append((np.dtype(dtype), tuple(int(d.dim_value) for d in dims)))
        return result


# Operators whose versions before 19 the installed onnx reference implements only through its
# version-19 class, with the same meaning for every type those versions allow (int8, uint8 and
# int32 codes, float32 scales: version 19 adds float8 codes, float16 scales and float8
# saturation): a one-node model of them is evaluated at opset 19.
SAME_FROM_19 = ("DequantizeLinear", "QuantizeLinear")  # (both from opset 10)


def _reference_opset(opset: Any, node: Any) -> Any:
    """The opset import a one-node host model is evaluated with (``SAME_FROM_19``)."""
    if opset.domain in ("", "ai.onnx") and node.op_type in SAME_FROM_19 and 10 <= opset.version < 19:
        from onnx import helper

        return helper.make_opsetid(opset.domain, 19)
    return opset
