"""The operations a graph may hold: their inputs, attributes and output shapes.

Each op has one :class:`OpSpec`: how many inputs it takes, its attributes with defaults, and a
shape rule. :func:`check_node` normalises a node's attributes (``stride: 2`` becomes ``(2, 2)``)
and returns its output shape, or raises :class:`CompileError` naming the node.

Conventions (all shapes logical NCHW after padding on the left):

- ``linear`` contracts the channel axis, the ANE's channel-first layout (a token sequence is
  ``(1, C, 1, S)``); ``matmul`` contracts the last axis of ``a`` with the second-to-last of ``b``
  like numpy, broadcasting the leading axes.
- ``softmax``, the norms and the reductions take one axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anesim.compiler.graph.attr_checks import FP16_OVERFLOW, MAX_GEOMETRY, check_blocksize, check_eps, check_flags
from anesim.errors import CompileError

Shape = tuple[int, ...]

UNARY_OPS = (
    "relu", "relu6", "leaky_relu", "clip", "sigmoid", "tanh", "gelu", "silu", "exp", "log",
    "sqrt", "rsqrt", "reciprocal", "square", "abs", "neg", "scale", "identity", "hard_sigmoid",
    "hard_swish", "softplus", "erf",
)
BINARY_OPS = ("add", "sub", "mul", "div", "max", "min")
POOL_OPS = ("max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool")
REDUCE_OPS = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
# Ops anesim has no engine lowering for: the compiler runs them on the host between engine
# segments (the CPU fallback Core ML uses). Whether the hardware could run them is the placement
# table's business (lowering/placement_rules.yaml, rows marked ``lowered: false``). Their results
# are fp16 like every other tensor; comparisons and logic give 1.0 or 0.0.
HOST_UNARY_OPS = ("floor", "ceil", "round", "sign", "logical_not", "sin", "cos", "tan", "asin", "acos",
                  "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "is_nan")
HOST_BINARY_OPS = ("equal", "greater", "less", "greater_equal", "less_equal", "logical_and",
                   "logical_or", "logical_xor", "mod", "fmod")
WEIGHT_FORMATS = ("fp16", "int8", "uint8", "palette")
PALETTE_BITS = (1, 2, 4, 6, 8)


def _bad(node_where: str, file: str | None, problem: str, expected: Any = None, found: Any = None) -> CompileError:
    return CompileError(problem, file=file, where=node_where, expected=expected, found=found)



def _bounded(values: tuple[int, ...], name: str) -> tuple[int, ...]:
    if any(abs(v) > MAX_GEOMETRY for v in values):
        raise ValueError(f"'{name}' must be at most {MAX_GEOMETRY} in size, found {max(values, key=abs)}")
    return values


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return _bounded((value, value), name)  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return _bounded((int(value[0]), int(value[1])), name)  # type: ignore[return-value]
    raise ValueError(f"'{name}' must be an integer or a pair of integers, found {value!r}")


def _padding(value: Any, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], in_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Explicit (top, bottom, left, right) padding from an int, pair, quad or 'same'/'same_lower'/'valid'.

    'same' puts an odd pixel of padding after the input, 'same_lower' before it.
    """
    if value == "valid":
        return 0, 0, 0, 0
    if value in ("same", "same_lower"):
        pads = []
        for k, s, d, size in zip(kernel, stride, dilation, in_hw):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if value == "same" else (large, small))
        return pads[0][0], pads[0][1], pads[1][0], pads[1][1]
    if isinstance(value, int) and not isinstance(value, bool):
        return _bounded((value, value, value, value), "padding")  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        if len(value) == 2:
            return _bounded((value[0], value[0], value[1], value[1]), "padding")  # type: ignore[return-value]
        if len(value) == 4:
            return _bounded((value[0], value[1], value[2], value[3]), "padding")  # type: ignore[return-value]
    raise ValueError(f"'padding' must be an integer, a pair, a quad (top, bottom, left, right), "
                     f"'same', 'same_lower' or 'valid', found {value!r}")


def _nchw(shape: Shape) -> tuple[int, int, int, int]:
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded[0], padded[1], padded[2], padded[3]


def broadcast_shapes(a: Shape, b: Shape) -> Shape:
    """Numpy broadcasting of two logical shapes."""
    rank = max(len(a), len(b))
    pa = (1,) * (rank - len(a)) + tuple(a)
    pb = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(max(x, y))
    return tuple(out)


