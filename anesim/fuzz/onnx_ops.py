"""Differential fuzzing of the ONNX importer: single operators with random attributes, run by
anesim and by ONNX Runtime.

The ONNX backend tests (``benchmarks/onnx_conformance.py``) run each operator on the handful of
attribute values their authors wrote down. Here a case draws one operator from :data:`OPS` with
random attributes and inputs (axes, keepdims, permutations, slices with negative and huge
bounds, convolutions and pools with every padding form, pads of every mode, gathers with
negative indices, resizes in every coordinate mode, broadcasts...), checks the one-node model
with onnx's checker and shape inference, and runs it in ONNX Runtime and in anesim (M1, fp16
numerics, inputs rounded to fp16 first). A case ends as:

- ``ok``: anesim's output has ONNX Runtime's shape and values, within :data:`TOLERANCE`;
- ``refused``: anesim refused the model with an :class:`~anesim.errors.AnesimError`;
- ``invalid``: onnx's checker, its shape inference or ONNX Runtime refused the drawn model;
- ``wrong`` or ``escape`` (another exception): failures.

Two draws are left out, where the runtimes themselves disagree and anesim follows onnx's
reference (docs/onnx.md): ``align_corners`` and ``pytorch_half_pixel`` resizes by a scale that
gives no whole length, and pools whose windows can lie wholly in the padding. Instance, group
and Lp norms are left out as in :mod:`anesim.fuzz.graphs`: the M1 flushes the square of a small
value to zero, so a norm of nearly equal or small values differs from float32 by nature; a layer
norm is drawn over four values or more, a batch norm with constant statistics. So is a square
root: the engine's table gives +0 for a negative input where float32 gives NaN
(docs/numerics.md). A case depends on
``(seed, index)`` alone. Needs ``onnx`` and ``onnxruntime`` (the test extra).

    python benchmarks/fuzz_graphs.py --onnx --cases 2000 --seed 1
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from anesim.fuzz.graphs import GraphCase, compare

OPS = ("Softmax", "LogSoftmax", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceProd",
       "Transpose", "Concat", "Slice", "Split", "Gemm", "MatMul", "Conv", "MaxPool", "AveragePool", "Pad",
       "Flatten", "Squeeze", "Unsqueeze", "Gather", "Clip", "LeakyRelu", "HardSigmoid", "Elu", "Selu",
       "Where", "Expand", "Tile", "CumSum", "DepthToSpace", "SpaceToDepth", "Resize", "Mul", "Add", "Div",
       "Pow", "Erf", "Gelu", "ArgMax", "ArgMin", "Celu", "HardSwish", "Hardmax", "Mish", "PRelu", "Shrink",
       "Softplus", "Softsign", "ThresholdedRelu", "Identity", "Reshape", "GlobalAveragePool", "GlobalMaxPool",
       "ConvTranspose", "Einsum", "GatherElements", "LpPool", "BatchNormalization", "LayerNormalization", "Mod")
OPSET = 20
TOLERANCE = 0.05


class _Draw:
    """One operator's inputs, attributes and initializers, drawn from ``r``."""

    def __init__(self, r: random.Random) -> None:
        self.r = r
        self.rank = r.choice((2, 3, 4, 4, 4))
        self.shape = [r.choice((1, 1, 2))] + [r.randint(1, 9) for _ in range(self.rank - 1)]
        self.inputs = ["x"]
        self.outputs = ["y"]
        self.attrs: dict[str, Any] = {}
        self.inits: list[Any] = []
        self.out_type = "FLOAT"  # (the outputs' ONNX element type)

    def axis(self) -> int:
        return self.r.randrange(-self.rank, self.rank)

    def const(self, name: str, value: Any, dtype: Any = np.int64) -> None:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        self.inputs.append(name)

    def uniform(self, low: float, high: float, shape: Any) -> np.ndarray:
        return np.random.default_rng(self.r.randrange(1 << 30)).uniform(low, high, shape).astype(np.float32)


