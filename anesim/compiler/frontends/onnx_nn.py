"""ONNX neural-network ops -> graph ops: elementwise, activations, products, convolutions,
normalisations, softmax, pooling and reductions.

Activations without an engine table are composed from ones that have one (``Elu`` is
``relu(x) + α(exp(min(x, 0)) − 1)``, ``Softplus`` is ``relu(x) + log(1 + exp(−|x|))``, which
never overflows fp16); normalisations over several axes are chains of one-axis means.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anesim.compiler.frontends.onnx_fold import element_dtype
from anesim.compiler.graph.attr_checks import clip_bounds

UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Abs": "abs", "Neg": "neg", "Erf": "erf",
}
HOST_UNARY = {"Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign", "Sin": "sin", "Cos": "cos",
              "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
              "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
COMPARE = {"Equal": "equal", "Greater": "greater", "Less": "less", "GreaterOrEqual": "greater_equal",
           "LessOrEqual": "less_equal"}
LOGIC = {"And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}
VARIADIC = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}
REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
          "ReduceMin": "reduce_min", "ReduceL1": "reduce_sum", "ReduceL2": "reduce_sum",
          "ReduceSumSquare": "reduce_sum", "ReduceLogSum": "reduce_sum", "ReduceLogSumExp": "reduce_sum"}
POW_EXPONENTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0, 4.0)


def _pairs(values: list[int] | None, rank: int, default: int) -> list[int]:
    return list(values) if values else [default] * rank


class NnHandlers:
    """Handlers for the compute ops (mixed into the importer)."""

    # -- elementwise ---------------------------------------------------------------------

    def _unary(self, op: str) -> None:
        self.require_float()
        self.finish(self.emit(op, [self.t(0)]), self.node.output[0])

    def __getattr__(self, name: str) -> Any:
        # _op_Relu, _op_Floor ...: the one-to-one unary, binary and comparison ops.
        if name.startswith("_op_"):
            op = name[4:]
            if op in UNARY:
                return lambda: self._unary(UNARY[op])
            if op in HOST_UNARY:
                return lambda: self._unary(HOST_UNARY[op])
            if op in BINARY:
                return lambda: self._binary(BINARY[op])
            if op in COMPARE:
                return lambda: self._compare(COMPARE[op])
            if op in LOGIC:
                return lambda: self._compare(LOGIC[op])
            if op in VARIADIC:
                return lambda: self._variadic(op)
            if op in REDUCE:
                return lambda: self._reduce(op)
        raise AttributeError(name)

    def _binary(self, op: str) -> None:
        self.require_float()
        if self.opset < 7 and (self.has_attr("broadcast") or self.has_attr("axis")):
            raise self.fail("legacy broadcasting attributes (opset < 7) are not supported")
        self.finish(self.emit(op, [self.t(0), self.t(1)]), self.node.output[0])

    def _compare(self, op: str) -> None:
        self.finish(self.emit(op, [self.t(0), self.t(1)], dtype=np.bool_), self.node.output[0],
                    np.bool_)

    def _op_IsNaN(self) -> None:
        self.finish(self.emit("is_nan", [self.t(0)], dtype=np.bool_), self.node.output[0], np.bool_)

    def _op_IsInf(self) -> None:
        attrs = {"detect_negative": bool(self.attr("detect_negative", 1)),
                 "detect_positive": bool(self.attr("detect_positive", 1))}
        self.finish(self.emit("is_inf", [self.t(0)], dtype=np.bool_, **attrs), self.node.output[0], np.bool_)

    def _op_Mod(self) -> None:
        self.require_float()
        fmod = bool(self.attr("fmod", 0))
        self.finish(self.emit("fmod" if fmod else "mod", [self.t(0), self.t(1)]), self.node.output[0])

    def _op_Shrink(self) -> None:
        self.require_float()
        attrs = {"bias": float(self.attr("bias", 0.0)), "lambd": float(self.attr("lambd", 0.5))}
        self.finish(self.emit("shrink", [self.t(0)], **attrs), self.node.output[0])

    def _op_Hardmax(self) -> None:
        self.require_float()
        x = self.t(0)
        axis = int(self.attr("axis", -1 if self.opset >= 13 else 1))
        if self.opset < 13 and axis % len(self.shape(x)) != len(self.shape(x)) - 1:
            raise self.fail("Hardmax before opset 13 flattens from its axis; only the last axis is supported")
        self.finish(self.emit("hardmax", [x], axis=axis), self.node.output[0])

    def _op_Swish(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 1.0))
        x = self.t(0)
        inner = x if alpha == 1.0 else self.emit("scale", [x], scale=alpha)
        self.finish(self.emit("mul", [x, self.emit("sigmoid", [inner])]), self.node.output[0])

    def _op_Not(self) -> None:
        self.finish(self.emit("logical_not", [self.t(0)], dtype=np.bool_), self.node.output[0], np.bool_)

    def _op_Where(self) -> None:
        self.finish(self.emit("where", [self.t(0), self.t(1), self.t(2)], dtype=self.dtype(self.inp(1))),
                    self.node.output[0])

    def _variadic(self, op: str) -> None:
        if op in ("Sum", "Mean"):
            self.require_float()
        names = [self.t(i) for i in range(len(self.node.input)) if self.inp(i)]
        current = names[0]
        for other in names[1:]:
            current = self.emit(VARIADIC[op], [current, other])
        if op == "Mean" and len(names) > 1:
            current = self.emit("scale", [current], scale=1.0 / len(names))
        self.finish(current, self.node.output[0])

    def _op_Identity(self) -> None:
        self.finish(self.emit("identity", [self.t(0)]), self.node.output[0], scalar=self.inp(0) in self.scalars)

    def _op_Dropout(self) -> None:
        self.attr("seed")
        if self.opset < 7:
            self.attr("is_test")
        if self.opset < 12:
            self.attr("ratio")
        if self.inp(2) is not None and bool(np.asarray(self.const(2)).reshape(-1)[0]):
            raise self.fail("Dropout in training mode is random; only inference is supported")
        self.inp(1)  # (the ratio: inference passes every value through, whatever it is)
        x = self.t(0)
        self.finish(self.emit("identity", [x]), self.node.output[0])
        outs = self.outs()
        if len(outs) > 1 and outs[1]:
            self.known[outs[1]] = np.ones(self.shape(x), np.bool_)

    def _op_Cast(self) -> None:
        to = self.attr("to")
        self.attr("saturate")
        self.attr("round_mode")
        self._cast(element_dtype(to, self.file, self.where()))

    def _op_CastLike(self) -> None:
        self.attr("saturate")
        self.attr("round_mode")
        self._cast(self.dtype(self.inp(1) or ""))

    def _cast(self, target: np.dtype) -> None:
        from anesim.compiler.frontends.onnx import EXACT_TYPES, FLOAT_TYPES

        x = self.t(0)
        source = self.dtype(x)
        if target not in FLOAT_TYPES + EXACT_TYPES:
            raise self.fail(f"a cast to {target}: the engine has no such tensors")
        if target in FLOAT_TYPES or target == source or (source == np.bool_ and target in EXACT_TYPES):
            # fp16 is the engine's type: a cast to float32 or float16 keeps the value it holds.
            self.finish(self.emit("identity", [x], dtype=target), self.node.output[0], target,
                        scalar=x in self.scalars)
            return
        if target == np.bool_:
            zero = self._scalar_const(0.0)
            y = self.emit("logical_not", [self.emit("equal", [x, zero], dtype=np.bool_)], dtype=np.bool_)
            self.finish(y, self.node.output[0], np.bool_)
            return
        raise self.fail(f"a cast from {source} to {target} rounds or wraps; the engine computes in fp16")

    def _scalar_const(self, value: float) -> str:
        name = self.fresh(f"{self.node.name or self.node.output[0]}/const")
        self.b.constant(name, np.asarray([value], np.float32))
        return name

    def _const_tensor(self, array: np.ndarray, stem: str = "const") -> str:
        name = self.fresh(f"{self.node.name or self.node.output[0]}/{stem}")
        self.b.constant(name, np.asarray(array, np.float32))
        return name

    # -- activations --------------------------------------------------------------------

    def _negative_part(self, x: str) -> str:
        """min(x, 0), exactly."""
        return self.emit("min", [x, self._scalar_const(0.0)])

    def _op_LeakyRelu(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 0.01))
        x = self.t(0)
        if 0 <= alpha < 1:
            y = self.emit("leaky_relu", [x], alpha=alpha)
        else:
            y = self.emit("add", [self.emit("relu", [x]),
                                  self.emit("scale", [self._negative_part(x)], scale=alpha)])
        self.finish(y, self.node.output[0])

    def _op_PRelu(self) -> None:
        self.require_float()
        x = self.t(0)
        neg = self.emit("mul", [self._negative_part(x), self.t(1)])
        self.finish(self.emit("add", [self.emit("relu", [x]), neg]), self.node.output[0])

    def _elu_part(self, x: str, alpha: float, inner: float = 1.0) -> str:
        """alpha * (exp(inner * min(x, 0)) - 1): the negative branch of the ELU family."""
        m = self._negative_part(x)
        if inner != 1.0:
            m = self.emit("scale", [m], scale=inner)
        return self.emit("scale", [self.emit("exp", [m])], scale=alpha, bias=-alpha)

    def _op_Elu(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 1.0))
        x = self.t(0)
        self.finish(self.emit("add", [self.emit("relu", [x]), self._elu_part(x, alpha)]), self.node.output[0])

    def _op_Celu(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 1.0))
        x = self.t(0)
        y = self.emit("add", [self.emit("relu", [x]), self._elu_part(x, alpha, 1.0 / alpha)])
        self.finish(y, self.node.output[0])

    def _op_Selu(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 1.67326319217681884765625))
        gamma = float(self.attr("gamma", 1.05070102214813232421875))
        x = self.t(0)
        y = self.emit("add", [self.emit("relu", [x]), self._elu_part(x, alpha)])
        self.finish(self.emit("scale", [y], scale=gamma), self.node.output[0])

    def _softplus(self, x: str) -> str:
        tail = self.emit("exp", [self.emit("neg", [self.emit("abs", [x])])])
        return self.emit("add", [self.emit("relu", [x]), self.emit("log", [self.emit("scale", [tail], bias=1.0)])])

    def _op_Softplus(self) -> None:
        self.require_float()
        self.finish(self._softplus(self.t(0)), self.node.output[0])

    def _op_Softsign(self) -> None:
        self.require_float()
        x = self.t(0)
        self.finish(self.emit("div", [x, self.emit("scale", [self.emit("abs", [x])], bias=1.0)]),
                    self.node.output[0])

    def _op_Mish(self) -> None:
        self.require_float()
        x = self.t(0)
        self.finish(self.emit("mul", [x, self.emit("tanh", [self._softplus(x)])]), self.node.output[0])

    def _op_HardSigmoid(self) -> None:
        self.require_float()
        alpha, beta = float(self.attr("alpha", 0.2)), float(self.attr("beta", 0.5))
        x = self.t(0)
        if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
            y = self.emit("hard_sigmoid", [x])
        else:
            y = self.emit("clip", [self.emit("scale", [x], scale=alpha, bias=beta)], min=0.0, max=1.0)
        self.finish(y, self.node.output[0])

    def _op_HardSwish(self) -> None:
        self._unary("hard_swish")

    def _op_Gelu(self) -> None:
        self.require_float()
        approximate = self.attr("approximate", "none")
        x = self.t(0)
        if approximate == "none":
            y = self.emit("gelu", [x])
        elif approximate == "tanh":
            cube = self.emit("mul", [self.emit("mul", [x, x]), x])
            inner = self.emit("add", [x, self.emit("scale", [cube], scale=0.044715)])
            t = self.emit("tanh", [self.emit("scale", [inner], scale=math.sqrt(2 / math.pi))])
            y = self.emit("mul", [x, self.emit("scale", [t], scale=0.5, bias=0.5)])
        else:
            raise self.fail("unknown Gelu approximation", found=approximate)
        self.finish(y, self.node.output[0])

    def _op_ThresholdedRelu(self) -> None:
        self.require_float()
        alpha = float(self.attr("alpha", 1.0))
        x = self.t(0)
        mask = self.emit("greater", [x, self._scalar_const(alpha)])
        self.finish(self.emit("mul", [x, mask]), self.node.output[0])

    def _op_Clip(self) -> None:
        self.require_float(0)
        if self.opset < 11:
            lo, hi = self.attr("min"), self.attr("max")
        else:
            lo, hi = self.const_float(1), self.const_float(2)
        x = self.t(0)
        if lo is not None and hi is not None and lo >= hi:
            raise self.fail("Clip with min >= max is not supported", found=f"min {lo}, max {hi}")
        try:  # (a bound past fp16's range, FLT_MAX say, clips nothing the engine holds)
            lo, hi = clip_bounds(lo, hi)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        if lo is None and hi is None:
            y = self.emit("identity", [x])
        elif hi is None:
            y = self.emit("max", [x, self._scalar_const(lo)])
        elif lo is None:
            y = self.emit("min", [x, self._scalar_const(hi)])
        elif (lo, hi) == (0.0, 6.0):
            y = self.emit("relu6", [x])
        else:
            y = self.emit("clip", [x], min=float(lo), max=float(hi))
        self.finish(y, self.node.output[0])

    def _op_Pow(self) -> None:
        self.require_float(0)
        if not self.is_known(1):
            raise self.fail("Pow with a run-time exponent is not supported (the engine has no general power)")
        exponent = np.asarray(self.const(1)).astype(np.float64).reshape(-1)
        if exponent.size == 0 or np.any(exponent != exponent[0]):
            raise self.fail("Pow with a tensor exponent of different values is not supported",
                            found=f"exponents {sorted(set(exponent.tolist()))[:4]}")
        p = float(exponent[0])
        if p not in POW_EXPONENTS:
            raise self.fail("Pow is supported with exponents " + ", ".join(f"{e:g}" for e in POW_EXPONENTS),
                            found=p)
        x = self.t(0)
        if tuple(np.shape(self.const(1))) and len(np.shape(self.const(1))) > len(self.shape(x)):
            raise self.fail("Pow whose exponent broadcasts the base is not supported")
        table = {2.0: "square", 0.5: "sqrt", -0.5: "rsqrt", -1.0: "reciprocal", 1.0: "identity"}
        if p in table:
            y = self.emit(table[p], [x])
        elif p == -2.0:
            y = self.emit("reciprocal", [self.emit("square", [x])])
        elif p == 3.0:
            y = self.emit("mul", [self.emit("square", [x]), x])
        else:
            y = self.emit("square", [self.emit("square", [x])])
        shape = np.broadcast_shapes(self.shape(x), np.shape(self.const(1)))
        if tuple(shape) != tuple(self.b.graph.info(y).shape) and shape:
            y = self.emit("reshape", [y], shape=list(shape))
        self.finish(y, self.node.output[0])

    # -- products ---------------------------------------------------------------------------

    def _op_MatMul(self) -> None:
        self.require_float()
        a, b = self.t(0), self.t(1)
        sa, sb = self.shape(a), self.shape(b)
        if len(sa) == 1:
            a = self.emit("reshape", [a], shape=[1, sa[0]])
        if len(sb) == 1:
            b = self.emit("reshape", [b], shape=[sb[0], 1])
        y = self.emit("matmul", [a, b])
        shape = list(self.b.graph.info(y).shape)
        if len(sb) == 1:
            shape.pop(-1)
        if len(sa) == 1:
            shape.pop(-2 if len(sb) > 1 else -1)
        if len(sa) == 1 or len(sb) == 1:
            y = self.emit("reshape", [y], shape=shape or [1])
        self.finish(y, self.node.output[0], scalar=not shape)

    def _op_Gemm(self) -> None:
        self.require_float()
        ta, tb = bool(self.attr("transA", 0)), bool(self.attr("transB", 0))
        alpha, beta = float(self.attr("alpha", 1.0)), float(self.attr("beta", 1.0))
        if self.opset < 7:
            self.attr("broadcast")
        y = self.emit("matmul", [self.t(0), self.t(1)], transpose_a=ta, transpose_b=tb)
        if alpha != 1.0:
            y = self.emit("scale", [y], scale=alpha)
        if self.inp(2) is not None and beta != 0.0:
            c = self.t(2)
            if beta != 1.0:
                c = self.emit("scale", [c], scale=beta)
            y = self.emit("add", [y, c])
        self.finish(y, self.node.output[0])

    # -- convolutions ---------------------------------------------------------------------

    def _window_attrs(self, rank: int, kernel: list[int], input_hw: list[int], transposed: bool = False
                      ) -> tuple[list[int], list[int], list[int], str]:
        """strides, dilations, pads (begin..., end...) and auto_pad of a conv or pool node."""
        if len(kernel) != rank or min(kernel, default=1) < 1:
            raise self.fail("the kernel shape must give one positive size per spatial axis", expected=rank,
                            found=f"kernel {kernel}")
        strides = _pairs(self.attr("strides"), rank, 1)
        dilations = _pairs(self.attr("dilations"), rank, 1)
        pads = list(self.attr("pads") or [0] * (2 * rank))
        if len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
            raise self.fail("strides, dilations and pads must match the spatial rank", expected=rank,
                            found=f"strides {strides}, dilations {dilations}, pads {pads}")
        if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
            raise self.fail("strides and dilations must be positive and pads non-negative",
                            found=f"strides {strides}, dilations {dilations}, pads {pads}")
        auto = self.attr("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER") and not transposed:
            pads = [0] * (2 * rank)
            for i in range(rank):
                out = -(-input_hw[i] // strides[i])
                total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input_hw[i], 0)
                small, big = total // 2, total - total // 2
                pads[i], pads[i + rank] = (small, big) if auto == "SAME_UPPER" else (big, small)
        elif auto == "VALID":
            pads = [0] * (2 * rank)
        elif auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER"):
            raise self.fail("unknown auto_pad", found=auto)
        return strides, dilations, pads, auto

    def _to_2d(self, x: str) -> tuple[str, int]:
        """A rank-3 (N, C, L) tensor as (N, C, 1, L); rank-4 as is; others refused."""
        rank = len(self.shape(x))
        if rank == 4:
            return x, 2
        if rank == 3:
            n, c, length = self.shape(x)
            return self.emit("reshape", [x], shape=[n, c, 1, length]), 1
        raise self.fail(f"{self.node.op_type} over {rank - 2} spatial axes is not supported (1-D and 2-D are)",
                        found=f"input shape {self.shape(x)}")

    def _from_2d(self, y: str, spatial: int) -> str:
        if spatial == 2:
            return y
        n, c, _, length = self.b.graph.info(y).shape
        return self.emit("reshape", [y], shape=[n, c, length])

    def _op_Conv(self) -> None:
        self.require_float()
        if not self.is_known(1):
            raise self.fail("convolution weights must be constants (initializers)")
        w = np.asarray(self.const(1), np.float32)
        x, spatial = self._to_2d(self.t(0))
        if w.ndim != spatial + 2 or 0 in w.shape:
            raise self.fail("convolution weights must be (out, in/group, kernel...) of the input's rank",
                            expected=f"rank {spatial + 2}", found=f"shape {tuple(w.shape)}")
        kernel = list(w.shape[2:])
        if self.attr("kernel_shape") not in (None, kernel):
            raise self.fail("kernel_shape differs from the weights", found=self.attr("kernel_shape"))
        hw = list(self.shape(self.inp(0))[2:])
        strides, dilations, pads, _ = self._window_attrs(spatial, kernel, hw)
        group = int(self.attr("group", 1))
        if spatial == 1:
            w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
            strides, dilations, pads = [1] + strides, [1] + dilations, [0, pads[0], 0, pads[1]]
        weight, fmt = self.conv_weight(1, w)  # type: ignore[attr-defined]
        ins = [x, weight]
        if self.inp(2) is not None:
            ins.append(self.t(2))
        y = self.emit("conv2d", ins, stride=strides, dilation=dilations, groups=group,
                      padding=(pads[0], pads[2], pads[1], pads[3]), weight_format=fmt)
        self.finish(self._from_2d(y, spatial), self.node.output[0])

    def _op_ConvTranspose(self) -> None:
        self.require_float()
        if not self.is_known(1):
            raise self.fail("convolution weights must be constants (initializers)")
        w = np.asarray(self.const(1), np.float32)
        self.note_dense_codes(self.inp(1), "a transposed convolution's kernel is rearranged")  # type: ignore[attr-defined]
        x, spatial = self._to_2d(self.t(0))
        group = int(self.attr("group", 1))
        kernel = list(w.shape[2:])
        if self.attr("kernel_shape") not in (None, kernel):
            raise self.fail("kernel_shape differs from the weights", found=self.attr("kernel_shape"))
        hw = list(self.shape(self.inp(0))[2:])
        strides, dilations, pads, auto = self._window_attrs(spatial, kernel, hw, transposed=True)
        out_pad = _pairs(self.attr("output_padding"), spatial, 0)
        out_shape = self.attr("output_shape")
        if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            target = list(out_shape)[-spatial:] if out_shape is not None else [hw[i] * strides[i]
                                                                                 for i in range(spatial)]
            for i in range(spatial):
                total = strides[i] * (hw[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - target[i]
                small, big = total // 2, total - total // 2
                pads[i], pads[i + spatial] = (small, big) if auto == "SAME_UPPER" else (big, small)
        # A transposed convolution is a convolution of the input spread out by the stride (zeros
        # between the samples: a 0/1 matrix product per axis) with the flipped, transposed kernel.
        cin, cout_g = w.shape[0], w.shape[1]
        cin_g = cin // group
        flipped = w[(...,) + tuple(slice(None, None, -1) for _ in kernel)]
        per_group = flipped.reshape(group, cin_g, cout_g, *kernel).swapaxes(1, 2)
        weight = per_group.reshape(group * cout_g, cin_g, *kernel)
        if spatial == 1:
            weight = weight.reshape(weight.shape[0], weight.shape[1], 1, kernel[0])
        axes = list(range(4 - spatial, 4))
        for axis, i in zip(axes, range(spatial)):
            if strides[i] > 1:
                n_in = self.b.graph.info(x).shape[axis]
                spread = np.zeros(((n_in - 1) * strides[i] + 1, n_in), np.float32)
                spread[np.arange(n_in) * strides[i], np.arange(n_in)] = 1.0
                x = self.map_axis(x, axis, spread)
        before, after = [], []
        for i in range(spatial):
            edge = (kernel[i] - 1) * dilations[i]
            before.append(edge - pads[i])
            after.append(edge - pads[i + spatial] + out_pad[i])
        if min(before + after) < 0:
            crop_b = [max(-v, 0) for v in before]
            crop_a = [max(-v, 0) for v in after]
            before = [max(v, 0) for v in before]
            after = [max(v, 0) for v in after]
        else:
            crop_b = crop_a = [0] * spatial
        padding = (before[0], after[0], before[1], after[1]) if spatial == 2 else (0, 0, before[0], after[0])
        ins = [x, self._const_tensor(weight, "weight")]
        if self.inp(2) is not None:
            ins.append(self.t(2))
        y = self.emit("conv2d", ins, stride=1, dilation=([1] if spatial == 1 else []) + dilations,
                      groups=group, padding=padding)
        for axis, i in zip(axes, range(spatial)):
            size = self.b.graph.info(y).shape[axis]
            if crop_b[i] or crop_a[i]:
                y = self.emit("slice", [y], axis=axis, start=crop_b[i], end=size - crop_a[i])
        self.finish(self._from_2d(y, spatial), self.node.output[0])
