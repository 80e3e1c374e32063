"""ONNX models -> graphs (the ``onnx`` package, an optional extra: ``pip install anesim[onnx]``).

Float initializers become constants (their arrays are kept as given); integer initializers are
read as attributes (reshape shapes, slice bounds). An operator outside the supported set is an
:class:`UnsupportedError` naming the operator, the node and its index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.graph.graph import Graph
from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.onnxtensor import initializer_array

UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Abs": "abs", "Neg": "neg", "Erf": "erf", "Softplus": "softplus",
    "HardSwish": "hard_swish", "Identity": "identity", "Dropout": "identity", "Cast": "identity",
}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min"}
# inputs an operator cannot do without (onnx operator specs); every other one needs its first
MIN_INPUTS = {"Conv": 2, "Gemm": 2, "MatMul": 2, "BatchNormalization": 5, "LayerNormalization": 2, "Pow": 2,
              "Reshape": 2, "Slice": 3}
REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
          "ReduceMin": "reduce_min"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise UnsupportedError("reading ONNX models needs the onnx package",
                               expected="pip install 'anesim[onnx]'") from None
    return onnx


class _Attributes(dict):
    """A node's attributes; one the operator needs but the node lacks is an UnsupportedError."""

    def __missing__(self, key: str) -> Any:
        raise UnsupportedError(f"the node has no '{key}' attribute", expected=f"a '{key}' attribute")


