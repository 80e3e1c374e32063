"""A numpy (float32) interpreter of graph operations.

It serves three purposes: folding operations whose inputs are all constants, running the host
work between engine segments, and giving tests the reference a compiled program must match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from anesim.compiler.graph.graph import Graph, Node, as_nchw

F32 = np.float32


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.reshape(as_nchw(a.shape))


def _conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: Mapping[str, Any]) -> np.ndarray:
    n, c, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    sy, sx = attrs["stride"]
    dy, dx = attrs["dilation"]
    pt, pb, pl, pr = attrs["padding"]
    g = attrs["groups"]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    wo = (wd + pl + pr - dx * (kw - 1) - 1) // sx + 1
    out = np.zeros((n, cout, ho, wo), F32)
    cout_g = cout // g
    for gi in range(g):
        xs = xp[:, gi * cin_g:(gi + 1) * cin_g]
        ws = w[gi * cout_g:(gi + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dy: i * dy + (ho - 1) * sy + 1: sy, j * dx: j * dx + (wo - 1) * sx + 1: sx]
                out[:, gi * cout_g:(gi + 1) * cout_g] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j],
                                                                     optimize=True)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _pool(x: np.ndarray, attrs: Mapping[str, Any], kind: str) -> np.ndarray:
    kh, kw = attrs["kernel"]
    sy, sx = attrs["stride"]
    pt, pb, pl, pr = attrs["padding"]
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    n, c, h, w = xp.shape
    ho = (h - kh) // sy + 1
    wo = (w - kw) // sx + 1
    windows = [xp[:, :, i: i + (ho - 1) * sy + 1: sy, j: j + (wo - 1) * sx + 1: sx]
               for i in range(kh) for j in range(kw)]
    stack = np.stack(windows, 0)
    # Average pooling divides by the whole window, padding included (the planar engine's
    # window size is fixed per task).
    return stack.max(0) if kind == "max" else stack.mean(0)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(F32)


def _matmul(a: np.ndarray, b: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    if attrs.get("transpose_a"):
        a = np.swapaxes(a, -1, -2)
    if attrs.get("transpose_b"):
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def run_node(node: Node, args: list[np.ndarray]) -> np.ndarray:
    """Evaluate one node on float32 arrays of its inputs' logical shapes."""
    with np.errstate(all="ignore"):  # (IEEE infinities and NaNs are the values; numpy would warn)
        return _run_node(node, args)


def _run_node(node: Node, args: list[np.ndarray]) -> np.ndarray:
    a = node.attrs
    op = node.op
    x = args[0].astype(F32) if args else None
    if op == "conv2d":
        return _conv2d(x, args[1].astype(F32), args[2].reshape(-1) if len(args) > 2 else None, a)
    if op == "linear":
        w = args[1].astype(F32)
        y = np.einsum("nchw,oc->nohw", x, w, optimize=True)
        if len(args) > 2:
            y = y + args[2].reshape(1, -1, 1, 1)
        return y
    if op == "matmul":
        return _matmul(x, args[1].astype(F32), a)
    binary = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "max": np.maximum, "min": np.minimum}
    if op in binary:
        with np.errstate(divide="ignore", invalid="ignore"):
            return binary[op](x, args[1].astype(F32))
    if op == "batch_norm":
        g, beta, mean, var = (v.reshape(1, -1, 1, 1).astype(F32) for v in args[1:])
        return (x - mean) / np.sqrt(var + a["eps"]) * g + beta
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        unary: dict[str, Any] = {
            "relu": lambda v: np.maximum(v, 0),
            "relu6": lambda v: np.clip(v, 0, 6),
            "leaky_relu": lambda v: np.where(v >= 0, v, v * a.get("alpha", 0.01)),
            "clip": lambda v: np.clip(v, a.get("min", 0.0), a.get("max", 6.0)),
            "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "tanh": np.tanh,
            "gelu": lambda v: 0.5 * v * (1 + _erf(v / math.sqrt(2))),
            "silu": lambda v: v / (1 + np.exp(-v)),
            "exp": np.exp,
            "log": np.log,
            "sqrt": np.sqrt,
            "rsqrt": lambda v: 1 / np.sqrt(v),
            "reciprocal": lambda v: 1 / v,
            "square": np.square,
            "abs": np.abs,
            "neg": np.negative,
            "scale": lambda v: v * a.get("scale", 1.0) + a.get("bias", 0.0),
            "identity": lambda v: v,
            "hard_sigmoid": lambda v: np.clip(v / 6 + 0.5, 0, 1),
            "hard_swish": lambda v: v * np.clip(v / 6 + 0.5, 0, 1),
            "softplus": lambda v: np.log1p(np.exp(v)),
            "erf": _erf,
        }
        if op in unary:
            return unary[op](x).astype(F32)
    if op in ("max_pool2d", "avg_pool2d"):
        return _pool(x, a, "max" if op == "max_pool2d" else "avg")
    if op == "global_avg_pool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "global_max_pool":
        return x.max(axis=(2, 3), keepdims=True)
    if op == "softmax":
        e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
        return e / e.sum(axis=a["axis"], keepdims=True)
    if op == "layer_norm":
        mu = x.mean(axis=a["axis"], keepdims=True)
        var = ((x - mu) ** 2).mean(axis=a["axis"], keepdims=True)
        y = (x - mu) / np.sqrt(var + a["eps"])
        return _affine(y, args[1:], a["axis"])
    if op == "rms_norm":
        y = x / np.sqrt((x * x).mean(axis=a["axis"], keepdims=True) + a["eps"])
        return _affine(y, args[1:], a["axis"])
    if op.startswith("reduce_"):
        fn = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min}[op]
        return fn(x, axis=a["axis"], keepdims=a["keepdims"])
    if op == "reshape":
        return x.reshape(a["shape"])
    if op == "transpose":
        return np.transpose(x, a["perm"])
    if op == "concat":
        return np.concatenate([v.astype(F32) for v in args], axis=a["axis"])
    if op == "slice":
        index = [slice(None)] * x.ndim
        index[a["axis"]] = slice(a["start"], a["end"], a["step"])
        return x[tuple(index)]
    host = _host_op(op, a, [v.astype(F32) for v in args])
    if host is not None:
        return host
    raise NotImplementedError(f"no reference for {op}")