def norm_axis(axis: Any, rank: int) -> int:
    """``axis`` of a rank-``rank`` tensor as 0 .. rank - 1; ValueError when it names none."""
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise ValueError(f"'axis' must be an integer in [{-rank}, {rank - 1}], found {axis!r}")
    return axis % rank


@dataclass(frozen=True)
class OpSpec:
    """One op: input arity, attribute defaults and the shape rule."""

    name: str
    min_inputs: int
    max_inputs: int
    defaults: dict[str, Any] = field(default_factory=dict)
    infer: Callable[[list[Shape], dict[str, Any]], Shape] | None = None


def _conv_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x, w = shapes[0], shapes[1]
    if len(x) != 4:
        raise ValueError(f"conv2d needs an NCHW input of rank 4, found shape {x}")
    if len(w) != 4:
        raise ValueError(f"conv2d weight must be OIHW (rank 4), found shape {w}")
    n, c, h, wd = x
    attrs["stride"] = _pair(attrs["stride"], "stride")
    attrs["dilation"] = _pair(attrs["dilation"], "dilation")
    groups = attrs["groups"]
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"'groups' must be a positive integer, found {groups!r}")
    cout, cin_g, kh, kw = w
    if c % groups or cout % groups:
        raise ValueError(f"input/output channels ({c}, {cout}) must be divisible by groups ({groups})")
    if cin_g * groups != c:
        raise ValueError(f"weight expects {cin_g * groups} input channels (OIHW {w}, groups {groups}), "
                         f"input has {c}")
    if len(shapes) > 2 and tuple(shapes[2]) not in ((cout,), (1, cout, 1, 1)):
        raise ValueError(f"bias must have shape ({cout},), found {shapes[2]}")
    if any(s < 1 for s in attrs["stride"]) or any(d < 1 for d in attrs["dilation"]):
        raise ValueError("stride and dilation must be at least 1")
    attrs["padding"] = _padding(attrs["padding"], (kh, kw), attrs["stride"], attrs["dilation"], (h, wd))
    if any(p < 0 for p in attrs["padding"]):
        raise ValueError("padding must not be negative")
    if attrs["weight_format"] not in WEIGHT_FORMATS:
        raise ValueError(f"'weight_format' must be one of {', '.join(WEIGHT_FORMATS)}, "
                         f"found {attrs['weight_format']!r}")
    if attrs["weight_format"] == "palette" and attrs["palette_bits"] not in PALETTE_BITS:
        raise ValueError(f"'palette_bits' must be one of {PALETTE_BITS}, found {attrs['palette_bits']!r}")
    _check_sparsity(attrs)
    pt, pb, pl, pr = attrs["padding"]
    sy, sx = attrs["stride"]
    dy, dx = attrs["dilation"]
    ho = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    wo = (wd + pl + pr - dx * (kw - 1) - 1) // sx + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {h}x{wd}")
    return (n, cout, ho, wo)


def _check_sparsity(attrs: dict[str, Any]) -> None:
    s = attrs["sparsity"]
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
        raise ValueError(f"'sparsity' (the fraction of weights pruned to zero) must be in [0, 1), found {s!r}")
    if s and attrs["weight_format"] != "fp16":
        raise ValueError(f"sparse weights are fp16 values under a mask; weight_format "
                         f"{attrs['weight_format']!r} cannot be sparse too")


def _linear_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x, w = shapes[0], shapes[1]
    if len(x) != 4:
        raise ValueError(f"linear contracts the channel axis of an NCHW tensor (rank 4); found shape {x}; "
                         f"use matmul for features-last tensors")
    if len(w) != 2:
        raise ValueError(f"linear weight must be (out_features, in_features), found shape {w}")
    if w[1] != x[1]:
        raise ValueError(f"weight expects {w[1]} input channels, input has {x[1]}")
    if len(shapes) > 2 and tuple(shapes[2]) not in ((w[0],), (1, w[0], 1, 1)):
        raise ValueError(f"bias must have shape ({w[0]},), found {shapes[2]}")
    if attrs["weight_format"] not in WEIGHT_FORMATS:
        raise ValueError(f"'weight_format' must be one of {', '.join(WEIGHT_FORMATS)}")
    if attrs["weight_format"] == "palette" and attrs["palette_bits"] not in PALETTE_BITS:
        raise ValueError(f"'palette_bits' must be one of {PALETTE_BITS}, found {attrs['palette_bits']!r}")
    _check_sparsity(attrs)
    return (x[0], w[0], x[2], x[3])