def _draw(r: random.Random) -> tuple[str, _Draw] | None:
    """A random operator and its arguments; None when the drawn shape does not suit it."""
    d = _Draw(r)
    op = r.choice(OPS)
    shape, rank, a = d.shape, d.rank, d.attrs
    if op in ("Softmax", "LogSoftmax", "Concat"):
        a["axis"] = d.axis()
        if op == "Concat":
            d.inputs.append("x")
    elif op.startswith("Reduce"):
        a["keepdims"] = r.choice((0, 1))
        d.const("axes", sorted({d.axis() % rank for _ in range(r.randint(1, 2))}))
    elif op == "Transpose":
        a["perm"] = r.sample(range(rank), rank)
    elif op == "Slice":
        axis = r.randrange(rank)
        size = shape[axis]
        step = r.choice((1, 1, 2, -1))
        start, end = (size - 1, r.choice((-size - 1, 0))) if step < 0 else \
            (r.randint(-size, size - 1), r.choice((size, r.randint(-size, size), 2 ** 62)))
        for name, value in (("starts", [start]), ("ends", [end]), ("axes", [axis]), ("steps", [step])):
            d.const(name, value)
    elif op == "Split":
        a["axis"] = d.axis()
        size = shape[a["axis"]]
        if size < 2:
            return None
        k = r.randint(1, size - 1)
        d.const("split", [k, size - k])
        d.outputs = ["y", "y2"]
    elif op == "Gemm":
        if rank != 2:
            return None
        n, ta, tb = r.randint(1, 9), r.choice((0, 1)), r.choice((0, 1))
        k = shape[0] if ta else shape[1]
        a.update(transA=ta, transB=tb, alpha=r.choice((1.0, 0.5, -2.0)), beta=r.choice((1.0, 0.0, 3.0)))
        d.const("b", d.uniform(-1, 1, (n, k) if tb else (k, n)), np.float32)
        d.const("c", d.uniform(-1, 1, r.choice(((n,), (1, n), ()))), np.float32)
    elif op == "MatMul":
        d.const("b", d.uniform(-1, 1, (shape[-1], r.randint(1, 9))), np.float32)
    elif op == "Conv":
        if rank != 4:
            return None
        k, groups = r.choice((1, 2, 3)), r.choice((1, shape[1]))
        out = r.choice((1, 4)) * groups
        d.const("w", d.uniform(-1, 1, (out, shape[1] // groups, k, k)), np.float32)
        a.update(group=groups, strides=[r.choice((1, 2))] * 2, dilations=[r.choice((1, 2))] * 2)
        if r.random() < 0.5 and a["dilations"] == [1, 1]:  # (ONNX Runtime: no auto_pad with dilation)
            a["auto_pad"] = r.choice(("SAME_UPPER", "SAME_LOWER", "VALID"))
        else:
            a["pads"] = [r.randrange(k) for _ in range(4)]
        if r.random() < 0.5:
            d.const("bias", d.uniform(-1, 1, out), np.float32)
    elif op in ("MaxPool", "AveragePool"):
        if rank != 4:
            return None
        kernel = [r.choice((1, 2, 3)), r.choice((1, 2, 3))]
        if kernel[0] > shape[2] or kernel[1] > shape[3]:
            return None  # (a window larger than the input: ONNX Runtime 1.32 divides by zero and dies)
        a.update(kernel_shape=kernel, strides=[r.choice((1, 2))] * 2)
        if r.random() < 0.5:  # (less than the kernel: no window lies wholly in the padding)
            a["pads"] = [r.randrange(kernel[i % 2]) for i in range(4)]
        if r.random() < 0.3:
            a["ceil_mode"] = 1
        if op == "AveragePool" and r.random() < 0.5:
            a["count_include_pad"] = 1
    elif op == "Pad":
        a["mode"] = r.choice(("constant", "reflect", "edge"))
        d.const("pads", [r.randrange(3) for _ in range(2 * rank)])
        if a["mode"] == "constant" and r.random() < 0.5:
            d.const("value", 0.5, np.float32)
    elif op == "Flatten":
        a["axis"] = r.randrange(-rank, rank + 1)
    elif op == "Squeeze":
        ones = [i for i, size in enumerate(shape) if size == 1]
        if not ones:
            return None
        d.const("axes", [r.choice(ones)])
    elif op == "Unsqueeze":
        if rank >= 4:
            return None
        d.const("axes", [r.randrange(-rank - 1, rank + 1)])
    elif op == "Gather":
        a["axis"] = d.axis()
        size = shape[a["axis"]]
        d.const("indices", [r.randrange(-size, size) for _ in range(r.randint(1, 4))])
    elif op == "Clip":
        low = r.uniform(-1, 0)
        d.const("min", low, np.float32)
        d.const("max", low + r.uniform(0, 1), np.float32)
    elif op == "LeakyRelu":
        a["alpha"] = r.choice((0.01, 0.3, 2.0, -0.5))
    elif op == "HardSigmoid":
        a.update(alpha=r.choice((0.2, 0.5)), beta=r.choice((0.5, 0.1)))
    elif op == "Elu":
        a["alpha"] = r.choice((1.0, 0.5))
    elif op == "Where":
        d.inputs = []
        d.const("condition", np.random.default_rng(r.randrange(1 << 30)).random(shape) < 0.5, np.bool_)
        d.inputs.append("x")
        d.const("other", np.full(shape, 0.25), np.float32)
    elif op == "Expand":
        d.const("shape", [r.choice((size, 2)) if size == 1 else size for size in shape])
    elif op == "Tile":
        d.const("repeats", [r.choice((1, 2)) for _ in shape])
    elif op == "CumSum":
        d.const("axis", d.axis())
        a.update(exclusive=r.choice((0, 1)), reverse=r.choice((0, 1)))
    elif op in ("DepthToSpace", "SpaceToDepth"):
        if rank != 4 or (op == "DepthToSpace" and shape[1] % 4) or (op == "SpaceToDepth" and (shape[2] % 2 or shape[3] % 2)):
            return None
        a["blocksize"] = 2
        if op == "DepthToSpace":
            a["mode"] = r.choice(("DCR", "CRD"))
    elif op == "Resize":
        if rank != 4:
            return None
        a.update(mode=r.choice(("nearest", "linear")),
                 coordinate_transformation_mode=r.choice(("asymmetric", "half_pixel", "align_corners",
                                                          "pytorch_half_pixel")))
        if a["mode"] == "nearest":
            a["nearest_mode"] = r.choice(("floor", "round_prefer_floor", "ceil"))
        scales = [1.0, 1.0, r.choice((1.0, 2.0, 0.5)), r.choice((1.0, 2.0, 3.0))]
        if a["coordinate_transformation_mode"] in ("align_corners", "pytorch_half_pixel") and (shape[2] * scales[2]) % 1:
            return None  # (the runtimes read these differently: see docs/onnx.md)
        d.inputs.append("")
        d.const("scales", scales, np.float32)
    elif op in ("Mul", "Add", "Div", "Pow"):
        other = r.choice((shape, shape[-1:], [1] * rank, shape[:1] + [1] * (rank - 1)))
        value = d.uniform(0.5 if op in ("Div", "Pow") else -1.0, 1.5, other)
        d.const("b", np.round(value * 2) if op == "Pow" else value, np.float32)  # (whole powers)
    elif op == "Gelu":
        a["approximate"] = r.choice(("none", "tanh"))
    else:
        return _draw_more(r, op, d)
    return op, d


def _draw_more(r: random.Random, op: str, d: _Draw) -> tuple[str, _Draw] | None:
    """The arguments of the activations, norms, index and layout operators (see :func:`_draw`)."""
    shape, rank, a = d.shape, d.rank, d.attrs
    if op in ("ArgMax", "ArgMin"):
        a.update(axis=d.axis(), keepdims=r.choice((0, 1)), select_last_index=r.choice((0, 1)))
        d.out_type = "INT64"
    elif op in ("Celu", "ThresholdedRelu"):
        a["alpha"] = r.choice((1.0, 0.5, 2.0) if op == "Celu" else (1.0, 0.2, -0.5))
    elif op == "Hardmax":
        a["axis"] = d.axis()
    elif op == "PRelu":
        d.const("slope", d.uniform(-1, 1, r.choice(([1], shape[-1:], [shape[1]] + [1] * (rank - 2)))), np.float32)
    elif op == "Shrink":
        a.update(bias=r.choice((0.0, 0.5)), lambd=r.choice((0.5, 0.2)))
    elif op == "Reshape":
        target = r.choice(([-1], [shape[0], -1], list(reversed(shape)), [0] + shape[1:]))
        d.const("shape", target)
    elif op in ("GlobalAveragePool", "GlobalMaxPool", "LpPool", "ConvTranspose"):
        if rank != 4:
            return None
        if op == "LpPool":
            kernel = [r.choice((1, 2, 3)), r.choice((1, 2, 3))]
            if kernel[0] > shape[2] or kernel[1] > shape[3]:
                return None
            a.update(kernel_shape=kernel, p=r.choice((1, 2)), strides=[r.choice((1, 2))] * 2)
        elif op == "ConvTranspose":
            k, stride, groups = r.choice((1, 2, 3)), r.choice((1, 2)), r.choice((1, shape[1]))
            out = r.choice((1, 2)) * groups
            d.const("w", d.uniform(-1, 1, (shape[1], out // groups, k, k)), np.float32)
            a.update(group=groups, strides=[stride] * 2, pads=[r.randrange(k) for _ in range(4)],
                     output_padding=[r.randrange(stride)] * 2)
            if r.random() < 0.5:
                d.const("bias", d.uniform(-1, 1, out), np.float32)
    elif op == "Einsum":
        n = r.randint(1, 6)
        if rank == 2:
            a["equation"] = r.choice(("ij,jk->ik", "ij,kj->ik"))
            d.const("b", d.uniform(-1, 1, (shape[1], n) if a["equation"] == "ij,jk->ik" else (n, shape[1])),
                    np.float32)
        elif rank == 3:
            a["equation"] = "bij,bjk->bik"
            d.const("b", d.uniform(-1, 1, (shape[0], shape[2], n)), np.float32)
        else:
            a["equation"] = r.choice(("nchw->nhwc", "nchw->nchw", "nchw,c->nhw"))
            if "," in a["equation"]:
                d.const("b", d.uniform(-1, 1, (shape[1],)), np.float32)
    elif op == "GatherElements":
        a["axis"] = d.axis()
        size = shape[a["axis"]]
        out = list(shape)
        out[a["axis"]] = r.randint(1, 4)
        d.const("indices", np.random.default_rng(r.randrange(1 << 30)).integers(-size, size, out))
    elif op == "BatchNormalization":
        c = shape[1]
        a["epsilon"] = r.choice((1e-5, 1e-3))
        for name, low, high in (("scale", 0.5, 1.5), ("bias", -1, 1), ("mean", -0.5, 0.5), ("var", 0.2, 2.0)):
            d.const(name, d.uniform(low, high, c), np.float32)
    elif op == "LayerNormalization":
        a.update(axis=d.axis(), epsilon=r.choice((1e-5, 1e-3)))
        norm = shape[a["axis"] % rank:]
        if int(np.prod(norm)) < 4:
            return None  # (the variance of one to three values: the engine's flushed squares, see above)
        d.const("scale", d.uniform(0.5, 1.5, norm), np.float32)
        if r.random() < 0.5:
            d.const("bias", d.uniform(-1, 1, norm), np.float32)
    elif op == "Mod":
        a["fmod"] = 1
        d.const("b", d.uniform(0.5, 1.5, shape[-1:]), np.float32)
    return op, d


def run_onnx_case(seed: int, index: int, chip: str = "m1") -> GraphCase:
    """Draw, check and run case ``index`` of ``seed`` in ONNX Runtime and in anesim."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from anesim.chips import load_chip
    from anesim.compiler.api import compile_file
    from anesim.errors import AnesimError
    from anesim.functional import execute

    r = random.Random(f"{seed}:onnx-op:{index}")
    drawn = _draw(r)
    if drawn is None:
        return GraphCase(index, "invalid", "the drawn shape does not suit the operator")
    op, d = drawn
    case = GraphCase(index, "ok", ops=[f"{op} {d.attrs} on {d.shape}"])
    node = helper.make_node(op, d.inputs, d.outputs, **d.attrs)
    graph = helper.make_graph([node], "case", [helper.make_tensor_value_info("x", TensorProto.FLOAT, d.shape)],
                              [helper.make_tensor_value_info(o, getattr(TensorProto, d.out_type), None)
                               for o in d.outputs],
                              d.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    x = np.random.default_rng([seed, index]).uniform(-1, 1, d.shape).astype(np.float16).astype(np.float32)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.log_severity_level = 4
        want = ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})
    except Exception as exc:  # noqa: BLE001 - onnx or ONNX Runtime refused the draw
        case.status, case.detail = "invalid", f"{type(exc).__name__}: {exc}"[:200]
        return case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "case.onnx"
        onnx.save(model, str(path))
        try:
            config = load_chip(chip)
            result = compile_file(path, config)
            got = result.execute({"x": x}, lambda segment, feeds: execute(segment, feeds, config, "exact"))
        except AnesimError as exc:
            case.status, case.detail = "refused", str(exc)[:200]
            return case
        except Exception as exc:  # noqa: BLE001 - anything else is what this fuzzer looks for
            case.status, case.detail = "escape", f"{type(exc).__name__}: {exc}"[:300]
            return case
    for name, expected in zip(d.outputs, want):
        if np.asarray(got[name]).dtype != np.asarray(expected).dtype:  # (the declared type, as a runtime gives)
            case.status, case.detail = "wrong", f"output {name}: type {np.asarray(got[name]).dtype}, expected {np.asarray(expected).dtype}"
            return case
        value = np.asarray(got[name], np.float32)
        expected = np.asarray(expected, np.float32)
        with np.errstate(all="ignore"):
            ok, detail = compare(value, expected) if expected.size else (value.size == 0, "empty")
        if not ok:
            case.status, case.detail = "wrong", f"output {name}: {detail}"
            return case
    return case