_HOST_ELEMENTWISE: dict[str, Any] = {
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "sign": np.sign,
    "logical_not": lambda v: v == 0, "equal": np.equal, "greater": np.greater, "less": np.less,
    "greater_equal": np.greater_equal, "less_equal": np.less_equal,
    "logical_and": lambda p, q: (p != 0) & (q != 0), "logical_or": lambda p, q: (p != 0) | (q != 0),
    "logical_xor": lambda p, q: (p != 0) ^ (q != 0), "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "is_nan": np.isnan,
    "mod": np.mod, "fmod": np.fmod,
}


def _host_op(op: str, a: Mapping[str, Any], args: list[np.ndarray]) -> np.ndarray | None:
    """The ops only the host runs (comparisons, logic, rounding, selection, indices)."""
    if op in _HOST_ELEMENTWISE:
        return np.asarray(_HOST_ELEMENTWISE[op](*args)).astype(F32)
    if op == "where":
        return np.where(args[0] != 0, args[1], args[2]).astype(F32)
    if op in ("argmax", "argmin"):
        x = args[0] if op == "argmax" else -args[0]
        axis = a["axis"]
        if a["select_last_index"]:
            x = np.flip(x, axis)
            index = x.shape[axis] - 1 - np.argmax(x, axis=axis)
        else:
            index = np.argmax(x, axis=axis)
        return (np.expand_dims(index, axis) if a["keepdims"] else index).astype(F32)
    if op == "gather":
        return np.take(args[0], np.asarray(a["indices"]), axis=a["axis"])
    if op == "is_inf":
        x = args[0]
        return (np.isinf(x) & (((x > 0) & a["detect_positive"]) | ((x < 0) & a["detect_negative"]))).astype(F32)
    if op == "hardmax":
        index = np.expand_dims(np.argmax(args[0], axis=a["axis"]), a["axis"])
        out = np.zeros_like(args[0])
        np.put_along_axis(out, index, 1.0, axis=a["axis"])
        return out
    if op == "shrink":
        x, lam, bias = args[0], a["lambd"], a["bias"]
        return np.where(x < -lam, x + bias, np.where(x > lam, x - bias, 0.0)).astype(F32)
    if op == "gather_elements":
        index = np.asarray(a["indices"], np.int64).reshape(a["index_shape"])
        return np.take_along_axis(args[0], index, axis=a["axis"])
    if op == "depth_to_space":
        n, c, h, w = args[0].shape
        b = a["blocksize"]
        if a["mode"] == "DCR":
            y = args[0].reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = args[0].reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (b * b), h * b, w * b)
    if op == "space_to_depth":
        n, c, h, w = args[0].shape
        b = a["blocksize"]
        y = args[0].reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
        return y.reshape(n, c * b * b, h // b, w // b)
    return None


def _affine(y: np.ndarray, params: list[np.ndarray], axis: int) -> np.ndarray:
    if not params:
        return y
    shape = [1] * y.ndim
    shape[axis] = -1
    y = y * params[0].reshape(shape)
    if len(params) > 1:
        y = y + params[1].reshape(shape)
    return y


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray],
              keep: bool = False) -> dict[str, np.ndarray]:
    """Evaluate a whole graph; returns its outputs (every value with ``keep=True``)."""
    env: dict[str, np.ndarray] = {}
    for name, info in graph.inputs.items():
        if name not in inputs:
            raise KeyError(f"missing input {name!r}")
        env[name] = np.asarray(inputs[name], F32).reshape(info.shape)
    for name, const in graph.constants.items():
        env[name] = const.data.array().astype(F32)
    for node in graph.nodes:
        env[node.output] = run_node(node, [env[i] for i in node.inputs]).astype(F32)
    if keep:
        return env
    return {name: env[name] for name in graph.outputs}


def fp16_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for a graph, already rounded to fp16 (standard normal)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, info in graph.inputs.items():
        if info.dtype == "uint8":
            out[name] = rng.integers(0, 256, info.shape).astype(np.uint8)
        else:
            out[name] = rng.standard_normal(info.shape).astype(np.float16)
    return out