def _matmul_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    check_flags(attrs, "transpose_a", "transpose_b")
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"matmul needs operands of rank 2 or more, found {a} and {b}")
    m, k = (a[-1], a[-2]) if attrs["transpose_a"] else (a[-2], a[-1])
    k2, n = (b[-1], b[-2]) if attrs["transpose_b"] else (b[-2], b[-1])
    if k != k2:
        raise ValueError(f"inner dimensions differ: {a} x {b} contracts {k} with {k2}")
    lead = broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return tuple(lead) + (m, n)


def _binary_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    return broadcast_shapes(shapes[0], shapes[1])


def _same_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    return tuple(shapes[0])


def _leaky_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    if not isinstance(attrs["alpha"], (int, float)) or not 0 <= attrs["alpha"] < 1:
        raise ValueError(f"'alpha' must be a number in [0, 1), found {attrs['alpha']!r}")
    return tuple(shapes[0])


def _clip_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    lo, hi = attrs["min"], attrs["max"]
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or lo >= hi:
        raise ValueError(f"'min' and 'max' must be numbers with min < max, found {lo!r}, {hi!r}")
    if not (-FP16_OVERFLOW < lo and hi < FP16_OVERFLOW):
        # (the engine's clip is a table over [min, max]; Builder.clip writes a wider one as max/min)
        raise ValueError(f"'min' and 'max' must lie within fp16's range (|bound| < {FP16_OVERFLOW:g}; "
                         f"a one-sided clip is a max or min), found {lo!r}, {hi!r}")
    return tuple(shapes[0])


def _scale_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    for key in ("scale", "bias"):
        if not isinstance(attrs[key], (int, float)) or isinstance(attrs[key], bool):
            raise ValueError(f"'{key}' must be a number, found {attrs[key]!r}")
    return tuple(shapes[0])


def _pool_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    if len(x) != 4:
        raise ValueError(f"pooling needs an NCHW input of rank 4, found shape {x}")
    n, c, h, w = x
    attrs["kernel"] = _pair(attrs["kernel"], "kernel")
    stride = attrs["stride"] if attrs["stride"] is not None else attrs["kernel"]
    attrs["stride"] = _pair(stride, "stride")
    attrs["padding"] = _padding(attrs["padding"], attrs["kernel"], attrs["stride"], (1, 1), (h, w))
    kh, kw = attrs["kernel"]
    sy, sx = attrs["stride"]
    pt, pb, pl, pr = attrs["padding"]
    if min(kh, kw, sy, sx) < 1:
        raise ValueError("kernel and stride must be at least 1")
    if pt >= kh or pb >= kh or pl >= kw or pr >= kw:
        raise ValueError("pooling padding must be smaller than the window")
    ho = (h + pt + pb - kh) // sy + 1
    wo = (w + pl + pr - kw) // sx + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"window {kh}x{kw} is larger than the padded input {h}x{w}")
    return (n, c, ho, wo)


def _global_pool_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    if len(x) != 4:
        raise ValueError(f"global pooling needs an NCHW input of rank 4, found shape {x}")
    return (x[0], x[1], 1, 1)


def _axis_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    attrs["axis"] = norm_axis(attrs["axis"], len(shapes[0]))
    return tuple(shapes[0])


def _norm_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    attrs["axis"] = norm_axis(attrs["axis"], len(x))
    check_eps(attrs["eps"])
    size = x[attrs["axis"]]
    for extra in shapes[1:]:
        if math.prod(extra) != size:
            raise ValueError(f"scale and shift must have {size} elements (the normalised axis), found {extra}")
    return tuple(x)


def _reduce_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    check_flags(attrs, "keepdims")
    x = shapes[0]
    attrs["axis"] = norm_axis(attrs["axis"], len(x))
    out = list(x)
    out[attrs["axis"]] = 1
    if not attrs["keepdims"]:
        if len(out) == 1:
            raise ValueError("cannot drop the only axis; use keepdims: true")
        del out[attrs["axis"]]
    return tuple(out)


def _batch_norm_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    if len(x) != 4:
        raise ValueError(f"batch_norm needs an NCHW input of rank 4, found shape {x}")
    check_eps(attrs["eps"])
    for extra in shapes[1:]:
        if math.prod(extra) != x[1]:
            raise ValueError(f"batch-norm parameters must have {x[1]} elements, found {extra}")
    return tuple(x)


