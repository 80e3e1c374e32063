"""ONNX models -> graphs (the ``onnx`` package, an optional extra: ``pip install anesim[onnx]``).

What is known at compile time is computed at compile time: initializers, ``Constant`` nodes,
the static shapes of tensors (``Shape``, ``Size``) and every node whose inputs are all known
(shape arithmetic, ``ConstantOfShape``, ``Range`` ...) is evaluated with the ``onnx`` package's
own reference implementation (:mod:`anesim.compiler.frontends.onnx_fold`). What remains runs on
the engine as graph ops (:mod:`onnx_nn` for the neural-network ops, :mod:`onnx_layout` for data
movement), or on the host where the engine has no unit for it.

Every attribute a node carries is honoured or refused: a handler reads the attributes it
supports, and an attribute it did not read is an error naming the node, the op, the attribute
and the opset. So is an unsupported operator, a type the engine cannot hold and an optional
output the importer cannot produce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.frontends.onnx_attention import AttentionHandlers
from anesim.compiler.frontends.onnx_fold import element_dtype, evaluate_node, shape_of
from anesim.compiler.frontends.onnx_host import HOST_DOMAINS, HostHandlers, engine_holds
from anesim.compiler.frontends.onnx_layout import LayoutHandlers
from anesim.compiler.frontends.onnx_nn import NnHandlers
from anesim.compiler.frontends.onnx_quant import Codes, QuantHandlers, read_codes
from anesim.compiler.graph.graph import HOST_DTYPE, Graph, TensorInfo
from anesim.errors import AnesimError, CompileError, ProgramError, UnsupportedError
from anesim.onnxtensor import initializer_array, load_model, require_onnx

FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float16))
# Integer inputs are compile-time data (shapes, indices, slice bounds): a backend binds their
# values before compiling. uint8 and int8 inputs are tensors the engine reads.
BOUND_KINDS = (np.dtype(np.int64), np.dtype(np.int32))
EXACT_TYPES = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.int8))
# Ops that never fold: their results are not functions of their inputs.
NO_FOLD = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
           "Bernoulli")




@dataclass(frozen=True)
class OnnxValue:
    """A model input or output: its ONNX name, element type and shape (scalars are ``()``)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    graph_name: str = ""  # the graph tensor that holds it ("" when computed at compile time)


@dataclass
class OnnxImport:
    """An imported model: the graph (None when every output is known at compile time)."""

    graph: Graph | None
    inputs: list[OnnxValue]
    outputs: list[OnnxValue]
    folded: dict[str, np.ndarray] = field(default_factory=dict)
    bound: tuple[str, ...] = ()


# Inputs that are parameters, not data: a model input read only in these slots is compile-time
# data too (the engine's kernels, tables and geometry are fixed when the program is built).
PARAM_SLOTS = {
    "Resize": (1, 2, 3), "Upsample": (1,), "Clip": (1, 2), "Pad": (1, 2, 3), "Dropout": (1, 2),
    "Conv": (1, 2), "ConvTranspose": (1, 2), "BatchNormalization": (1, 2, 3, 4), "Range": (0, 1, 2),
    "OneHot": (0, 1, 2), "ConstantOfShape": (0,), "Compress": (1,), "Pow": (1,), "CenterCropPad": (1,),
    "NegativeLogLikelihoodLoss": (1, 2), "SoftmaxCrossEntropyLoss": (1, 2), "GroupNormalization": (1, 2),
    "InstanceNormalization": (1, 2), "TopK": (1,),
}


def bound_inputs(model: Any) -> list[str]:
    """The model inputs read at compile time: integer tensors (shapes, indices, bounds) and
    inputs read only as parameters (``PARAM_SLOTS``: weights, scales, bounds, pads)."""
    onnx = require_onnx("reading ONNX models")
    inits = {i.name for i in model.graph.initializer}
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, slot))
    outputs = {v.name for v in model.graph.output}
    names = []
    for value in model.graph.input:
        if value.name in inits or not value.type.HasField("tensor_type"):
            continue
        dtype = element_dtype(value.type.tensor_type.elem_type, "<onnx>", f"input '{value.name}'")
        used = uses.get(value.name, [])
        if dtype in BOUND_KINDS or (used and value.name not in outputs and
                                    all(slot in PARAM_SLOTS.get(op, ()) for op, slot in used)):
            names.append(value.name)
    return names


