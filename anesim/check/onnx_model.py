"""ONNX models for ``anesim check``: operations without a graph op, dtypes and dynamic shapes kept.

The compiler's importer refuses what it cannot lower; the check must instead list such a layer
with the rule that sends it to the host. Dynamic dimensions are bound (to 1, or ``dims``) so the
model has shapes, and the layers that depend on them are marked dynamic unless ``static`` (the
``--fix`` rewrite) says the bound shape is the model's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anesim.compiler.frontends.onnx import check_model, graph_from_onnx
from anesim.compiler.graph.graph import MAX_RANK, Graph
from anesim.errors import InputError, UnsupportedError
from anesim.onnxtensor import load_model, require_onnx

DTYPES = {1: "fp32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "fp16",
          11: "fp64", 16: "bf16"}




def load_onnx_for_check(path: str | Path, *, dims: dict[str, int] | None = None,
                        static: bool = False) -> tuple[Graph, list[str]]:
    """The graph of an ONNX file and the names of its dynamic dimensions."""
    model = load_model(path)
    check_model(model, path)  # onnx's own checker first, as the compiler's ONNX reader does
    return check_graph_from_onnx(model, str(path), dims=dims, static=static)


def check_graph_from_onnx(model: Any, file: str, *, dims: dict[str, int] | None = None,
                          static: bool = False) -> tuple[Graph, list[str]]:
    """As :func:`load_onnx_for_check`, from an in-memory ``ModelProto``."""
    onnx = require_onnx("reading ONNX models")
    dims = dict(dims or {})
    model = onnx.ModelProto.FromString(model.SerializeToString())
    dynamic_inputs: dict[str, list[str]] = {}
    inits = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        for k, d in enumerate(value.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            label = d.dim_param or f"{value.name}[{k}]"
            dynamic_inputs.setdefault(value.name, []).append(label)
            d.Clear()
            d.dim_value = int(dims.get(label, 1))
    labels_all = [label for labels in dynamic_inputs.values() for label in labels]
    unknown = sorted(set(dims) - set(labels_all))
    if unknown:  # (a size that binds nothing would be ignored without a word)
        raise InputError(f"--dim {unknown[0]}: the model has no dynamic dimension of that name", file=file,
                         expected=", ".join(dict.fromkeys(labels_all)) or "none (every input shape is fixed)",
                         found=unknown[0])
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, Any] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types[vi.name] = vi.type.tensor_type
    dynamic: dict[str, list[str]] = {} if static else {k: list(v) for k, v in dynamic_inputs.items()}
    for node in model.graph.node:
        labels = sorted({lab for i in node.input for lab in dynamic.get(i, [])})
        if labels:
            for o in node.output:
                dynamic[o] = labels

    def fallback(imp: Any, node: Any) -> bool:
        labels = sorted({lab for i in node.input for lab in dynamic.get(i, [])})
        dtype = _dtype(node, types, inits)
        if labels or dtype not in ("fp32", "fp16", "uint8", "int8", None):
            _source_op(imp, node, types, dtype or "fp16", labels)
            return True
        try:
            imp._node()
        except UnsupportedError as exc:
            # no graph op, or one the host cannot evaluate alone (data-dependent shapes,
            # sequences): placement still has a row for it
            if exc.problem != "unsupported operation" and not exc.problem.startswith("the host cannot run"):
                raise
            _source_op(imp, node, types, dtype or "fp16", labels)
        return True

    graph = graph_from_onnx(model, file, fallback)
    return graph, [lab for labs in dynamic_inputs.values() for lab in labs]


def _dtype(node: Any, types: dict[str, Any], inits: set[str]) -> str | None:
    """The first element type of the node's outputs and non-constant inputs the engine lacks, else fp16-ish."""
    names = [o for o in node.output if o] + [i for i in node.input if i and i not in inits]
    found = None
    for name in names:
        t = types.get(name)
        if t is None or not t.elem_type:
            continue
        dtype = DTYPES.get(t.elem_type, f"onnx type {t.elem_type}")
        if dtype not in ("fp32", "fp16", "uint8", "int8"):
            return dtype
        found = found or dtype
    return found


def _source_op(imp: Any, node: Any, types: dict[str, Any], dtype: str, labels: list[str]) -> None:
    graph = imp.b.graph
    inputs = [i for i in node.input if i and i in graph.values]
    for k, out in enumerate(o for o in node.output if o):
        t = types.get(out)
        if t is None or not t.HasField("shape"):
            raise imp.fail("the output shape is unknown to ONNX shape inference", found=out)
        shape = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim] or [1]
        while len(shape) > MAX_RANK:  # the report needs a shape, not a layout: fold leading axes
            shape = [shape[0] * shape[1]] + shape[2:]
        name = (node.name or out) if k == 0 else f"{node.name or out}:{out}"
        imp.b.op("source_op", inputs, name=name, output=out, source_type=node.op_type, shape=shape,
                 dtype=dtype, dynamic=tuple(labels))