def _reshape_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    target = attrs["shape"]
    if not isinstance(target, (list, tuple)) or not target \
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in target):
        raise ValueError(f"'shape' must be a list of integers, found {target!r}")
    total = math.prod(x)
    if list(target).count(-1) > 1:
        raise ValueError("at most one -1 in 'shape'")
    known = math.prod(d for d in target if d != -1)
    if -1 in target:
        if known <= 0 or total % known:
            raise ValueError(f"cannot reshape {x} to {tuple(target)}")
        target = [total // known if d == -1 else d for d in target]
    if math.prod(target) != total or any(d <= 0 for d in target):
        raise ValueError(f"cannot reshape {x} ({total} elements) to {tuple(target)}")
    attrs["shape"] = tuple(target)
    return tuple(target)


def _transpose_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    perm = attrs["perm"]
    if perm is None:
        perm = list(reversed(range(len(x))))
    if not isinstance(perm, (list, tuple)) \
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in perm) \
            or sorted(perm) != list(range(len(x))):
        raise ValueError(f"'perm' must be a permutation of 0..{len(x) - 1}, found {perm!r}")
    attrs["perm"] = tuple(perm)
    return tuple(x[p] for p in perm)


def _concat_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    rank = len(shapes[0])
    axis = norm_axis(attrs["axis"], rank)
    attrs["axis"] = axis
    for s in shapes[1:]:
        if len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis):
            raise ValueError(f"concat inputs must match on every axis but {axis}: {shapes[0]} and {s}")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