class _Importer(NnHandlers, LayoutHandlers, AttentionHandlers, HostHandlers, QuantHandlers):
    def __init__(self, model: Any, file: str, bound: dict[str, np.ndarray] | None = None,
                 fallback: Callable[[Any, Any], bool] | None = None) -> None:
        onnx = require_onnx("reading ONNX models")
        self.onnx = onnx
        self.helper = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.model = model
        self.file = file
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        name = model.graph.name or Path(file).stem
        self.b = Builder(name, source=file)
        self.known: dict[str, np.ndarray] = {}  # values known at compile time (their ONNX dtype)
        self.codes: dict[str, Codes] = {}  # known values a DequantizeLinear made of 8-bit codes
        self.dtypes: dict[str, np.dtype] = {}  # the ONNX element type of every engine tensor
        self.scalars: set[str] = set()  # engine tensors that are ONNX scalars (held as (1,))
        self.bound = dict(bound or {})
        self.index = 0
        self.node: Any = None
        self._read_attrs: set[str] = set()
        self._read_inputs: set[int] = set()  # (input indices of the current node its lowering read)
        self._names: set[str] = set()
        # fallback(importer, node) -> True when it added the node itself (``anesim check`` keeps
        # operations without a graph op as source ops instead of refusing them)
        self.fallback = fallback
        self.local_domains = {f.domain for f in model.functions}

    # -- messages ------------------------------------------------------------------------

    def where(self) -> str:
        node = self.node
        label = f" '{node.name}'" if node.name else ""
        return f"node {self.index}{label} ({node.op_type}, opset {self.opset})"

    def fail(self, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file=self.file, where=self.where(), **kw)

    # -- attributes and inputs -----------------------------------------------------------

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute's value (strings decoded), marking it honoured."""
        self._read_attrs.add(name)
        for a in self.node.attribute:
            if a.name == name:
                value = self.helper.get_attribute_value(a)
                try:
                    if isinstance(value, bytes):
                        return value.decode()
                    if isinstance(value, list):
                        return [v.decode() if isinstance(v, bytes) else v for v in value]
                except UnicodeDecodeError:
                    raise self.fail(f"attribute '{name}' is not UTF-8 text", found=repr(value)[:80]) from None
                return value
        return default

    def has_attr(self, name: str) -> bool:
        return any(a.name == name for a in self.node.attribute)

    def inp(self, index: int) -> str | None:
        """The name of input ``index``, or None when it is absent or empty (marking it read)."""
        self._read_inputs.add(index)
        ins = self.node.input
        return ins[index] if index < len(ins) and ins[index] else None

    def outs(self) -> list[str | None]:
        """The node's outputs (None for an empty, unrequested one)."""
        return [o or None for o in self.node.output]

    def is_known(self, index: int) -> bool:
        name = self.inp(index)
        return name is not None and name in self.known

    def const(self, index: int, default: Any = None) -> Any:
        """Input ``index`` as an array known at compile time (``default`` when absent)."""
        name = self.inp(index)
        if name is None:
            return default
        if name not in self.known:
            raise self.fail(f"input {index} ('{name}') must be known at compile time "
                            f"(an initializer, a constant or shape arithmetic)")
        return self.known[name]

    def const_ints(self, index: int, default: Any = None) -> list[int] | None:
        value = self.const(index, None)
        if value is None:
            return default
        arr = np.asarray(value)
        if arr.dtype.kind not in "iub":  # (shapes, axes, pads and counts are integer tensors)
            raise self.fail(f"input {index} must be an integer tensor", expected="int64 or int32",
                            found=str(arr.dtype))
        return [int(v) for v in arr.reshape(-1)]

    def const_float(self, index: int, default: float | None = None) -> float | None:
        value = self.const(index, None)
        if value is None:
            return default
        arr = np.asarray(value).reshape(-1)
        if arr.size != 1:
            raise self.fail(f"input {index} must be a scalar", found=f"shape {np.shape(value)}")
        return float(arr[0])

    def shape(self, name: str) -> tuple[int, ...]:
        """The ONNX shape of a tensor (known or on the engine)."""
        if name in self.known:
            return tuple(np.shape(self.known[name]))
        if name in self.scalars:
            return ()
        return tuple(self.b.graph.info(name).shape)

    def dtype(self, name: str) -> np.dtype:
        if name in self.known:
            return np.asarray(self.known[name]).dtype
        return self.dtypes.get(name, np.dtype(np.float32))

    def t(self, index: int) -> str:
        """Input ``index`` as an engine tensor (a known value becomes a graph constant)."""
        name = self.inp(index)
        if name is None:
            raise self.fail(f"input {index} is required")
        return self.tensor(name)

    def tensor(self, name: str) -> str:
        if name in self.b.graph.values:
            return name
        if name not in self.known:
            raise self.fail("unknown tensor", found=repr(name))
        arr = np.asarray(self.known[name])
        if arr.dtype.kind in "iub" and arr.size and np.abs(arr.astype(np.float64)).max() > 2048:
            raise self.fail(f"integer data '{name}' is not exact in fp16 (values up to "
                            f"{np.abs(arr).max()})")
        if arr.dtype.kind not in "fiub":
            raise self.fail(f"'{name}' has a type the engine cannot hold", found=str(arr.dtype))
        if arr.size == 0:
            raise self.fail(f"'{name}' is empty; the engine has no empty tensors")
        self.b.constant(name, arr.astype(np.float32).reshape(arr.shape or (1,)))
        if name in self.codes:
            self.note_dense_codes(name, f"{self.node.op_type} reads it as fp16 data")
        self.dtypes[name] = arr.dtype
        if arr.ndim == 0:
            self.scalars.add(name)
        return name

    # -- emitting graph ops ---------------------------------------------------------------

    def fresh(self, stem: str) -> str:
        """A tensor or node name no other uses."""
        base = stem
        k = 0
        while stem in self._names or stem in self.b.graph.values:
            k += 1
            stem = f"{base}~{k}"
        self._names.add(stem)
        return stem

    def emit(self, op: str, inputs: list[str], out: str | None = None, dtype: Any = None,
             **attrs: Any) -> str:
        """Append a graph op reading ``inputs``; returns its output tensor."""
        base = self.node.name or (self.node.output[0] if self.node.output else self.node.op_type)
        target = out if out is not None else self.fresh(f"{base}/{op}")
        if self.node.name and self.node.name not in self._names and self.node.name not in self.b.graph.values:
            node_name = self.fresh(self.node.name)  # the first op of a named node keeps its name (reports)
        else:
            node_name = self.fresh(f"{base}:{op}") if out is not None else target
        self._names.add(target)
        self.b.op(op, inputs, name=node_name, output=target, where=self.where(), **attrs)
        self.dtypes[target] = np.dtype(dtype) if dtype is not None else self.dtype(inputs[0])
        if inputs[0] in self.scalars and op != "reshape" and self.b.graph.info(target).shape == (1,):
            self.scalars.add(target)  # elementwise work on a scalar keeps it a scalar
        return target

    def finish(self, result: str, out: str, dtype: Any = None, scalar: bool = False) -> None:
        """Make ``result`` the ONNX output ``out`` (an identity when it has another name)."""
        if result != out:
            if out in self.b.graph.values:
                raise self.fail("output name is already used", found=repr(out))
            self.emit("identity", [result], out=out, dtype=dtype or self.dtype(result))
        if dtype is not None:
            self.dtypes[out] = np.dtype(dtype)
        if scalar:
            self.scalars.add(out)

    # -- the walk ----------------------------------------------------------------------------

    def run(self) -> OnnxImport:
        g = self.model.graph
        init_names = set()
        for init in g.initializer:
            self.known[init.name] = initializer_array(init, self.file)
            init_names.add(init.name)
        inputs = []
        for value in g.input:
            if value.name in init_names:
                continue
            inputs.append(self._input(value))
        for self.index, self.node in enumerate(g.node):
            self._read_attrs = set()
            self._read_inputs = set()
            try:
                if self.fallback is None or not self.fallback(self, self.node):
                    self._node()
            except AnesimError as exc:
                if exc.file:
                    raise
                raise type(exc)(exc.problem, file=self.file, where=self.where(), expected=exc.expected,
                                found=exc.found) from None
        return self._outputs(inputs)

    def _input(self, value: Any) -> OnnxValue:
        where = f"input '{value.name}'"
        if not value.type.HasField("tensor_type"):
            raise UnsupportedError("only tensor inputs are supported", file=self.file, where=where)
        dtype = element_dtype(value.type.tensor_type.elem_type, self.file, where)
        if value.name in self.bound:
            array = np.asarray(self.bound[value.name]).astype(dtype)
            self.known[value.name] = array
            return OnnxValue(value.name, dtype, tuple(array.shape))
        if dtype in BOUND_KINDS:
            raise UnsupportedError(f"integer input '{value.name}' ({dtype}) is compile-time data "
                                   "(shapes, indices); compile with its value bound", file=self.file,
                                   where=where)
        shape = []
        for d in value.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                shape.append(int(d.dim_value))
            else:
                raise ProgramError("inputs need fixed shapes", file=self.file, where=where,
                                   found=d.dim_param or "an unknown size")
        if not engine_holds(dtype, tuple(shape) or (1,)):
            # a type, rank or empty extent the engine lacks: an input only host ops read, exactly
            info = TensorInfo(value.name, tuple(shape) or (1,), HOST_DTYPE)
            self.b.graph.add_value(info, where=where)
            self.b.graph.inputs[value.name] = info
        else:
            self.b.input(value.name, shape or [1], "uint8" if dtype == np.uint8 else "fp16")
        self.dtypes[value.name] = dtype
        if not shape:
            self.scalars.add(value.name)
        return OnnxValue(value.name, dtype, tuple(shape), value.name)

    def _outputs(self, inputs: list[OnnxValue]) -> OnnxImport:
        outputs = []
        folded: dict[str, np.ndarray] = {}
        for value in self.model.graph.output:
            dtype = self._declared_type(value)
            if value.name in self.known:
                folded[value.name] = np.asarray(self.known[value.name]).astype(dtype)
                outputs.append(OnnxValue(value.name, dtype, self._declared_as(value, np.shape(self.known[value.name]))))
                continue
            if value.name not in self.b.graph.values:
                raise ProgramError("an output is never computed", file=self.file,
                                   where=f"output '{value.name}'")
            self._declared_as(value, self.shape(value.name))
            name = value.name
            if name in self.b.graph.outputs or name in self.b.graph.inputs:
                self.node = self.helper.make_node("Identity", [name], [name])
                name = self.emit("identity", [value.name], out=self.fresh(f"{value.name}:output"))
            self.b.output(name)
            outputs.append(OnnxValue(value.name, dtype, self.shape(value.name), name))
        for info in self.model.graph.value_info:  # (the intermediates' declared shapes and types, where known)
            if info.name in self.known or info.name in self.b.graph.values:
                self._declared_as(info, self.shape(info.name), "value")
                self._declared_type(info, "value")
        graph = self.b.graph if self.b.graph.outputs else None
        if graph is not None:  # (what a run hands back: the declared shapes and types)
            graph.scalar_outputs = {v.graph_name for v in outputs if v.shape == () and v.graph_name}
            graph.output_types = {v.graph_name: v.dtype.name for v in outputs if v.graph_name and v.dtype != np.float16}
        return OnnxImport(graph, inputs, outputs, folded, tuple(self.bound))

    def _declared_type(self, value: Any, kind: str = "output") -> np.dtype:
        """The element type the model declares for a tensor, its computed one where it declares
        none; a model declaring another is malformed (ONNX Runtime refuses it). (Not checked with a
        ``fallback``, as :meth:`_declared_as`.)"""
        computed = self.dtype(value.name)
        declared = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
        if not declared:
            return computed
        dtype = element_dtype(declared, self.file, f"{kind} '{value.name}'")
        if self.fallback is None and dtype != computed:
            raise ProgramError(f"the declared {kind} type is not the one the operators give", file=self.file,
                               where=f"{kind} '{value.name}'", expected=computed.name, found=dtype.name)
        return dtype

    def _declared_as(self, value: Any, shape: tuple[int, ...], kind: str = "output") -> tuple[int, ...]:
        """``shape``, a tensor's computed shape, if the model declares it or leaves it open (no
        shape, or a symbolic dimension); a model declaring another is malformed. (``anesim
        check``, which passes a ``fallback``, places layers of approximate shapes: not checked.)"""
        tensor = value.type.tensor_type if value.type.HasField("tensor_type") else None
        if tensor is None or not tensor.HasField("shape") or self.fallback is not None:
            return tuple(shape)
        dims = tensor.shape.dim
        if len(dims) != len(shape) or any(d.HasField("dim_value") and d.dim_value != n for d, n in zip(dims, shape)):
            raise ProgramError(f"the declared {kind} shape is not the one the operators give", file=self.file,
                               where=f"{kind} '{value.name}'", expected=list(shape),
                               found=[d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims])
        return tuple(shape)

    def _node(self) -> None:
        node, op = self.node, self.node.op_type
        if node.domain not in HOST_DOMAINS and node.domain not in self.local_domains:
            raise self.fail("operator domain is not supported", expected=", ".join(d or "''" for d in HOST_DOMAINS),
                            found=node.domain)
        present = [i for i in node.input if i]
        if op in NO_FOLD:
            raise self.fail("random operators are not supported (anesim is deterministic)", found=op)
        if op in ("Shape", "Size") and present and present[0] not in self.known:
            self._store(shape_of(node, self.shape(present[0]), self.opset))
            return
        if all(i in self.known for i in present) and (present or op == "Constant"):
            try:
                values = evaluate_node(node, [self.known[i] for i in present], list(node.input), self.opset)
            except AnesimError:
                raise
            except Exception as exc:  # the reference raises many types; all mean "cannot fold"
                raise self.fail("cannot evaluate at compile time",
                                found=f"{type(exc).__name__}: {exc}") from None
            self._store(values)
            if op == "DequantizeLinear" and node.output and node.output[0]:
                found = read_codes(node, [self.known[i] for i in present], self.opset, self.attr)
                if found is not None:
                    self.codes[node.output[0]] = found
            return
        self._refuse_random_modes()
        host_only = next((i for i in present if self.host_only(i)), None)
        if node.domain not in ("", "ai.onnx"):
            return self.host_node(f"operator of domain {node.domain}; the host evaluates it")
        if host_only is not None:
            return self.host_node(f"input '{host_only}' lives on the host (a type, rank or empty extent "
                                  "the engine cannot hold)")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            return self.host_node("anesim has no engine lowering for it")
        state = self.snapshot()
        try:
            handler()
            unread = [a.name for a in node.attribute if a.name not in self._read_attrs]
            if unread:
                raise self.fail(f"attribute '{unread[0]}' is not supported",
                                found=repr(self.helper.get_attribute_value(
                                    next(a for a in node.attribute if a.name == unread[0]))))
            ignored = [i for i, name in enumerate(node.input) if name and i not in self._read_inputs]
            if ignored:  # (an input the lowering never looked at: the host evaluates the node)
                raise self.fail(f"input {ignored[0]} ('{node.input[ignored[0]]}') is not supported")
        except (UnsupportedError, CompileError) as exc:
            # what the engine cannot compute exactly runs on the host, as Core ML's CPU fallback
            self.restore(state)
            self.host_node(exc.problem)

    def _refuse_random_modes(self) -> None:
        """Dropout in training mode draws a random mask: refused (anesim is deterministic)."""
        node = self.node
        if node.op_type != "Dropout":
            return
        if self.opset < 7:  # Dropout-1 and -6: training unless is_test is set (default 0)
            is_test = next((self.helper.get_attribute_value(a) for a in node.attribute if a.name == "is_test"), 0)
            ratio = next((self.helper.get_attribute_value(a) for a in node.attribute if a.name == "ratio"), 0.5)
            if not is_test and ratio:
                raise self.fail("Dropout in training mode is random (is_test is 0); only inference is supported")
            return
        name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if name is None:
            return
        if name not in self.known or bool(np.asarray(self.known[name]).reshape(-1)[0]):
            ratio = node.input[1] if len(node.input) > 1 and node.input[1] else None
            if ratio is not None and ratio in self.known and float(np.asarray(self.known[ratio]).reshape(-1)[0]) == 0:
                return  # a zero ratio keeps everything: not random
            raise self.fail("Dropout in training mode is random; only inference is supported")

    def _store(self, values: list[np.ndarray]) -> None:
        for name, value in zip(self.node.output, values):
            if name:
                self.known[name] = np.asarray(value)

    # -- type rules --------------------------------------------------------------------------

    def require_float(self, *indices: int) -> None:
        """Arithmetic: the engine computes in fp16, so integer and boolean inputs are refused."""
        for i in indices or range(len(self.node.input)):
            name = self.inp(i)
            if name is None:
                continue
            dtype = self.dtype(name)
            if dtype not in FLOAT_TYPES:
                raise self.fail(f"{self.node.op_type} on {dtype} data: ONNX integer arithmetic wraps "
                                f"and truncates, the engine computes in fp16", found=f"input {i} ('{name}')")


