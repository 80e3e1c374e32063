"""Elementwise ops: binary ops of two tensors or a tensor and a constant, and unary functions.

Two live tensors combine on the planar engine (two live inputs cannot become a gain/offset,
guide ch. 22 "barrier"), after broadcasting where shapes differ; a constant operand that is a
scalar or a per-channel vector becomes an NE bypass or a depthwise 1x1 convolution. Unary
functions are lookup tables in the NE activation slot, affine maps in its gain/offset unit, or
a table and a planar product (SiLU, hard swish), a scale and a planar max (leaky ReLU, abs).
"""

from __future__ import annotations

import math

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Node, as_nchw
from anesim.compiler.lowering.eops import EOp, NeSpec
from anesim.compiler.lowering.fusion import EpilogueFusion
from anesim.compiler.lowering.luts import build_table
from anesim.compiler.lowering.primitives import Primitives
from anesim.compiler.lowering.segment import per_channel, values_kernel
from anesim.compiler.lowering.views import View
from anesim.errors import CompileError

BINARY_PLANAR = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "max", "min": "min"}


class ElementwiseOps(EpilogueFusion, Primitives):
    """Lowers binary and unary elementwise ops."""

    def _binary(self, node: Node) -> None:
        a_name, b_name = node.inputs
        op = node.op
        out_shape = self.g.info(node.output).shape
        a_const, b_const = a_name in self.g.constants, b_name in self.g.constants
        if a_const or b_const:
            live, const = (b_name, a_name) if a_const else (a_name, b_name)
            if self.g.info(live).shape == out_shape and self._binary_const(node, live, const):
                return
        a = self._expand(a_name, out_shape, node)
        b = self._expand(b_name, out_shape, node)
        relu = self._absorb_relu(node)
        dest = self.dest_for(relu or node.output)
        self.planar(BINARY_PLANAR[op], a, b, dest, node.name, node.describe(), relu=bool(relu))

    def _binary_const(self, node: Node, live: str, const: str) -> bool:
        """x op constant as an NE bypass or depthwise 1x1 convolution, when the constant allows."""
        op = node.op
        value = self._const_vector(const, self.g.info(live).shape, channel_ok=True)
        if value is None or op in ("max", "min"):
            return False
        x = self.src(live)
        live_first = node.inputs[0] == live
        ne = NeSpec("bypass")
        channels = x.c
        if op == "add" or (op == "sub" and live_first):
            sign = 1.0 if op == "add" else -1.0
            self._add_bias(ne, sign * np.asarray(value), channels)
        elif op == "sub":  # value - x
            self._add_bias(ne, np.asarray(value), channels)
            ne.post_scale = -1.0
        elif op == "mul" and isinstance(value, float):
            ne.post_scale = value
        elif op == "div" and live_first and isinstance(value, float) and value != 0.0:
            ne.post_scale = 1.0 / value
        elif op in ("mul", "div") and live_first and not isinstance(value, float):
            vec = value if op == "mul" else 1.0 / value
            ne = NeSpec("conv", values_kernel((channels, 1, 1, 1), lambda v=vec: v, "per-channel scale"),
                        groups=channels)
        else:
            return False
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        k = ne.kernel
        if k is None or (ne.groups == channels and k.shape == (channels, 1, 1, 1) and k.encoded is None):
            # (plane by plane, a depthwise scale included: a batch's images may be taken as channels)
            for s, d in self.per_plane(x, dest):
                self.emit(EOp(node.name, node.describe(), [s], d, ne=per_channel(ne, d.c)))
            return True
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=ne.copy()))
        return True

    def _expand(self, name: str, out_shape: tuple[int, ...], node: Node) -> View:
        """A view of ``name`` broadcast to ``out_shape`` (materialised where it must be)."""
        target = as_nchw(out_shape)
        if name in self.g.constants:
            data = self.g.constants[name].data
            if as_nchw(data.shape) == target:
                return self.const_view(name)
            full = ConstantData.derived(target, lambda d=data: np.broadcast_to(
                d.array().reshape(as_nchw(d.shape)), target).copy(), "broadcast constant")
            return self.const_view(f"{name}->{target}", full, target)
        view = self.src(name)
        # Width (contiguous, no stride to zero) and batch are materialised first; channels and
        # rows are then read through a zero stride, as the planar engine broadcasts a source
        # along them itself (PECfg Src1/Src2Broadcast, command-stream.md register 0x0048).
        for axis in (0, 3, 1, 2):
            if view.dims[axis] == target[axis]:
                continue
            if axis == 1 and view.c == 1:
                view = View(view.buffer, view.offset, view.n, target[1], view.h, view.w, view.sn, 0, view.sh, view.elem)
                continue
            if axis == 2 and view.h == 1:
                view = View(view.buffer, view.offset, view.n, view.c, target[2], view.w, view.sn, view.sc, 0, view.elem)
                continue
            dims = list(view.dims)
            dims[axis] = target[axis]
            out = self.temp(tuple(dims), f"{node.name}.broadcast")  # type: ignore[arg-type]
            self.broadcast(view, axis, out, node.name, node.describe())
            view = out
        return view

    def _lut_unary(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        ne = NeSpec("bypass")
        self._set_activation(node, ne)
        ne.fused.append(node.op)
        out = self.absorb(node.output, ne, channel_ok=True)
        self.bypass(x, self.dest_for(out), ne, node.name, node.describe())

    def _affine_unary(self, node: Node, post_scale: float, bias: float = 0.0) -> None:
        x = self.src(node.inputs[0])
        ne = NeSpec("bypass", post_scale=post_scale)
        if bias:
            self._add_bias(ne, bias, x.c)
        out = self.absorb(node.output, ne, channel_ok=True)
        self.bypass(x, self.dest_for(out), ne, node.name, node.describe())

    def _op_scale(self, node: Node) -> None:
        s, b = float(node.attrs["scale"]), float(node.attrs["bias"])
        if s == 0.0:
            x = self.src(node.inputs[0])
            self.copy(self.filled(x.dims, b), self.dest_for(node.output), node.name, node.describe())
            return
        self._affine_unary(node, s, b)

    def _op_neg(self, node: Node) -> None:
        self._affine_unary(node, -1.0)

    def _gated(self, node: Node, table: str) -> None:
        """x * f(x) with f from a table: SiLU (sigmoid), hard swish."""
        x = self.src(node.inputs[0])
        gate = self.temp(x.dims, f"{node.name}.gate")
        self.bypass(x, gate, NeSpec("bypass", activation="lut", table=build_table(table)), node.name,
                    node.describe())
        self.planar("mul", x, gate, self.dest_for(node.output), node.name, node.describe())

    def _op_silu(self, node: Node) -> None:
        self._gated(node, "sigmoid")

    def _op_hard_swish(self, node: Node) -> None:
        self._gated(node, "hard_sigmoid")

    def _max_with_scaled(self, node: Node, factor: float) -> None:
        x = self.src(node.inputs[0])
        scaled = self.temp(x.dims, f"{node.name}.scaled")
        self.bypass(x, scaled, NeSpec("bypass", post_scale=factor), node.name, node.describe())
        self.planar("max", x, scaled, self.dest_for(node.output), node.name, node.describe())

    def _op_leaky_relu(self, node: Node) -> None:
        self._max_with_scaled(node, float(node.attrs["alpha"]))

    def _op_abs(self, node: Node) -> None:
        self._max_with_scaled(node, -1.0)

    def _op_square(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        relu = self._absorb_relu(node)
        self.planar("mul", x, x, self.dest_for(relu or node.output), node.name, node.describe())

    def _op_log(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        log2 = self.temp(x.dims, f"{node.name}.log2")
        self.bypass(x, log2, NeSpec("bypass", activation="lut", table=build_table("log2")), node.name,
                    node.describe())
        self._affine_from(node, log2, math.log(2.0))

    def _affine_from(self, node: Node, x: View, post_scale: float) -> None:
        ne = NeSpec("bypass", post_scale=post_scale)
        out = self.absorb(node.output, ne, channel_ok=True)
        self.bypass(x, self.dest_for(out), ne, node.name, node.describe())

    def _op_softplus(self, node: Node) -> None:
        raise CompileError("softplus has no engine lowering", file=self.g.source or None, where=node.describe())
