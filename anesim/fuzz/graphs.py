"""Differential fuzzing of the compiler: random small graphs, run on the engine and in numpy.

The input fuzzer (:mod:`anesim.fuzz.pool`) checks that damaged files end in a clean refusal; it
cannot tell a wrong value from a right one. This one can. A case builds a chain of one to four
operations with random attributes on a random NCHW input, some joining the current value with
an earlier one (a draw the graph builder refuses ends the case as "invalid"), compiles it for
the M1, executes it with the engine's fp16 numerics on inputs in [-1, 1], and compares the
result with the float32 reference (:mod:`anesim.compiler.reference`), whose values beyond fp16's
range count as the infinities fp16 rounds them to. A case ends as:

- ``ok``: the compiled model computes the graph, within :data:`TOLERANCE`;
- ``refused``: the compiler refused it with an :class:`~anesim.errors.AnesimError` (faithful or
  refused allows that; the count is reported);
- ``invalid``: the drawn graph is not a valid one (the builder says why);
- ``wrong`` (values or shape differ) or ``escape`` (another exception): failures.

Logarithms, square roots, reciprocal square roots and reciprocals are drawn on ``|x| + c`` with
``c`` from 0.25 to 2, and norms (layer and RMS norm, with or without scale and shift) only as
the first operation, on the input itself, over an axis of at least eight elements: near zero,
and on the variance of nearly equal values (which the M1 flushes to zero as a subnormal,
docs/numerics.md), their fp16 results differ from float32 by nature, and a difference there
would say nothing about the compiler. A case depends on ``(seed, index)`` alone.

    python benchmarks/fuzz_graphs.py --cases 3000 --seed 1
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNARY = ("relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "exp", "square", "abs", "neg", "identity",
         "hard_sigmoid", "hard_swish", "softplus", "erf")
BINARY = ("add", "sub", "mul", "div", "max", "min")
AXIS_OPS = ("softmax", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
GUARDED = ("log", "sqrt", "rsqrt", "reciprocal")  # drawn on |x| + c, c >= 0.25 (module docstring)
NORMS = ("layer_norm", "rms_norm")
NORM_MIN_ELEMENTS = 8  # the shortest axis a norm is drawn over
KINDS = ("unary", "binary", "axis", "transpose", "reshape", "concat", "slice", "conv", "linear", "matmul",
         "pool", "global_pool", "depth_to_space", "space_to_depth", "leaky_relu", "clip", "scale", "join",
         "guarded", "norm")
TOLERANCE = 0.05  # of the largest reference magnitude, or absolute below 1
MAX_ELEMENTS = 200_000  # a drawn value larger than this ends the chain (keeps every case cheap)
INPUT_DIMS = (40, 12, 20)  # the largest channels, height and width of an input drawn


@dataclass
class GraphCase:
    """How one case ended, and the operations it drew."""

    index: int
    status: str
    detail: str = ""
    ops: list[str] = field(default_factory=list)


def _draw_op(r: random.Random, b: Any, x: Any, shape: list[int], k: int, earlier: list[Any]) -> tuple[Any, str]:
    """Apply one random operation to ``x`` (of ``shape``); the result and a description.

    ``earlier`` holds the values before ``x`` in the chain: a join combines ``x`` with one of
    them (a residual connection, or a product of two branches), so values are read twice.
    """
    n, c, h, w = shape  # (every draw starts from a rank-4 value: see run_graph_case)
    kind = r.choice(KINDS)
    name = f"op{k}"
    rng = np.random.default_rng(r.randrange(1 << 30))
    if kind == "join":
        same = [e for e in earlier if list(b.graph.info(e.name).shape) == list(shape)]
        if same:
            op, other = r.choice(("add", "mul", "max", "sub")), r.choice(same)
            args = [x, other] if r.random() < 0.5 else [other, x]
            return b.op(op, args, name=name), f"{op} with {other.name}"
        kind = "unary"
    if kind == "norm":
        axes = [a for a in range(4) if shape[a] >= NORM_MIN_ELEMENTS]
        if k == 0 and axes:
            return _draw_norm(r, b, x, shape, r.choice(axes), name, rng)
        kind = "guarded"
    if kind == "guarded":
        op, offset = r.choice(GUARDED), r.choice((0.25, 0.5, 1.0, 2.0))
        shifted = b.op("add", [b.op("abs", [x], name=f"{name}.abs"),
                               b.constant(f"const{k}", np.full([1, 1, 1, 1], offset, np.float32))], name=f"{name}.shift")
        return b.op(op, [shifted], name=name), f"{op} of |x| + {offset}"
    if kind == "unary":
        op = r.choice(UNARY)
        return b.op(op, [x], name=name), op
    if kind == "binary":
        op = r.choice(BINARY)
        other = r.choice([list(shape), [1, c, 1, 1], [1, 1, 1, 1], [1, 1, 1, w], [1, 1, h, w], [n, c, h, 1]])
        low, high = (0.5, 1.5) if op == "div" else (-1.0, 1.0)  # (no divisor near zero)
        const = b.constant(f"const{k}", rng.uniform(low, high, other).astype(np.float32))
        args = [const, x] if op != "div" and r.random() < 0.3 else [x, const]
        return b.op(op, args, name=name), f"{op} with {other}"
    if kind == "axis":
        op, axis = r.choice(AXIS_OPS), r.randrange(-len(shape), len(shape))
        attrs: dict[str, Any] = {"axis": axis}
        if op.startswith("reduce_"):
            attrs["keepdims"] = r.random() < 0.7
        return b.op(op, [x], name=name, **attrs), f"{op} {attrs}"
    if kind == "transpose":
        perm = list(range(len(shape)))
        r.shuffle(perm)
        return b.op("transpose", [x], name=name, perm=perm), f"transpose {perm}"
    if kind == "reshape":
        dims, rest = [], math.prod(shape)
        for _ in range(3):
            d = r.choice([d for d in range(1, min(rest, 64) + 1) if rest % d == 0])
            dims.append(d)
            rest //= d
        dims.append(rest)
        r.shuffle(dims)
        return b.op("reshape", [x], name=name, shape=dims), f"reshape {dims}"
    if kind == "concat":
        axis = r.randrange(len(shape))
        return b.op("concat", [x, x], name=name, axis=axis), f"concat axis {axis}"
    if kind == "slice":
        axis = r.randrange(len(shape))
        start = r.randrange(shape[axis])
        end, step = r.randint(start + 1, shape[axis]), r.choice((1, 1, 2, 3))
        return (b.op("slice", [x], name=name, axis=axis, start=start, end=end, step=step),
                f"slice axis {axis} {start}:{end}:{step}")
    if kind == "conv":
        k_hw, stride, dilation = r.choice((1, 1, 2, 3, 5)), r.choice((1, 1, 2)), r.choice((1, 1, 2))
        padding: Any = r.choice((0, k_hw // 2, 1, "same", "same_lower", "valid",
                                 [r.randrange(3) for _ in range(4)]))  # (a list: top, bottom, left, right)
        groups = r.choice((1, 1, c))
        out = r.choice((1, 3, 8, 16, 33)) if groups == 1 else c * r.choice((1, 2))
        bias = r.random() < 0.5
        return (b.conv2d(x, out, kernel=k_hw, stride=stride, padding=padding, dilation=dilation, groups=groups,
                         bias=bias, name=name),
                f"conv2d {k_hw}x{k_hw} stride {stride} padding {padding} dilation {dilation} groups {groups} "
                f"out {out} bias {bias}")
    if kind == "linear":
        out = r.choice((1, 5, 16, 70))
        return b.linear(x, out, bias=r.random() < 0.5, name=name), f"linear {out}"
    if kind == "matmul":
        cols = r.choice((1, 4, 9))
        const = b.constant(f"const{k}", rng.uniform(-1, 1, [1, 1, shape[-1], cols]).astype(np.float32))
        return b.op("matmul", [x, const], name=name), f"matmul by ({shape[-1]}, {cols})"
    if kind == "pool":
        op, k_hw, stride = r.choice(("max_pool2d", "avg_pool2d")), r.choice((1, 2, 3)), r.choice((None, 1, 2))
        padding = r.choice((0, 0, 1, [0, 1, 1, 0])) if k_hw > 1 else 0
        return (b.op(op, [x], name=name, kernel=k_hw, stride=stride, padding=padding),
                f"{op} {k_hw} stride {stride} padding {padding}")
    if kind == "global_pool":
        op = r.choice(("global_avg_pool", "global_max_pool"))
        return b.op(op, [x], name=name), op
    if kind == "depth_to_space":
        mode = r.choice(("DCR", "CRD"))
        return b.op("depth_to_space", [x], name=name, blocksize=2, mode=mode), f"depth_to_space {mode}"
    if kind == "space_to_depth":
        return b.op("space_to_depth", [x], name=name, blocksize=2), "space_to_depth"
    if kind == "leaky_relu":
        alpha = r.choice((0.01, 0.2, 0.5))
        return b.op("leaky_relu", [x], name=name, alpha=alpha), f"leaky_relu {alpha}"
    if kind == "clip":
        low = r.uniform(-1, 0.5)
        high = low + r.uniform(0, 1)
        return b.op("clip", [x], name=name, min=low, max=high), f"clip {low:.3f} {high:.3f}"
    scale, bias = r.uniform(-3, 3), r.uniform(-1, 1)
    return b.op("scale", [x], name=name, scale=scale, bias=bias), f"scale {scale:.3f} {bias:.3f}"


def compare(got: np.ndarray, want: np.ndarray) -> tuple[bool, str]:
    """Whether the engine's ``got`` computes the reference ``want``, and how far apart they are."""
    if got.shape != want.shape:
        return False, f"shape {got.shape}, expected {want.shape}"
    # A float32 reference beyond fp16's range rounds to an infinity in fp16: the engine's result
    # is fp16, so that infinity is the value it must give (exp of a large sum, say).
    with np.errstate(over="ignore"):
        over = np.isfinite(want) & np.isinf(want.astype(np.float16))
    if over.any():
        want = np.where(over, np.copysign(np.inf, want), want).astype(want.dtype)
    finite = np.isfinite(want)
    if (np.isnan(got) & finite).any():
        return False, f"{int((np.isnan(got) & finite).sum())} NaN where the reference is finite"
    special = ~finite  # where the reference is NaN or infinite, the engine must give the same
    if special.any() and not np.array_equal(got[special], want[special], equal_nan=True):
        return False, f"{int((got[special] != want[special]).sum())} of the reference's NaN or inf not given"
    if not finite.any():
        return True, "0"
    scale = max(float(np.max(np.abs(want[finite]))), 1.0)
    err = float(np.max(np.abs(got[finite] - want[finite]))) / scale
    return err <= TOLERANCE, f"{err:.3g}"