def _slice_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    axis = norm_axis(attrs["axis"], len(x))
    attrs["axis"] = axis
    size = x[axis]
    start, end, step = attrs["start"], attrs["end"], attrs["step"]
    if end is None:
        end = size
    if not all(isinstance(v, int) for v in (start, end, step)) or step < 1:
        raise ValueError("'start', 'end' and 'step' must be integers, step at least 1")
    start = max(0, min(size, start + size if start < 0 else start))
    end = max(0, min(size, end + size if end < 0 else end))
    count = max(0, -(-(end - start) // step))
    if count == 0:
        raise ValueError(f"slice [{attrs['start']}:{attrs['end']}] of an axis of {size} is empty")
    attrs.update(start=start, end=end, step=step)
    out = list(x)
    out[axis] = count
    return tuple(out)


def _where_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    return broadcast_shapes(broadcast_shapes(shapes[0], shapes[1]), shapes[2])


def _arg_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    check_flags(attrs, "select_last_index")
    return _reduce_infer(shapes, attrs)


def _gather_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    axis = norm_axis(attrs["axis"], len(x))
    indices = attrs["indices"]
    if isinstance(indices, list):  # (a program file's YAML has lists, not tuples)
        indices = attrs["indices"] = tuple(indices)
    if not isinstance(indices, tuple) or not indices \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f"'indices' must be a non-empty list of integers, found {indices!r}")
    if any(not 0 <= i < x[axis] for i in indices):
        raise ValueError(f"an index is outside an axis of {x[axis]}: {indices}")
    attrs["axis"] = axis
    out = list(x)
    out[axis] = len(indices)
    return tuple(out)


def _gather_elements_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    x = shapes[0]
    attrs["axis"] = norm_axis(attrs["axis"], len(x))
    shape = tuple(attrs["index_shape"] or ())
    if len(shape) != len(x) or len(attrs["indices"] or ()) != math.prod(shape):
        raise ValueError(f"'indices' must hold an index per output element of a rank-{len(x)} shape")
    if any(not 0 <= i < x[attrs["axis"]] for i in attrs["indices"]):
        raise ValueError("an index is outside the gathered axis")
    return shape


def _gelu_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    # (the graph op is the erf form; a tanh approximation is written out, as the ONNX import does)
    if attrs["approximate"] != "none":
        raise ValueError(f"'approximate' must be 'none' (write the tanh form out with tanh), "
                         f"found {attrs['approximate']!r}")
    return tuple(shapes[0])


def _is_inf_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    check_flags(attrs, "detect_negative", "detect_positive")
    return tuple(shapes[0])


def _shrink_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    for key in ("bias", "lambd"):
        value = attrs[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"'{key}' must be a finite number, found {value!r}")
    return tuple(shapes[0])


def _depth_to_space_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    n, c, h, w = _nchw(shapes[0])
    b = check_blocksize(attrs["blocksize"])
    if len(shapes[0]) != 4 or c % (b * b) or attrs["mode"] not in ("DCR", "CRD"):
        raise ValueError(f"depth_to_space needs NCHW with C divisible by {b * b} and mode DCR or CRD")
    return (n, c // (b * b), h * b, w * b)


def _space_to_depth_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    n, c, h, w = _nchw(shapes[0])
    b = check_blocksize(attrs["blocksize"])
    if len(shapes[0]) != 4 or h % b or w % b:
        raise ValueError(f"space_to_depth needs NCHW with H and W divisible by {b}")
    return (n, c * b * b, h // b, w // b)


_CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "weight_format": "fp16",
                  "palette_bits": 4, "sparsity": 0.0}

SPECS: dict[str, OpSpec] = {
    "conv2d": OpSpec("conv2d", 2, 3, dict(_CONV_DEFAULTS), _conv_infer),
    "linear": OpSpec("linear", 2, 3, {"weight_format": "fp16", "palette_bits": 4, "sparsity": 0.0},
                     _linear_infer),
    "matmul": OpSpec("matmul", 2, 2, {"transpose_a": False, "transpose_b": False}, _matmul_infer),
    "batch_norm": OpSpec("batch_norm", 5, 5, {"eps": 1e-5}, _batch_norm_infer),
    "max_pool2d": OpSpec("max_pool2d", 1, 1, {"kernel": 2, "stride": None, "padding": 0}, _pool_infer),
    "avg_pool2d": OpSpec("avg_pool2d", 1, 1, {"kernel": 2, "stride": None, "padding": 0}, _pool_infer),
    "global_avg_pool": OpSpec("global_avg_pool", 1, 1, {}, _global_pool_infer),
    "global_max_pool": OpSpec("global_max_pool", 1, 1, {}, _global_pool_infer),
    "softmax": OpSpec("softmax", 1, 1, {"axis": 1}, _axis_infer),
    "layer_norm": OpSpec("layer_norm", 1, 3, {"axis": 1, "eps": 1e-5}, _norm_infer),
    "rms_norm": OpSpec("rms_norm", 1, 2, {"axis": 1, "eps": 1e-6}, _norm_infer),
    "reshape": OpSpec("reshape", 1, 1, {"shape": None}, _reshape_infer),
    "transpose": OpSpec("transpose", 1, 1, {"perm": None}, _transpose_infer),
    "concat": OpSpec("concat", 1, 64, {"axis": 1}, _concat_infer),
    "slice": OpSpec("slice", 1, 1, {"axis": 1, "start": 0, "end": None, "step": 1}, _slice_infer),
}
for _name in BINARY_OPS:
    SPECS[_name] = OpSpec(_name, 2, 2, {}, _binary_infer)
for _name in UNARY_OPS:
    SPECS[_name] = OpSpec(_name, 1, 1, {}, _same_infer)
SPECS["leaky_relu"] = OpSpec("leaky_relu", 1, 1, {"alpha": 0.01}, _leaky_infer)
SPECS["clip"] = OpSpec("clip", 1, 1, {"min": 0.0, "max": 6.0}, _clip_infer)
SPECS["scale"] = OpSpec("scale", 1, 1, {"scale": 1.0, "bias": 0.0}, _scale_infer)
SPECS["gelu"] = OpSpec("gelu", 1, 1, {"approximate": "none"}, _gelu_infer)
for _name in REDUCE_OPS:
    SPECS[_name] = OpSpec(_name, 1, 1, {"axis": 1, "keepdims": True}, _reduce_infer)

for _name in HOST_UNARY_OPS:
    SPECS[_name] = OpSpec(_name, 1, 1, {}, _same_infer)
for _name in HOST_BINARY_OPS:
    SPECS[_name] = OpSpec(_name, 2, 2, {}, _binary_infer)
SPECS["where"] = OpSpec("where", 3, 3, {}, _where_infer)
for _name in ("argmax", "argmin"):
    SPECS[_name] = OpSpec(_name, 1, 1, {"axis": 0, "keepdims": True, "select_last_index": False}, _arg_infer)
SPECS["gather"] = OpSpec("gather", 1, 1, {"axis": 0, "indices": None}, _gather_infer)
SPECS["is_inf"] = OpSpec("is_inf", 1, 1, {"detect_negative": True, "detect_positive": True}, _is_inf_infer)
SPECS["hardmax"] = OpSpec("hardmax", 1, 1, {"axis": -1}, _axis_infer)
SPECS["shrink"] = OpSpec("shrink", 1, 1, {"bias": 0.0, "lambd": 0.5}, _shrink_infer)
SPECS["gather_elements"] = OpSpec("gather_elements", 1, 1, {"axis": 0, "indices": None, "index_shape": None},
                                  _gather_elements_infer)
SPECS["depth_to_space"] = OpSpec("depth_to_space", 1, 1, {"blocksize": 2, "mode": "DCR"}, _depth_to_space_infer)
SPECS["space_to_depth"] = OpSpec("space_to_depth", 1, 1, {"blocksize": 2}, _space_to_depth_infer)

def _source_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    shape = attrs["shape"]
    if not isinstance(attrs["source_type"], str) or not attrs["source_type"]:
        raise ValueError("'source_type' must name the source model's operation")
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"'shape' must be a list of positive integers, found {shape!r}")
    return tuple(shape)


# An operation of the source model with no graph op of its own (an LSTM, a sine, an int32 cast):
# it carries its type, output shape and element type so placement can decide where it runs
# (`anesim check`); it has no lowering and no reference semantics.
SPECS["source_op"] = OpSpec("source_op", 0, 64, {"source_type": None, "shape": None, "dtype": "fp16",
                                                  "dynamic": ()}, _source_infer)


def _onnx_host_infer(shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
    shape = attrs["shape"]
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"'shape' must be a list of non-negative integers, found {shape!r}")
    return tuple(shape)


# One output of an ONNX node the engine does not run: the host evaluates the node with the onnx
# package's reference implementation (anesim.compiler.reference.onnx_host), with the exact ONNX
# element types, as Core ML's CPU fallback computes such layers in fp32 (integers exactly).
# ``model`` is a serialized one-node ModelProto (compile-time inputs as initializers), ``outputs``
# the graph tensors of all the node's outputs (evaluated once), ``output_index`` this one, ``file``
# the model file it came from (for the messages of a run-time failure).
ONNX_HOST_OP = "onnx_host"
SPECS[ONNX_HOST_OP] = OpSpec(ONNX_HOST_OP, 0, 64, {
    "source_type": None, "domain": "", "model": b"", "outputs": (), "output_index": 0, "shape": None,
    "onnx_shape": (), "onnx_dtype": "float32", "in_shapes": (), "in_dtypes": (), "reason": "", "file": ""},
    _onnx_host_infer)

OP_NAMES: tuple[str, ...] = tuple(sorted(SPECS))


def check_node(op: str, input_shapes: list[Shape], attrs: dict[str, Any], *, where: str,
               file: str | None = None) -> tuple[dict[str, Any], Shape]:
    """Validate one node; return its normalised attributes and output shape."""
    spec = SPECS.get(op)
    if spec is None:
        raise _bad(where, file, "unknown operation", expected="one of " + ", ".join(OP_NAMES), found=repr(op))
    count = len(input_shapes)
    if not spec.min_inputs <= count <= spec.max_inputs:
        arity = (str(spec.min_inputs) if spec.min_inputs == spec.max_inputs
                 else f"{spec.min_inputs} to {spec.max_inputs}")
        raise _bad(where, file, f"{op} takes {arity} inputs", found=count)
    unknown = sorted(set(attrs) - set(spec.defaults))
    if unknown:
        allowed = ", ".join(sorted(spec.defaults)) or "none"
        raise _bad(where, file, f"unknown attribute for {op}", expected=allowed, found=", ".join(unknown))
    merged = dict(spec.defaults)
    merged.update(attrs)
    try:
        shape = spec.infer(list(input_shapes), merged) if spec.infer else tuple(input_shapes[0])
    except ValueError as exc:
        raise _bad(where, file, f"{op}: {exc}") from None
    return merged, tuple(int(d) for d in shape)


def node_macs(graph: Any, node: Any) -> int:
    """Multiply-accumulates of one node as written (0 for non-contracting ops)."""
    if node.op == "conv2d":
        w = graph.info(node.inputs[1]).shape
        out = graph.info(node.output).shape
        return math.prod(out) * w[1] * w[2] * w[3]
    if node.op == "linear":
        w = graph.info(node.inputs[1]).shape
        return math.prod(graph.info(node.output).shape) * w[1]
    if node.op == "matmul":
        a = graph.info(node.inputs[0]).shape
        k = a[-2] if node.attrs.get("transpose_a") else a[-1]
        return math.prod(graph.info(node.output).shape) * k
    return 0