def load_onnx(path: str | Path) -> Graph:
    """Read an ONNX file into a graph."""
    file = Path(path)
    model = load_model(file)
    check_model(model, file)
    return _graph(import_onnx(model, str(path)), str(path))


def check_model(model: Any, file: str | Path) -> None:
    """onnx's own checker (attribute types, node arity, graph wiring), as one ProgramError."""
    onnx = require_onnx("reading ONNX models")
    from anesim.onnx_networks import weightless_initializer

    empty = weightless_initializer(model)
    if empty is not None:  # (the checker would only say a tensor holds no value)
        raise ProgramError("a network spec: its weights are statistics to draw them from, not values",
                           file=file, expected="a complete model: python -m anesim.onnx_networks SPEC "
                           "OUT.onnx --seed 0 writes one (docs/networks.md)",
                           found=f"initializer '{empty}' without values")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ProgramError("not a valid ONNX model", file=file,
                           found=" ".join(str(exc).split())[:200]) from None
    except UnicodeDecodeError:  # the checker's report quotes a name that is not UTF-8
        raise ProgramError("not a valid ONNX model: a name or string is not UTF-8 text", file=file) from None
    except ValueError as exc:  # the checker's own parse of what python's protobuf read leniently
        raise ProgramError("not a valid ONNX model", file=file, found=" ".join(str(exc).split())[:200]) from None
    where = name_not_text(model.graph, "graph")
    if where is not None:  # (protobuf hands such a name over as bytes, which every report would trip on)
        raise ProgramError("not a valid ONNX model: a name or string attribute is not UTF-8 text", file=file,
                           where=where)