def _draw_norm(r: random.Random, b: Any, x: Any, shape: list[int], axis: int, name: str,
               rng: np.random.Generator) -> tuple[Any, str]:
    """A layer or RMS norm of ``x`` over ``axis``, with or without a scale (and a shift)."""
    op, eps = r.choice(NORMS), r.choice((1e-5, 1e-3))
    args = [x]
    if r.random() < 0.6:  # (a learned scale; a layer norm's shift with it)
        args.append(b.constant(f"{name}.gain", rng.uniform(0.5, 1.5, [shape[axis]]).astype(np.float32)))
        if op == "layer_norm" and r.random() < 0.7:
            args.append(b.constant(f"{name}.shift", rng.uniform(-1, 1, [shape[axis]]).astype(np.float32)))
    return b.op(op, args, name=name, axis=axis, eps=eps), f"{op} axis {axis} eps {eps} with {len(args) - 1} constants"


def run_graph_case(seed: int, index: int, chip: str = "m1") -> GraphCase:
    """Build, compile, execute and check case ``index`` of ``seed``."""
    from anesim.chips import load_chip
    from anesim.compiler import Builder, compile_graph
    from anesim.compiler.reference import run_graph
    from anesim.errors import AnesimError
    from anesim.functional import execute

    r = random.Random(f"{seed}:graph:{index}")
    case = GraphCase(index, "ok")
    b = Builder(f"case{index}")
    shape = [r.choice((1, 1, 2)), *(r.randint(1, top) for top in INPUT_DIMS)]
    x = t = b.input("x", shape)
    earlier: list[Any] = []
    try:
        for k in range(r.randint(1, 4)):
            earlier.append(t)
            t, description = _draw_op(r, b, t, shape, k, earlier[:-1])
            case.ops.append(description)
            shape = list(b.graph.info(t.name).shape)
            if math.prod(shape) > MAX_ELEMENTS or len(shape) != 4:
                break  # (the next draws assume a rank-4 tensor)
        b.output(t)
        graph = b.build()
    except (AnesimError, ValueError) as exc:
        case.status, case.detail = "invalid", str(exc)[:200]
        return case
    feeds = {"x": np.random.default_rng([seed, index]).uniform(-1, 1, graph.info(x.name).shape).astype(np.float16)}
    try:
        config = load_chip(chip)
        result = compile_graph(graph, config)
        got = result.execute(feeds, lambda segment, segment_feeds: execute(segment, segment_feeds, config, "exact"))
        got = got[graph.outputs[0]]
    except AnesimError as exc:
        case.status, case.detail = "refused", str(exc)[:200]
        return case
    except Exception as exc:  # noqa: BLE001 - anything else is the failure this fuzzer looks for
        case.status, case.detail = "escape", f"{type(exc).__name__}: {exc}"[:300]
        return case
    want = run_graph(graph, {k: v.astype(np.float32) for k, v in feeds.items()})[graph.outputs[0]]
    with np.errstate(all="ignore"):
        ok, case.detail = compare(np.asarray(got, np.float32), np.asarray(want, np.float32))
    case.status = "ok" if ok else "wrong"
    return case