class _Importer:
    def __init__(self, model: Any, file: str, fallback: Callable[[Any, Any], bool] | None = None) -> None:
        onnx = _onnx()
        self.helper = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.model = model
        self.file = file
        name = model.graph.name or Path(file).stem
        self.b = Builder(name, source=file)
        self.ints: dict[str, np.ndarray] = {}  # integer initializers and constants: attribute data
        self.index = 0
        self.node: Any = None
        # fallback(importer, node) -> True when it added the node itself (``anesim check`` keeps
        # operations without a graph op as source ops instead of refusing them)
        self.fallback = fallback

    def where(self) -> str:
        node = self.node
        label = f" '{node.name}'" if node.name else ""
        return f"node {self.index}{label} ({node.op_type})"

    def fail(self, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file=self.file, where=self.where(), **kw)

    def attrs(self) -> dict[str, Any]:
        return _Attributes({a.name: self.helper.get_attribute_value(a) for a in self.node.attribute})

    def run(self) -> Graph:
        g = self.model.graph
        init_names = set()
        for init in g.initializer:
            self._initializer(init.name, initializer_array(init, self.file))
            init_names.add(init.name)
        for value in g.input:
            if value.name in init_names:
                continue
            shape = []
            for d in value.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value > 0:
                    shape.append(int(d.dim_value))
                else:
                    raise ProgramError("inputs need fixed shapes", file=self.file,
                                       where=f"input '{value.name}'", found=d.dim_param or "an unknown size")
            self.b.input(value.name, shape or [1])
        for self.index, self.node in enumerate(g.node):
            try:
                if self.fallback is not None and self.fallback(self, self.node):
                    continue
                self._node()
            except AnesimError as exc:
                if exc.file:
                    raise
                raise type(exc)(exc.problem, file=self.file, where=self.where(), expected=exc.expected,
                                found=exc.found) from None
        for value in g.output:
            self.b.output(value.name)
        return self.b.build()

    def _initializer(self, name: str, array: np.ndarray) -> None:
        if array.dtype.kind in "iub" and array.dtype != np.uint8 and array.dtype != np.int8:
            self.ints[name] = array
        elif array.dtype.kind == "f":
            self.b.constant(name, array.astype(np.float32) if array.ndim else array.reshape(1).astype(np.float32))
        else:
            self.ints[name] = array

    def _int_input(self, index: int, default: Any = None) -> Any:
        node = self.node
        if len(node.input) <= index or not node.input[index]:
            return default
        name = node.input[index]
        if name not in self.ints:
            raise self.fail(f"input {index} must be a constant integer tensor", found=repr(name))
        return [int(v) for v in np.asarray(self.ints[name]).reshape(-1)]

    def _float_scalar(self, index: int, default: float) -> float:
        node = self.node
        if len(node.input) <= index or not node.input[index]:
            return default
        name = node.input[index]
        if name in self.b.graph.constants:
            return float(self.b.graph.constants[name].data.array().reshape(-1)[0])
        raise self.fail(f"input {index} must be a constant", found=repr(name))

    def _rank(self, name: str) -> int:
        return len(self.b.graph.info(name).shape)

    def _node(self) -> None:
        node, op = self.node, self.node.op_type
        needed = 2 if op in BINARY else MIN_INPUTS.get(op, 0 if op == "Constant" else 1)
        if len(node.output) < 1 or not node.output[0] or sum(1 for i in node.input if i) < needed:
            raise self.fail("a node without its inputs or output", expected=f"{needed} inputs and an output",
                            found=f"{len(node.input)} inputs, {len(node.output)} outputs")
        out = node.output[0]
        a = self.attrs()
        ins = [i for i in node.input]
        nm = node.name or out
        b = self.b
        if op == "Constant":
            value = a.get("value")
            array = initializer_array(value, self.file) if value is not None else np.asarray(
                a.get("value_float", a.get("value_int", a.get("value_floats", a.get("value_ints")))))
            self._initializer(out, np.asarray(array))
            return
        if op in UNARY:
            b.op(UNARY[op], ins[:1], name=nm, output=out)
        elif op in BINARY:
            b.op(BINARY[op], ins, name=nm, output=out)
        elif op == "LeakyRelu":
            b.op("leaky_relu", ins[:1], name=nm, output=out, alpha=float(a.get("alpha", 0.01)))
        elif op == "Clip":
            lo = self._float_scalar(1, float(a.get("min", -65504.0)))
            hi = self._float_scalar(2, float(a.get("max", 65504.0)))
            b.op("relu6" if (lo, hi) == (0.0, 6.0) else "clip", ins[:1], name=nm, output=out,
                 **({} if (lo, hi) == (0.0, 6.0) else {"min": lo, "max": hi}))
        elif op == "HardSigmoid":
            if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
                raise self.fail("HardSigmoid is supported with alpha 1/6 and beta 0.5 only")
            b.op("hard_sigmoid", ins[:1], name=nm, output=out)
        elif op == "Gelu":
            b.op("gelu", ins[:1], name=nm, output=out)
        elif op == "Pow":
            exponent = self._float_scalar(1, 0.0)
            table = {2.0: "square", 0.5: "sqrt", -0.5: "rsqrt", -1.0: "reciprocal"}
            if exponent not in table:
                raise self.fail("Pow is supported with exponents 2, 0.5, -0.5 and -1", found=exponent)
            b.op(table[exponent], ins[:1], name=nm, output=out)
        elif op == "Conv":
            self._conv(a, ins, nm, out)
        elif op in ("Gemm", "MatMul"):
            self._gemm(op, a, ins, nm, out)
        elif op == "BatchNormalization":
            b.op("batch_norm", [ins[0], ins[1], ins[2], ins[3], ins[4]], name=nm, output=out,
                 eps=float(a.get("epsilon", 1e-5)))
        elif op == "LayerNormalization":
            axis = int(a.get("axis", -1))
            if axis % self._rank(ins[0]) != self._rank(ins[0]) - 1:
                raise self.fail("LayerNormalization is supported over the last axis", found=axis)
            b.op("layer_norm", [i for i in ins if i], name=nm, output=out, axis=axis,
                 eps=float(a.get("epsilon", 1e-5)))
        elif op == "Softmax":
            b.op("softmax", ins[:1], name=nm, output=out, axis=int(a.get("axis", -1)))
        elif op in ("MaxPool", "AveragePool"):
            self._pool(op, a, ins, nm, out)
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            b.op("global_avg_pool" if op == "GlobalAveragePool" else "global_max_pool", ins[:1], name=nm,
                 output=out)
        elif op in REDUCE:
            axes = a.get("axes") or self._int_input(1)
            if not axes or len(axes) != 1:
                raise self.fail("reductions are supported over one axis", found=axes)
            b.op(REDUCE[op], ins[:1], name=nm, output=out, axis=int(axes[0]),
                 keepdims=bool(a.get("keepdims", 1)))
        elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            self._reshape(op, a, ins, nm, out)
        elif op == "Transpose":
            b.op("transpose", ins[:1], name=nm, output=out, perm=list(a["perm"]) if "perm" in a else None)
        elif op == "Concat":
            b.op("concat", ins, name=nm, output=out, axis=int(a["axis"]))
        elif op == "Slice":
            self._slice(ins, nm, out)
        else:
            raise self.fail("unsupported operation", found=op)

    def _conv(self, a: dict[str, Any], ins: list[str], nm: str, out: str) -> None:
        if ins[1] not in self.b.graph.constants:
            raise self.fail("convolution weights must be initializers")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        padding: Any = (pads[0], pads[2], pads[1], pads[3]) if len(pads) == 4 else 0
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            padding = "same"
        elif auto == "VALID":
            padding = 0
        self.b.op("conv2d", [i for i in ins if i], name=nm, output=out, stride=list(a.get("strides", [1, 1])),
                  padding=padding, dilation=list(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))

    def _gemm(self, op: str, a: dict[str, Any], ins: list[str], nm: str, out: str) -> None:
        b = self.b
        x, w = ins[0], ins[1]
        ta, tb = bool(a.get("transA", 0)), bool(a.get("transB", 0))
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        has_c = op == "Gemm" and len(ins) > 2 and ins[2]
        product = f"{out}.product" if (has_c or alpha != 1.0) else out
        b.op("matmul", [x, w], name=nm, output=product, transpose_a=ta, transpose_b=tb)
        current = product
        if alpha != 1.0:
            target = f"{out}.scaled" if has_c else out
            b.op("scale", [current], name=f"{nm}.alpha", output=target, scale=alpha)
            current = target
        if has_c:
            bias = ins[2]
            if beta != 1.0:
                b.op("scale", [bias], name=f"{nm}.beta", output=f"{out}.bias", scale=beta)
                bias = f"{out}.bias"
            b.op("add", [current, bias], name=f"{nm}.add", output=out)

    def _pool(self, op: str, a: dict[str, Any], ins: list[str], nm: str, out: str) -> None:
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if op == "AveragePool" and any(pads) and not a.get("count_include_pad", 0):
            raise self.fail("average pooling that excludes padding is not supported")
        self.b.op("max_pool2d" if op == "MaxPool" else "avg_pool2d", ins[:1], name=nm, output=out,
                  kernel=list(a["kernel_shape"]), stride=list(a.get("strides", a["kernel_shape"])),
                  padding=(pads[0], pads[2], pads[1], pads[3]))

    def _reshape(self, op: str, a: dict[str, Any], ins: list[str], nm: str, out: str) -> None:
        shape = list(self.b.graph.info(ins[0]).shape)
        if op == "Reshape":
            target = self._int_input(1)
            target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        elif op == "Flatten":
            axis = int(a.get("axis", 1)) % (len(shape) + 1)
            outer = int(np.prod(shape[:axis])) if axis else 1
            target = [outer, int(np.prod(shape[axis:]))]
        elif op == "Squeeze":
            axes = a.get("axes") or self._int_input(1) or [i for i, d in enumerate(shape) if d == 1]
            axes = {int(x) % len(shape) for x in axes}
            target = [d for i, d in enumerate(shape) if i not in axes]
        else:
            axes = sorted(int(x) for x in (a.get("axes") or self._int_input(1)))
            target = list(shape)
            for axis in axes:
                target.insert(axis % (len(target) + 1), 1)
        self.b.op("reshape", ins[:1], name=nm, output=out, shape=target or [1])

    def _slice(self, ins: list[str], nm: str, out: str) -> None:
        starts, ends = self._int_input(1), self._int_input(2)
        axes = self._int_input(3, list(range(len(starts))))
        steps = self._int_input(4, [1] * len(starts))
        rank = self._rank(ins[0])
        shape = self.b.graph.info(ins[0]).shape
        current = ins[0]
        moves = [(ax % rank, s, e, st) for ax, s, e, st in zip(axes, starts, ends, steps)
                 if not (s == 0 and e >= shape[ax % rank] and st == 1)]
        if not moves:
            self.b.op("identity", [current], name=nm, output=out)
            return
        for k, (axis, start, end, step) in enumerate(moves):
            if step < 1:
                raise self.fail("negative slice steps are not supported")
            target = out if k == len(moves) - 1 else f"{out}.axis{axis}"
            self.b.op("slice", [current], name=target if k < len(moves) - 1 else nm, output=target, axis=axis,
                      start=start, end=min(end, shape[axis]), step=step)
            current = target


def load_onnx(path: str | Path) -> Graph:
    """Read an ONNX file into a graph."""
    onnx = _onnx()
    file = Path(path)
    try:
        model = onnx.load(str(file))
    except FileNotFoundError:
        raise ProgramError("no such ONNX file", file=file) from None
    except Exception as exc:  # onnx raises several protobuf and IO error types
        raise ProgramError(f"cannot read ONNX model: {type(exc).__name__}", file=file) from None
    try:  # onnx's own checker: attribute types, node arity, graph wiring, per the operator schemas
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ProgramError("not a valid ONNX model", file=file,
                           found=" ".join(str(exc).split())[:200]) from None
    except UnicodeDecodeError:  # the checker's report quotes a name that is not UTF-8
        raise ProgramError("not a valid ONNX model: a name or string is not UTF-8 text", file=file) from None
    return _Importer(model, str(path)).run()


def graph_from_onnx(model: Any, name: str = "<onnx>",
                    fallback: Callable[[Any, Any], bool] | None = None) -> Graph:
    """A graph from an in-memory ``onnx.ModelProto`` (``fallback``: see ``_Importer``)."""
    return _Importer(model, name, fallback).run()
