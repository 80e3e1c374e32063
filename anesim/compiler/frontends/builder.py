"""A Python API for describing a model, one operation per call.

    b = Builder("block", seed=0)
    x = b.input("x", (1, 64, 32, 32))
    y = b.conv2d(x, out_channels=64, kernel=3, padding=1, activation="relu")
    b.output(y)
    graph = b.build()

Weights are given as arrays, or generated from the builder's seed when first needed (``weights=
"he_normal"``, the default), so big models cost no memory until they are executed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anesim.compiler.graph.constants import INIT_KINDS, ConstantData, Init, derive_seed
from anesim.compiler.graph.graph import Constant, Graph, Node, TensorInfo
from anesim.compiler.graph.attr_checks import clip_bounds
from anesim.compiler.graph.ops import check_node, norm_axis
from anesim.errors import CompileError
from anesim.limits import check_bytes, tensor_bytes

WeightSpec = np.ndarray | str | dict[str, Any] | None


@dataclass(frozen=True)
class Tensor:
    """A handle on a tensor of the graph being built."""

    name: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return self.name


TensorLike = Tensor | str


def _positive(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CompileError(f"'{key}' must be a positive integer", where=where, found=repr(value))
    return value


def _kernel_pair(kernel: Any, where: str) -> tuple[int, int]:
    if isinstance(kernel, int) and not isinstance(kernel, bool):
        pair = (kernel, kernel)
    elif isinstance(kernel, (list, tuple)) and len(kernel) == 2:
        pair = (kernel[0], kernel[1])
    else:
        raise CompileError("'kernel' must be an integer or a pair of integers", where=where, found=repr(kernel))
    for k in pair:
        _positive(k, "kernel", where)
    return pair


class Builder:
    """Build a :class:`Graph` with one method call per operation."""

    def __init__(self, name: str, seed: int = 0, source: str = "") -> None:
        self.graph = Graph(name=name, source=source)
        self.seed = int(seed)
        self._counter: dict[str, int] = {}

    # -- tensors -------------------------------------------------------------------------

    def _name(self, stem: str, name: str | None) -> str:
        if name:
            return name
        n = self._counter.get(stem, 0)
        self._counter[stem] = n + 1
        return f"{stem}_{n}"

    def _ref(self, t: TensorLike) -> str:
        name = t.name if isinstance(t, Tensor) else str(t)
        if name not in self.graph.values:
            raise CompileError("unknown tensor", file=self.graph.source or None, found=repr(name))
        return name

    def tensor(self, name: str) -> Tensor:
        """A handle on an existing tensor by name."""
        return Tensor(name, self.graph.info(self._ref(name)).shape)

    def input(self, name: str, shape: Sequence[int], dtype: str = "fp16") -> Tensor:
        """Declare an input the host supplies."""
        if dtype not in ("fp16", "uint8"):
            raise CompileError("program inputs must be fp16 or uint8", where=f"input '{name}'",
                               found=repr(dtype))
        info = TensorInfo(name, tuple(int(d) for d in shape), dtype)
        self.graph.add_value(info, where=f"input '{name}'")
        self.graph.inputs[name] = info
        return Tensor(name, info.shape)

    def constant(self, name: str, value: WeightSpec = None, shape: Sequence[int] | None = None,
                 dtype: str = "fp16", **init: Any) -> Tensor:
        """A constant: an array, or generated (``value='normal'``, ``std=0.02``) from the seed."""
        data = self._constant_data(name, value, None if shape is None else tuple(shape), dtype, init)
        self.graph.add_value(TensorInfo(name, data.shape, data.dtype), where=f"constant '{name}'")
        self.graph.constants[name] = Constant(name, data)
        return Tensor(name, data.shape)

    def constant_data(self, name: str, data: ConstantData) -> Tensor:
        """A constant whose numbers come from a :class:`ConstantData` (importers use this)."""
        self.graph.add_value(TensorInfo(name, data.shape, data.dtype), where=f"constant '{name}'")
        self.graph.constants[name] = Constant(name, data)
        return Tensor(name, data.shape)

    def _constant_data(self, name: str, value: WeightSpec, shape: tuple[int, ...] | None,
                       dtype: str, init: dict[str, Any]) -> ConstantData:
        where = f"constant '{name}'"
        if isinstance(value, dict):
            init = {**value, **init}
            value = init.pop("init", None)
        if isinstance(value, (np.ndarray, list, tuple, float, int)) and not isinstance(value, bool):
            try:
                arr = np.asarray(value)
            except (ValueError, TypeError, OverflowError):  # (ragged nesting)
                raise CompileError("a constant's values must form a rectangular array", where=where,
                                   found=repr(value)[:60]) from None
            if arr.dtype.kind not in "biuf":  # (strings, None, integers past 64 bits: an object array)
                raise CompileError("a constant's values must be numbers", where=where,
                                   expected="integers of at most 64 bits or floats", found=repr(value)[:60])
            if shape is not None and tuple(arr.shape) != shape:
                if arr.size == 1:  # (a scalar filling the shape: its size is checked before it exists)
                    check_bytes(tensor_bytes(shape, arr.dtype.itemsize), file=self.graph.source or None,
                                field=f"{where}: shape")
                    arr = np.full(shape, arr.reshape(-1)[0], dtype=arr.dtype)
                else:
                    raise CompileError("constant has the wrong shape", where=where, expected=shape,
                                       found=tuple(arr.shape))
            if arr.ndim == 0:
                arr = arr.reshape(1)
            return ConstantData.from_array(arr, None if dtype == "fp16" else dtype)
        if shape is None:
            raise CompileError("a generated constant needs a shape", where=where)
        kind = value or init.pop("kind", None) or "normal"
        if kind not in INIT_KINDS:
            raise CompileError("unknown constant initialiser", where=where,
                               expected=", ".join(INIT_KINDS), found=repr(kind))
        seed = init.pop("seed", derive_seed(self.seed, name))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise CompileError("the initialiser's 'seed' must be a whole number", where=where,
                               expected="an integer >= 0", found=repr(seed)[:60])
        allowed = {"std", "low", "high", "value", "gain"}
        extra = sorted(set(init) - allowed)
        if extra:
            raise CompileError("unknown initialiser parameter", where=where,
                               expected=", ".join(sorted(allowed)), found=", ".join(extra))
        for key, number in init.items():
            if isinstance(number, bool) or not isinstance(number, (int, float, np.number)) \
                    or not _finite(number):
                raise CompileError(f"the initialiser's '{key}' must be a finite number", where=where,
                                   expected="a number", found=repr(number)[:60])
        for key in ("std", "gain"):  # (a spread and a scale of one)
            if float(init.get(key, 0.0)) < 0:
                raise CompileError(f"the initialiser's '{key}' is negative", where=where,
                                   expected="a number >= 0", found=repr(init[key])[:60])
        draw = Init(kind=kind, seed=seed, **init)
        interval = draw.interval(shape)
        if interval is not None and not (interval[0] <= interval[1] and _finite(interval[1] - interval[0])):
            # (numpy draws nothing from an empty or unbounded interval)
            raise CompileError("the initialiser's interval is empty or too wide", where=where,
                               expected="low <= high, with high - low a finite double",
                               found=f"low {interval[0]:g}, high {interval[1]:g}")
        return ConstantData.seeded(shape, draw, dtype)

    def _weight(self, owner: str, role: str, value: WeightSpec, shape: tuple[int, ...],
                default: str) -> str:
        """Turn a weight argument into a constant tensor name."""
        if isinstance(value, (Tensor, str)) and (isinstance(value, Tensor) or value in self.graph.values):
            name = self._ref(value)
            if self.graph.info(name).shape not in (shape, (shape[0],) if role == "bias" else shape):
                raise CompileError(f"{role} has the wrong shape", where=f"op '{owner}'",
                                   expected=shape, found=self.graph.info(name).shape)
            return name
        name = f"{owner}.{role}"
        self.constant(name, default if value is None else value, shape=shape)
        return name

    # -- generic -------------------------------------------------------------------------

    def op(self, op: str, inputs: Sequence[TensorLike], name: str | None = None,
           where: str | None = None, output: str | None = None, **attrs: Any) -> Tensor:
        """Append any operation by name (see :mod:`anesim.compiler.graph.ops`).

        The result tensor is called ``output`` when given, else like the node.
        """
        node_name = self._name(op, name)
        refs = tuple(self._ref(t) for t in inputs)
        loc = where or f"op '{node_name}'"
        shapes = [self.graph.info(r).shape for r in refs]
        merged, shape = check_node(op, shapes, dict(attrs), where=loc, file=self.graph.source or None)
        out = output or node_name
        self.graph.add_value(TensorInfo(out, shape), where=loc)
        self.graph.nodes.append(Node(node_name, op, refs, out, merged, loc))
        return Tensor(out, shape)

    def output(self, *tensors: TensorLike) -> None:
        """Mark tensors as outputs the host reads back."""
        for t in tensors:
            name = self._ref(t)
            if name in self.graph.outputs:
                raise CompileError("tensor is already an output", found=repr(name))
            self.graph.outputs.append(name)

    def build(self) -> Graph:
        """The finished graph; it must have at least one input and one output."""
        if not self.graph.outputs:
            raise CompileError("the graph has no outputs", file=self.graph.source or None)
        return self.graph

    # -- layers --------------------------------------------------------------------------

    def conv2d(self, x: TensorLike, out_channels: int, kernel: int | Sequence[int] = 1,
               stride: int | Sequence[int] = 1, padding: Any = 0, dilation: int | Sequence[int] = 1,
               groups: int = 1, weights: WeightSpec = None, bias: WeightSpec | bool = False,
               activation: str | None = None, weight_format: str = "fp16", palette_bits: int | None = None,
               name: str | None = None, sparsity: float = 0.0) -> Tensor:
        """A 2-D convolution (OIHW weights), optional bias and activation.

        ``sparsity`` prunes that fraction of the weights to zero; the kernel is then stored as a
        mask and its nonzero fp16 values.
        """
        xin = self.tensor(self._ref(x))
        node_name = self._name("conv", name)
        kh, kw = _kernel_pair(kernel, f"op '{node_name}'")
        _positive(out_channels, "out_channels", f"op '{node_name}'")
        _positive(groups, "groups", f"op '{node_name}'")
        if len(xin.shape) != 4:
            raise CompileError("conv2d needs an NCHW input", where=f"op '{node_name}'", found=xin.shape)
        cin = xin.shape[1]
        if groups < 1 or cin % groups:
            raise CompileError("input channels must be divisible by groups", where=f"op '{node_name}'",
                               found=f"{cin} channels, {groups} groups")
        w = self._weight(node_name, "weight", weights, (out_channels, cin // groups, kh, kw), "he_normal")
        inputs = [xin.name, w]
        if bias is not False and bias is not None:
            inputs.append(self._weight(node_name, "bias", "zeros" if bias is True else bias,
                                       (out_channels,), "zeros"))
        out = self.op("conv2d", inputs, name=node_name, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, weight_format=weight_format,
                      palette_bits=_palette_bits(weight_format, palette_bits, node_name), sparsity=sparsity)
        return self._activate(out, activation)

    def linear(self, x: TensorLike, out_features: int, weights: WeightSpec = None,
               bias: WeightSpec | bool = False, activation: str | None = None,
               weight_format: str = "fp16", palette_bits: int | None = None, name: str | None = None,
               sparsity: float = 0.0) -> Tensor:
        """A fully connected layer over the channel axis (a 1x1 convolution in ANE layout).

        ``sparsity`` prunes that fraction of the weights to zero (mask plus nonzero values).
        """
        xin = self.tensor(self._ref(x))
        node_name = self._name("linear", name)
        _positive(out_features, "out_features", f"op '{node_name}'")
        if len(xin.shape) != 4:
            raise CompileError("linear needs an NCHW input (channel-first); use matmul otherwise",
                               where=f"op '{node_name}'", found=xin.shape)
        w = self._weight(node_name, "weight", weights, (out_features, xin.shape[1]), "xavier_uniform")
        inputs = [xin.name, w]
        if bias is not False and bias is not None:
            inputs.append(self._weight(node_name, "bias", "zeros" if bias is True else bias,
                                       (out_features,), "zeros"))
        out = self.op("linear", inputs, name=node_name, weight_format=weight_format,
                      palette_bits=_palette_bits(weight_format, palette_bits, node_name), sparsity=sparsity)
        return self._activate(out, activation)

    def _activate(self, x: Tensor, activation: str | None) -> Tensor:
        """Apply an activation; the result keeps the layer's name, the raw sum becomes '<name>.pre'."""
        if not activation or activation == "none":
            return x
        node = self.graph.nodes[-1]
        pre = f"{x.name}.pre"
        if node.output != x.name or pre in self.graph.values:
            return self.op(activation, [x], name=f"{x.name}.{activation}")
        info = self.graph.values.pop(x.name)
        self.graph.values[pre] = TensorInfo(pre, info.shape, info.dtype)
        node.output = pre
        return self.op(activation, [pre], name=f"{x.name}.{activation}", output=x.name, where=node.where)

    def matmul(self, a: TensorLike, b: TensorLike, transpose_a: bool = False,
               transpose_b: bool = False, name: str | None = None) -> Tensor:
        """Matrix product over the last two axes, leading axes broadcast."""
        return self.op("matmul", [a, b], name=name, transpose_a=transpose_a, transpose_b=transpose_b)

    def batch_norm(self, x: TensorLike, eps: float = 1e-5, gamma: WeightSpec = None,
                   beta: WeightSpec = None, mean: WeightSpec = None, var: WeightSpec = None,
                   name: str | None = None) -> Tensor:
        """Inference batch normalisation (folded into the preceding convolution when possible)."""
        xin = self.tensor(self._ref(x))
        node_name = self._name("bn", name)
        c = xin.shape[1]
        params = [
            self._weight(node_name, "gamma", gamma, (c,), "ones"),
            self._weight(node_name, "beta", beta, (c,), "zeros"),
            self._weight(node_name, "mean", mean, (c,), "zeros"),
            self._weight(node_name, "var", var, (c,), "ones"),
        ]
        return self.op("batch_norm", [xin.name, *params], name=node_name, eps=eps)

    def layer_norm(self, x: TensorLike, axis: int = 1, eps: float = 1e-5, gamma: WeightSpec = None,
                   beta: WeightSpec = None, name: str | None = None) -> Tensor:
        """Layer normalisation over one axis (the channel axis in ANE layout)."""
        xin = self.tensor(self._ref(x))
        node_name = self._name("layer_norm", name)
        size = self._axis_size(xin, axis, "layer_norm", node_name)
        inputs = [xin.name]
        if gamma is not None or beta is not None:
            inputs.append(self._weight(node_name, "gamma", gamma, (size,), "ones"))
            inputs.append(self._weight(node_name, "beta", beta, (size,), "zeros"))
        return self.op("layer_norm", inputs, name=node_name, axis=axis, eps=eps)

    def rms_norm(self, x: TensorLike, axis: int = 1, eps: float = 1e-6, gamma: WeightSpec = None,
                 name: str | None = None) -> Tensor:
        """RMS normalisation over one axis."""
        xin = self.tensor(self._ref(x))
        node_name = self._name("rms_norm", name)
        inputs = [xin.name]
        if gamma is not None:
            size = self._axis_size(xin, axis, "rms_norm", node_name)
            inputs.append(self._weight(node_name, "gamma", gamma, (size,), "ones"))
        return self.op("rms_norm", inputs, name=node_name, axis=axis, eps=eps)

    def _axis_size(self, x: Tensor, axis: Any, op: str, node_name: str) -> int:
        """The length of ``x`` along ``axis`` (the normalised one), before any weight is made for it."""
        try:
            return x.shape[norm_axis(axis, len(x.shape))]
        except ValueError as exc:
            raise CompileError(f"{op}: {exc}", file=self.graph.source or None, where=f"op '{node_name}'") from None

    def softmax(self, x: TensorLike, axis: int = 1, name: str | None = None) -> Tensor:
        """Softmax over one axis."""
        return self.op("softmax", [x], name=name, axis=axis)

    def max_pool2d(self, x: TensorLike, kernel: int | Sequence[int], stride: Any = None,
                   padding: Any = 0, name: str | None = None) -> Tensor:
        """Max pooling on the planar engine."""
        return self.op("max_pool2d", [x], name=name, kernel=kernel, stride=stride, padding=padding)

    def avg_pool2d(self, x: TensorLike, kernel: int | Sequence[int], stride: Any = None,
                   padding: Any = 0, name: str | None = None) -> Tensor:
        """Average pooling on the planar engine."""
        return self.op("avg_pool2d", [x], name=name, kernel=kernel, stride=stride, padding=padding)

    def global_avg_pool(self, x: TensorLike, name: str | None = None) -> Tensor:
        """Average over height and width."""
        return self.op("global_avg_pool", [x], name=name)

    def reshape(self, x: TensorLike, shape: Sequence[int], name: str | None = None) -> Tensor:
        """Reshape (a view when the layout allows, a copy otherwise)."""
        return self.op("reshape", [x], name=name, shape=list(shape))

    def transpose(self, x: TensorLike, perm: Sequence[int], name: str | None = None) -> Tensor:
        """Permute axes."""
        return self.op("transpose", [x], name=name, perm=list(perm))

    def concat(self, xs: Sequence[TensorLike], axis: int = 1, name: str | None = None) -> Tensor:
        """Concatenate along one axis (producers write straight into the result when they can)."""
        return self.op("concat", list(xs), name=name, axis=axis)

    def slice(self, x: TensorLike, axis: int, start: int, end: int | None = None, step: int = 1,
              name: str | None = None) -> Tensor:
        """Take ``[start:end:step]`` along one axis."""
        return self.op("slice", [x], name=name, axis=axis, start=start, end=end, step=step)

    def add(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise a + b (numpy broadcasting)."""
        return self.op("add", [a, b], name=name)

    def sub(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise a - b."""
        return self.op("sub", [a, b], name=name)

    def mul(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise a * b."""
        return self.op("mul", [a, b], name=name)

    def div(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise a / b."""
        return self.op("div", [a, b], name=name)

    def maximum(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise maximum."""
        return self.op("max", [a, b], name=name)

    def minimum(self, a: TensorLike, b: TensorLike, name: str | None = None) -> Tensor:
        """Elementwise minimum."""
        return self.op("min", [a, b], name=name)

    def activation(self, kind: str, x: TensorLike, name: str | None = None, **attrs: Any) -> Tensor:
        """Any unary activation by name: relu, gelu, sigmoid, tanh, silu, exp, leaky_relu, ..."""
        return self.op(kind, [x], name=name, **attrs)

    def relu(self, x: TensorLike, name: str | None = None) -> Tensor:
        """max(x, 0)."""
        return self.op("relu", [x], name=name)

    def clip(self, x: TensorLike, lo: float | None, hi: float | None, name: str | None = None) -> Tensor:
        """``x`` clipped to [lo, hi] (None: no bound), as the engine can hold it.

        The engine's clip is a table over a finite range. A bound that fp16 rounds to an infinity
        on its own side clips nothing an fp16 tensor holds (an infinity stays one either way), so
        it is dropped: a one-sided clip is a max or a min with a scalar, none at all an identity.
        """
        node_name = self._name("clip", name)
        try:
            lo, hi = clip_bounds(lo, hi)
        except ValueError as exc:
            raise CompileError(str(exc), file=self.graph.source or None, where=f"op '{node_name}'") from None
        if lo is None and hi is None:
            return self.op("identity", [x], name=node_name)
        if lo is not None and hi is not None:
            return self.op("clip", [x], name=node_name, min=float(lo), max=float(hi))
        bound, op = (lo, "max") if lo is not None else (hi, "min")
        limit = self.constant(f"{node_name}.{op}", np.asarray([bound], np.float32))
        return self.op(op, [x, limit], name=node_name)

    def gelu(self, x: TensorLike, name: str | None = None) -> Tensor:
        """Gaussian error linear unit."""
        return self.op("gelu", [x], name=name)

    def sigmoid(self, x: TensorLike, name: str | None = None) -> Tensor:
        """Logistic sigmoid."""
        return self.op("sigmoid", [x], name=name)

    def scale(self, x: TensorLike, scale: float = 1.0, bias: float = 0.0, name: str | None = None) -> Tensor:
        """x * scale + bias with scalar constants."""
        return self.op("scale", [x], name=name, scale=float(scale), bias=float(bias))


def _palette_bits(weight_format: str, bits: int | None, node_name: str) -> int:
    """A layer's palette width: given only with a palette (nothing else reads it), 4 by default."""
    if bits is not None and weight_format != "palette":
        raise CompileError("palette_bits describes a palette: it needs weight_format palette",
                           where=f"op '{node_name}'", found=f"weight_format {weight_format!r}, palette_bits {bits!r}")
    return 4 if bits is None else bits


def _finite(number: int | float | np.number) -> bool:
    """Whether ``number`` is a finite float64 (an integer too large for one is not)."""
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False
