"""Epilogue fusion: the ops after an NE operation that its gain/offset unit and activation hold.

A following bias add, constant scale, batch norm and nonlinearity fold into the same operation
(guide ch. 22 fusion table: the gain/offset unit and the activation slot); per-channel scales
fold into the weights (``FoldWeightsWithScale``). A ReLU after a planar op folds into that op.
"""

from __future__ import annotations

import math

import numpy as np

from anesim.compiler.graph.graph import Node, as_nchw
from anesim.compiler.lowering.eops import NeSpec
from anesim.compiler.lowering.luts import LUT_OPS, build_table, clip_table
from anesim.compiler.lowering.segment import SegmentBase

LUT_UNARY = ("sigmoid", "tanh", "erf", "hard_sigmoid", "gelu", "exp", "sqrt", "rsqrt", "reciprocal")


class EpilogueFusion(SegmentBase):
    """Folds the ops that follow an NE operation into its epilogue."""

    def _const_vector(self, name: str, out_shape: tuple[int, ...], channel_ok: bool) -> np.ndarray | float | None:
        """A constant operand as a scalar or a per-channel vector, or None if it is neither."""
        data = self.g.constants[name].data
        shape = as_nchw(data.shape)
        out = as_nchw(out_shape)
        if len(data.shape) > len(out_shape):
            return None
        if math.prod(shape) == 1:
            return float(data.array().reshape(-1)[0])
        if channel_ok and shape[0] == 1 and shape[2] == 1 and shape[3] == 1 and shape[1] == out[1]:
            return data.array().reshape(-1).astype(np.float32)
        return None

    def absorb(self, t: str, ne: NeSpec, channel_ok: bool) -> str:
        """Fold the ops after ``t`` that the NE epilogue can hold; returns the last tensor."""
        while True:
            users = self.consumers.get(t, [])
            if (t in self.outputs or len(users) != 1 or t in self.alias or t in self.back_reshape):
                return t
            y = users[0]
            if y.name in self.host or y.inputs.count(t) != 1 or not self._absorb_one(y, t, ne, channel_ok):
                return t
            self.fused.add(y.name)
            ne.fused.append(y.op)
            t = y.output

    def _add_bias(self, ne: NeSpec, value: np.ndarray | float, channels: int) -> None:
        with np.errstate(over="ignore"):  # (a bias past float32 is an infinity, as fp16 holds it)
            vec = np.broadcast_to(np.asarray(value, np.float32), (channels,)).astype(np.float32)
        ne.bias = vec if ne.bias is None else ne.bias + vec

    def _absorb_one(self, y: Node, t: str, ne: NeSpec, channel_ok: bool) -> bool:
        op = y.op
        channels = as_nchw(self.g.info(t).shape)[1] if channel_ok else 1
        if self.g.info(y.output).shape != self.g.info(t).shape and op not in LUT_UNARY:
            return False
        if op in ("add", "sub", "mul", "div"):
            other = y.inputs[1] if y.inputs[0] == t else y.inputs[0]
            if other not in self.g.constants or not ne.has_epilogue_room:
                return False
            value = self._const_vector(other, self.g.info(t).shape, channel_ok)
            if value is None or (not channel_ok and not isinstance(value, float)):
                return False
            # The epilogue is post_scale * acc + bias (the gain/offset unit, guide ch. 22).
            ps = ne.post_scale
            nch = self._nch(t, channel_ok)
            if op == "add":
                self._add_bias(ne, np.asarray(value), nch)
            elif op == "sub":
                if y.inputs[0] == t:
                    self._add_bias(ne, -np.asarray(value), nch)
                else:  # value - t
                    ne.post_scale = -ps
                    ne.bias = None if ne.bias is None else -ne.bias
                    self._add_bias(ne, np.asarray(value), nch)
            elif op == "mul":
                if isinstance(value, float):
                    if value == 0.0:
                        return False
                    ne.post_scale = ps * value
                    if ne.bias is not None:
                        ne.bias = ne.bias * np.float32(value)
                else:
                    if ne.kernel is None or np.any(value == 0):
                        return False
                    ne.kernel = ne.kernel.scaled(value)
                    if ne.bias is not None:
                        ne.bias = ne.bias * value
            else:  # div
                if y.inputs[0] != t or not isinstance(value, float) or value == 0.0:
                    return False
                ne.post_scale = ps / value
                if ne.bias is not None:
                    ne.bias = ne.bias / np.float32(value)
            return True
        if op == "scale" and ne.has_epilogue_room:
            sc, b = float(y.attrs["scale"]), float(y.attrs["bias"])
            if sc == 0.0:
                return False
            ne.post_scale *= sc
            if ne.bias is not None:
                ne.bias = ne.bias * np.float32(sc)
            if b:
                self._add_bias(ne, b, max(channels, 1))
            return True
        if op == "neg" and ne.has_epilogue_room:
            ne.post_scale = -ne.post_scale
            if ne.bias is not None:
                ne.bias = -ne.bias
            return True
        if op == "batch_norm" and ne.has_epilogue_room and channel_ok and ne.kernel is not None:
            if any(p not in self.g.constants for p in y.inputs[1:]):
                return False
            gamma, beta, mean, var = (self.g.constants[p].data.array().reshape(-1) for p in y.inputs[1:])
            gain = gamma / np.sqrt(var + float(y.attrs["eps"]))
            ne.kernel = ne.kernel.scaled(gain)
            ne.bias = ((ne.bias * gain if ne.bias is not None else 0) + (beta - mean * gain)).astype(np.float32)
            ne.bias = np.asarray(ne.bias, np.float32).reshape(-1)
            return True
        if not ne.has_epilogue_room:
            return False
        return self._set_activation(y, ne)

    def _nch(self, t: str, channel_ok: bool) -> int:
        return as_nchw(self.g.info(t).shape)[1] if channel_ok else 1

    def _set_activation(self, y: Node, ne: NeSpec) -> bool:
        op = y.op
        if op == "relu":
            ne.activation = "relu"
        elif op == "relu6":
            ne.activation, ne.table = "lut", clip_table(0.0, 6.0, "relu6")
        elif op == "clip":
            ne.activation, ne.table = "lut", clip_table(float(y.attrs["min"]), float(y.attrs["max"]))
        elif op in LUT_OPS:
            table, pre_scale = LUT_OPS[op]
            ne.activation, ne.table = "lut", build_table(table)
            ne.post_scale *= pre_scale
            if ne.bias is not None:
                ne.bias = ne.bias * np.float32(pre_scale)
        elif op in LUT_UNARY:
            ne.activation, ne.table = "lut", build_table(op)
        else:
            return False
        return True

    def _absorb_relu(self, node: Node) -> str | None:
        t = node.output
        users = self.consumers.get(t, [])
        if (t in self.outputs or len(users) != 1 or t in self.alias or t in self.back_reshape
                or users[0].op != "relu" or users[0].name in self.host):
            return None
        self.fused.add(users[0].name)
        return users[0].output