def name_not_text(graph: Any, path: str) -> str | None:
    """Where a name or string attribute in ``graph`` (or a subgraph of its nodes) is not UTF-8 text,
    or None."""
    if not isinstance(graph.name, str):  # (it names the program and every report)
        return f"{path}.name {graph.name!r}"
    for kind in ("input", "output", "value_info", "initializer"):
        for value in getattr(graph, kind):
            if not isinstance(value.name, str):
                return f"{path}.{kind} {value.name!r}"
    for i, node in enumerate(graph.node):
        names = [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [a.name for a in node.attribute]
        if not all(isinstance(n, str) for n in names):
            return f"{path}.node[{i}]"
        for a in node.attribute:  # string attributes are bytes in the protobuf, UTF-8 by the spec
            try:
                [text.decode() for text in (a.s, *a.strings)]
            except UnicodeDecodeError:
                return f"{path}.node[{i}].{a.name}"
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                found = name_not_text(sub, f"{path}.node[{i}].{a.name}")
                if found is not None:
                    return found
    return None


def graph_from_onnx(model: Any, name: str = "<onnx>",
                    fallback: Callable[[Any, Any], bool] | None = None) -> Graph:
    """A graph from an in-memory ``onnx.ModelProto`` (``fallback``: see ``_Importer``)."""
    return _graph(import_onnx(model, name, fallback=fallback), name)


def _graph(imported: OnnxImport, file: str) -> Graph:
    if imported.graph is None or imported.folded:
        name = next(iter(imported.folded), "")
        raise UnsupportedError("an output is known at compile time; a compiled program computes "
                               "engine outputs only (the ONNX backend returns such outputs)", file=file,
                               found=repr(name))
    return imported.graph


def import_onnx(model: Any, file: str = "<onnx>", bound: dict[str, np.ndarray] | None = None,
                fallback: Callable[[Any, Any], bool] | None = None) -> OnnxImport:
    """Import an ``onnx.ModelProto``: the graph, the model's inputs and outputs, folded outputs.

    ``bound`` gives the values of integer inputs (shapes, indices), which are compile-time data.
    """
    return _Importer(model, file, bound, fallback).run()
