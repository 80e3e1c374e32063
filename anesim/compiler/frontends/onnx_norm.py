"""ONNX normalisations, softmax, pooling and reductions -> graph ops.

Normalisations over several axes (instance and group norm, a layer norm whose statistics are
outputs too) are chains of one-axis means: a mean of equal-sized means is the mean. Pooling
windows that the engine's planar pool cannot express are refused; ``ceil_mode`` extends the
padding at the end, and an average that excludes the padding is the engine's whole-window
average times a constant map of ``window / cells counted``.
"""

from __future__ import annotations

import math

import numpy as np

from anesim.compiler.frontends.onnx_nn import REDUCE


class NormHandlers:
    """Handlers for normalisation, softmax, pooling and reduction ops (mixed into the importer)."""

    # -- reductions ------------------------------------------------------------------------

    def reduce(self, x: str, op: str, axes: list[int], keepdims: bool) -> str:
        """A reduction over several axes as a chain of one-axis reductions."""
        rank = len(self.shape(x))
        axes = sorted({a % rank for a in axes})
        y = x
        for axis in axes:
            y = self.emit(op, [y], axis=axis, keepdims=True)
        if not keepdims:
            shape = [d for i, d in enumerate(self.shape(x)) if i not in axes]
            y = self.emit("reshape", [y], shape=shape or [1])
            if not shape:
                self.scalars.add(y)
        return y

    def _reduce_axes(self) -> tuple[list[int] | None, bool]:
        op = self.node.op_type
        keepdims = bool(self.attr("keepdims", 1))
        from_input = self.opset >= 18 or (op == "ReduceSum" and self.opset >= 13)
        if from_input:
            noop = bool(self.attr("noop_with_empty_axes", 0))
            axes = self.const_ints(1)
            if not axes and noop:
                return None, keepdims
        else:
            axes = self.attr("axes")
        rank = len(self.shape(self.inp(0)))
        return (list(axes) if axes else list(range(rank))), keepdims

    def _reduce(self, op: str) -> None:
        if op not in ("ReduceMax", "ReduceMin"):
            self.require_float(0)
        x = self.t(0)
        axes, keepdims = self._reduce_axes()
        if axes is None:
            self.finish(self.emit("identity", [x]), self.node.output[0])
            return
        rank = len(self.shape(x))
        if op in ("ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum"):
            y = self.reduce(x, REDUCE[op], axes, keepdims)
        elif op == "ReduceLogSumExp":
            peak = self.reduce(x, "reduce_max", axes, True)
            total = self.reduce(self.emit("exp", [self.emit("sub", [x, peak])]), "reduce_sum", axes, True)
            y = self.emit("add", [self.emit("log", [total]), peak])
            if not keepdims:
                shape = [d for i, d in enumerate(self.shape(x)) if i not in {a % rank for a in axes}]
                y = self.emit("reshape", [y], shape=shape or [1])
                if not shape:
                    self.scalars.add(y)
        else:
            pre = {"ReduceL1": "abs", "ReduceL2": "square", "ReduceSumSquare": "square",
                   "ReduceLogSum": "identity"}[op]
            y = self.reduce(self.emit(pre, [x]), "reduce_sum", axes, keepdims)
            post = {"ReduceL2": "sqrt", "ReduceLogSum": "log"}.get(op)
            if post:
                y = self.emit(post, [y])
        self.finish(y, self.node.output[0], scalar=y in self.scalars)

    def _arg(self, op: str) -> None:
        axis = int(self.attr("axis", 0))
        keepdims = bool(self.attr("keepdims", 1))
        last = bool(self.attr("select_last_index", 0))
        x = self.t(0)
        if self.shape(x)[axis] > 2048:
            raise self.fail("indices over 2048 are not exact in fp16", found=f"axis of {self.shape(x)[axis]}")
        y = self.emit(op, [x], axis=axis, keepdims=keepdims, select_last_index=last, dtype=np.int64)
        self.finish(y, self.node.output[0], np.int64)

    def _op_ArgMax(self) -> None:
        self._arg("argmax")

    def _op_ArgMin(self) -> None:
        self._arg("argmin")

    # -- normalisations --------------------------------------------------------------------

    def normalize(self, x: str, axes: list[int], eps: float) -> tuple[str, str, str]:
        """(x - mean) / sqrt(var + eps) over ``axes``; returns the result, the mean and 1/std."""
        mean = self.reduce(x, "reduce_mean", axes, True)
        centred = self.emit("sub", [x, mean])
        var = self.reduce(self.emit("square", [centred]), "reduce_mean", axes, True)
        inv = self.emit("rsqrt", [self.emit("scale", [var], bias=eps)])
        return self.emit("mul", [centred, inv]), mean, inv

    def _param(self, index: int, shape: list[int]) -> str:
        """A per-channel parameter reshaped to broadcast against ``shape``."""
        if self.is_known(index):
            return self._const_tensor(np.asarray(self.const(index), np.float32).reshape(shape), "param")
        return self.emit("reshape", [self.t(index)], shape=shape)

    def _op_BatchNormalization(self) -> None:
        self.require_float()
        eps = float(self.attr("epsilon", 1e-5))
        self.attr("momentum")
        if self.opset < 9 and int(self.attr("spatial", 1)) != 1:
            raise self.fail("BatchNormalization with spatial=0 is not supported")
        if self.opset < 7:
            self.attr("is_test")
        if self.opset < 6:
            self.attr("consumed_inputs")
        if int(self.attr("training_mode", 0)):
            raise self.fail("BatchNormalization in training mode (batch statistics and running-mean "
                            "outputs) is not supported; export the model for inference")
        if any(self.outs()[1:]):
            raise self.fail("BatchNormalization's running-mean and variance outputs exist only in "
                            "training mode; the importer computes inference")
        x = self.t(0)
        shape = list(self.shape(x))
        if not all(self.is_known(i) for i in range(1, 5)):
            raise self.fail("BatchNormalization parameters must be constants")
        x4 = x if len(shape) == 4 else self.emit("reshape", [x], shape=(shape + [1, 1, 1])[:2] + [1]
                                                 * (4 - len(shape)) + shape[2:])
        params = [self._const_tensor(np.asarray(self.const(i), np.float32).reshape(-1), "bn") for i in range(1, 5)]
        y = self.emit("batch_norm", [x4] + params, eps=eps)
        if len(shape) != 4:
            y = self.emit("reshape", [y], shape=shape)
        self.finish(y, self.node.output[0])

    def _op_InstanceNormalization(self) -> None:
        self.require_float()
        eps = float(self.attr("epsilon", 1e-5))
        x = self.t(0)
        shape = self.shape(x)
        y, _, _ = self.normalize(x, list(range(2, len(shape))), eps)
        channel = [1, shape[1]] + [1] * (len(shape) - 2)
        y = self.emit("add", [self.emit("mul", [y, self._param(1, channel)]), self._param(2, channel)])
        self.finish(y, self.node.output[0])

    def _op_GroupNormalization(self) -> None:
        self.require_float()
        eps = float(self.attr("epsilon", 1e-5))
        groups = int(self.attr("num_groups"))
        self.attr("stash_type")
        x = self.t(0)
        shape = list(self.shape(x))
        if len(shape) < 3 or shape[1] % groups:
            raise self.fail("GroupNormalization needs (N, C, ...) with C divisible by num_groups",
                            found=f"shape {tuple(shape)}, {groups} groups")
        grouped = self.emit("reshape", [x], shape=[shape[0], groups, shape[1] // groups * math.prod(shape[2:-1]),
                                                   shape[-1]])
        y, _, _ = self.normalize(grouped, [2, 3], eps)
        y = self.emit("reshape", [y], shape=shape)
        channel = [1, shape[1]] + [1] * (len(shape) - 2)
        per_channel = []
        for index in (1, 2):
            if not self.is_known(index):
                raise self.fail("GroupNormalization scale and bias must be constants")
            value = np.asarray(self.const(index), np.float32).reshape(-1)
            if value.size == groups and groups != shape[1]:
                value = np.repeat(value, shape[1] // groups)
            per_channel.append(self._const_tensor(value.reshape(channel), "param"))
        y = self.emit("add", [self.emit("mul", [y, per_channel[0]]), per_channel[1]])
        self.finish(y, self.node.output[0])

    def _op_LayerNormalization(self) -> None:
        self.require_float()
        eps = float(self.attr("epsilon", 1e-5))
        self.attr("stash_type")
        x = self.t(0)
        rank = len(self.shape(x))
        axis = int(self.attr("axis", -1)) % rank
        outs = self.outs()
        extra = any(outs[1:])
        affine_known = all(self.is_known(i) for i in (1, 2) if self.inp(i))
        if axis == rank - 1 and not extra and affine_known:
            size = self.shape(x)[-1]
            ins = [x] + [self._const_tensor(np.broadcast_to(np.asarray(self.const(i), np.float32)
                                                            .reshape(-1)[-size:], (size,)), "param")
                         for i in (1, 2) if self.inp(i)]
            if all(np.asarray(self.const(i)).size in (1, size) for i in (1, 2) if self.inp(i)):
                self.finish(self.emit("layer_norm", ins, axis=axis, eps=eps), outs[0])
                return
        y, mean, inv = self.normalize(x, list(range(axis, rank)), eps)
        y = self.emit("mul", [y, self.t(1)])
        if self.inp(2):
            y = self.emit("add", [y, self.t(2)])
        self.finish(y, outs[0])
        if len(outs) > 1 and outs[1]:
            self.finish(mean, outs[1], np.float32)
        if len(outs) > 2 and outs[2]:
            self.finish(inv, outs[2], np.float32)

    def _op_RMSNormalization(self) -> None:
        self.require_float()
        eps = float(self.attr("epsilon", 1e-5))
        self.attr("stash_type")
        x = self.t(0)
        shape = self.shape(x)
        axis = int(self.attr("axis", -1)) % len(shape)
        if axis == len(shape) - 1 and self.is_known(1) and np.size(self.const(1)) in (1, shape[-1]):
            gamma = np.broadcast_to(np.asarray(self.const(1), np.float32).reshape(-1), (shape[-1],))
            y = self.emit("rms_norm", [x, self._const_tensor(gamma, "param")], axis=axis, eps=eps)
        else:
            mean = self.reduce(self.emit("square", [x]), "reduce_mean", list(range(axis, len(shape))), True)
            y = self.emit("mul", [x, self.emit("rsqrt", [self.emit("scale", [mean], bias=eps)])])
            y = self.emit("mul", [y, self.t(1)])
        self.finish(y, self.node.output[0])

    def _op_LpNormalization(self) -> None:
        self.require_float()
        x = self.t(0)
        axis = int(self.attr("axis", -1))
        p = int(self.attr("p", 2))
        if p not in (1, 2):
            raise self.fail("LpNormalization is defined for p 1 and 2", found=p)
        total = self.reduce(self.emit("abs" if p == 1 else "square", [x]), "reduce_sum", [axis], True)
        norm = total if p == 1 else self.emit("sqrt", [total])
        self.finish(self.emit("div", [x, norm]), self.node.output[0])

    def _op_MeanVarianceNormalization(self) -> None:
        self.require_float()
        x = self.t(0)
        axes = list(self.attr("axes", [0, 2, 3]))
        y, _, _ = self.normalize(x, axes, 1e-9)
        self.finish(y, self.node.output[0])

    # -- losses with targets known at compile time -------------------------------------------

    def _nll(self, scores: str, target_index: int, weight_index: int) -> str:
        """Negative log-likelihood of ``scores`` (N, C, ...) at the known targets: a constant mask
        multiply and sums."""
        reduction = self.attr("reduction", "mean")
        ignore = self.attr("ignore_index")
        shape = list(self.shape(scores))
        target = np.asarray(self.const(target_index)).astype(np.int64)
        classes = shape[1]
        weight = (np.asarray(self.const(weight_index), np.float64).reshape(-1) if self.inp(weight_index)
                  else np.ones(classes))
        valid = np.ones(target.shape, bool) if ignore is None else target != ignore
        safe = np.where(valid, target, 0)
        if np.any((safe < 0) | (safe >= classes)):
            raise self.fail("a target is outside the classes", found=sorted(set(target.reshape(-1).tolist()))[:6])
        picked = np.where(valid, weight[safe], 0.0)
        mask = np.zeros(shape, np.float64)
        np.put_along_axis(mask, np.expand_dims(safe, 1), np.expand_dims(-picked, 1), axis=1)
        loss = self.reduce(self.emit("mul", [scores, self._const_tensor(mask.astype(np.float32), "target")]),
                           "reduce_sum", [1], False)
        if reduction == "none":
            return loss
        total = self.reduce(loss, "reduce_sum", list(range(len(shape) - 1)), False)
        if reduction == "sum":
            return total
        if reduction != "mean":
            raise self.fail("unknown reduction", found=reduction)
        return self.emit("scale", [total], scale=float(1.0 / picked.sum()))

    def _op_NegativeLogLikelihoodLoss(self) -> None:
        self.require_float(0)
        y = self._nll(self.t(0), 1, 2)
        self.finish(y, self.node.output[0], scalar=y in self.scalars)

    def _op_SoftmaxCrossEntropyLoss(self) -> None:
        self.require_float(0)
        x = self.t(0)
        shifted = self.emit("sub", [x, self.emit("reduce_max", [x], axis=1, keepdims=True)])
        total = self.emit("reduce_sum", [self.emit("exp", [shifted])], axis=1, keepdims=True)
        log_prob = self.emit("sub", [shifted, self.emit("log", [total])])
        y = self._nll(log_prob, 1, 2)
        outs = self.outs()
        self.finish(y, outs[0], scalar=y in self.scalars)
        if len(outs) > 1 and outs[1]:
            self.finish(log_prob, outs[1])

    # -- softmax ------------------------------------------------------------------------------

    def _softmax_input(self) -> tuple[str, int, list[int] | None]:
        """The input, the axis, and the shape to restore (opset < 13 flattens from ``axis``)."""
        x = self.t(0)
        shape = list(self.shape(x))
        rank = len(shape)
        axis = int(self.attr("axis", -1 if self.opset >= 13 else 1)) % rank
        if self.opset >= 13 or axis == rank - 1:
            return x, axis, None
        flat = [math.prod(shape[:axis]), math.prod(shape[axis:])]
        return self.emit("reshape", [x], shape=flat), 1, shape

    def _op_Softmax(self) -> None:
        self.require_float()
        x, axis, restore = self._softmax_input()
        y = self.emit("softmax", [x], axis=axis)
        if restore:
            y = self.emit("reshape", [y], shape=restore)
        self.finish(y, self.node.output[0])

    def _op_LogSoftmax(self) -> None:
        self.require_float()
        x, axis, restore = self._softmax_input()
        shifted = self.emit("sub", [x, self.emit("reduce_max", [x], axis=axis, keepdims=True)])
        total = self.emit("reduce_sum", [self.emit("exp", [shifted])], axis=axis, keepdims=True)
        y = self.emit("sub", [shifted, self.emit("log", [total])])
        if restore:
            y = self.emit("reshape", [y], shape=restore)
        self.finish(y, self.node.output[0])

    # -- pooling --------------------------------------------------------------------------------

    def _pool(self, kind: str) -> None:
        p = int(self.attr("p", 2)) if kind == "lp" else 0
        if kind == "lp":
            self.require_float()
            if p not in (1, 2):
                raise self.fail("LpPool is supported for p 1 and 2", found=p)
            source = self.emit("abs" if p == 1 else "square", [self.t(0)])
        elif kind == "avg":
            self.require_float()
        if kind != "lp":
            source = self.t(0)
        x, spatial = self._to_2d(source)
        kernel = list(self.attr("kernel_shape"))
        hw = list(self.shape(self.inp(0))[2:])
        strides, dilations, pads, _ = self._window_attrs(spatial, kernel, hw)
        ceil = bool(self.attr("ceil_mode", 0))
        include = bool(self.attr("count_include_pad", 0)) if kind == "avg" else False
        if kind == "max":
            if int(self.attr("storage_order", 0)) not in (0, 1):
                raise self.fail("storage_order must be 0 or 1")
            if len(self.outs()) > 1 and self.outs()[1]:
                raise self.fail("MaxPool's Indices output is not supported (the engine returns no indices)")
        if any(d != 1 for d in dilations):
            raise self.fail("pooling with dilations is not supported (the planar pool has no dilation)",
                            found=dilations)
        if spatial == 1:
            kernel, strides, hw = [1] + kernel, [1] + strides, [1] + hw
            pads = [0, pads[0], 0, pads[1]]
        out, extra = [], []
        for i in range(2):
            span = hw[i] + pads[i] + pads[i + 2] - kernel[i]
            size = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
            if ceil and (size - 1) * strides[i] >= hw[i] + pads[i]:
                size -= 1  # the last window must start inside the input or its leading padding
            out.append(size)
            extra.append(max((size - 1) * strides[i] + kernel[i] - (hw[i] + pads[i] + pads[i + 2]), 0))
        padding = (pads[0], pads[2] + extra[0], pads[1], pads[3] + extra[1])
        op = "max_pool2d" if kind == "max" else "avg_pool2d"
        y = self.emit(op, [x], kernel=kernel, stride=strides, padding=padding)
        if kind == "lp":  # the window's sum (padding adds zeros), then the root
            y = self.emit("scale", [y], scale=float(kernel[0] * kernel[1]))
            if p == 2:
                y = self.emit("sqrt", [y])
            self.finish(self._from_2d(y, spatial), self.node.output[0])
            return
        if kind == "avg":
            counts = []
            for i in range(2):
                lo, hi = (-pads[i], hw[i] + pads[i + 2]) if include else (0, hw[i])
                starts = np.arange(out[i]) * strides[i] - pads[i]
                ends = starts + kernel[i]
                counts.append(np.minimum(ends, hi) - np.maximum(starts, lo))
            cells = np.outer(counts[0], counts[1]).astype(np.float64)
            window = kernel[0] * kernel[1]
            if np.any(cells != window):
                if np.any(cells <= 0):
                    raise self.fail("a pooling window lies wholly in the padding")
                factor = (window / cells).astype(np.float32).reshape(1, 1, out[0], out[1])
                y = self.emit("mul", [y, self._const_tensor(factor, "count")])
        self.finish(self._from_2d(y, spatial), self.node.output[0])

    def _op_LpPool(self) -> None:
        self._pool("lp")

    def _op_MaxPool(self) -> None:
        self._pool("max")

    def _op_AveragePool(self) -> None:
        self._pool("avg")

    def _global(self, op: str) -> None:
        if op == "global_avg_pool":
            self.require_float()
        x = self.t(0)
        rank = len(self.shape(x))
        if rank == 4:
            y = self.emit(op, [x])
        else:
            y = self.reduce(x, "reduce_mean" if op == "global_avg_pool" else "reduce_max",
                            list(range(2, rank)), True)
        self.finish(y, self.node.output[0])

    def _op_GlobalAveragePool(self) -> None:
        self._global("global_avg_pool")

    def _op_GlobalMaxPool(self) -> None:
        self._global("global_max_pool")
