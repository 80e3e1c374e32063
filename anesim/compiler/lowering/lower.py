"""Lower the nodes of one engine segment to engine operations over buffer views.

The rules, with their sources (``docs/compiler.md`` has the long form):

- Convolution, linear (a 1x1 convolution over channels) and matrix products run on the NE. A
  following bias add, constant scale, batch norm and nonlinearity fold into the same operation
  (guide ch. 22 fusion table: the gain/offset unit and the activation slot); per-channel scales
  fold into the weights (``FoldWeightsWithScale``).
- A matrix product with a constant left operand is a 1x1 convolution; otherwise its weights are
  read from a tensor at run time (command-stream.md App. A: the H13 matmul sample reads A from
  an input slot). Both operands are addressed as strided views, so no data moves.
- Elementwise ops of two live tensors run on the planar engine (two live inputs cannot become a
  gain/offset, ch. 22 "barrier"); broadcasts are 1x1 convolutions with a ones kernel.
- Softmax and the norms decompose: reductions are 1x1 convolutions with ones or averaging
  kernels (channel and height axes) or products with a ones vector (width axis), maxima are
  pooling or a tree of planar max, exp and rsqrt are lookup tables, the rest planar multiply
  and divide.
- Reshape, slice, transpose of the leading axes and concat are views: concat inputs are written
  straight into their place in the result (the H13 concat sample writes its second input at
  offset 0x100000 of the output).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace
from typing import Any

import numpy as np

from anesim.chips.schema import ChipConfig
from anesim.compiler.lowering.capability import Limits
from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.lowering.eops import EOp, NeSpec, PlanarSpec
from anesim.compiler.graph.graph import Graph, Node, as_nchw, axis_nchw
from anesim.compiler.lowering.kernels import KernelSource
from anesim.compiler.lowering.luts import LUT_OPS, build_table, clip_table
from anesim.compiler.lowering.views import Buffer, View, permute_view, reshape_view, slice_view
from anesim.errors import CompileError

VIEW_OPS = ("reshape", "transpose", "slice", "identity")
LUT_UNARY = ("sigmoid", "tanh", "erf", "hard_sigmoid", "gelu", "exp", "sqrt", "rsqrt", "reciprocal")
BINARY_PLANAR = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "max", "min": "min"}


def _ones_kernel(shape: tuple[int, int, int, int], value: float = 1.0) -> KernelSource:
    return KernelSource(shape, lambda: np.full(shape, value, np.float32), "fp16", 0, f"fill {value:g}")


def _values_kernel(shape: tuple[int, int, int, int], make: Any, description: str) -> KernelSource:
    return KernelSource(shape, lambda: np.asarray(make(), np.float32).reshape(shape), "fp16", 0, description)


class SegmentLowerer:
    """Turns the nodes of one segment into :class:`EOp` s over :class:`Buffer` views."""

    def __init__(self, graph: Graph, chip: ChipConfig, limits: Limits, nodes: list[Node],
                 inputs: list[str], outputs: list[str], notes: list[str],
                 host: dict[str, str] | None = None) -> None:
        self.g = graph
        self.host = host or {}
        self.chip = chip
        self.limits = limits
        self.nodes = nodes
        self.outputs = list(dict.fromkeys(outputs))
        self.notes = notes
        self.buffers: list[Buffer] = []
        self.storage: dict[str, View] = {}
        self.const_buffers: dict[str, View] = {}
        self.eops: list[EOp] = []
        self.fused: set[str] = set()
        self.on_chip = False  # temporaries belong to a row tile (kept in the pool when they fit)
        self.consumers: dict[str, list[Node]] = {}
        for node in nodes:
            for name in dict.fromkeys(node.inputs):
                self.consumers.setdefault(name, []).append(node)
        self.producer = {n.output: n for n in nodes if n.name not in self.host}
        self.alias: dict[str, tuple[str, int, int]] = {}
        self.back_reshape: dict[str, str] = {}
        for name in inputs:
            info = graph.info(name)
            buf = self._new_buffer(name, "input", info.shape, info.dtype)
            self.storage[name] = buf.view()
        self._plan_aliases()

    # -- buffers ---------------------------------------------------------------------------

    def _new_buffer(self, name: str, role: str, shape: tuple[int, ...], dtype: str = "fp16",
                    data: ConstantData | None = None) -> Buffer:
        n, c, h, w = as_nchw(shape)
        buf = Buffer(len(self.buffers), name, role, n, c, h, w, dtype, data, tuple(shape))
        self.buffers.append(buf)
        return buf

    def temp(self, dims: tuple[int, int, int, int], stem: str) -> View:
        """A fresh intermediate buffer of NCHW ``dims``."""
        buf = self._new_buffer(f"{stem}#{len(self.buffers)}", "intermediate", dims)
        buf.on_chip = self.on_chip
        return buf.view()

    def const_view(self, name: str, data: ConstantData | None = None, shape: tuple[int, ...] | None = None) -> View:
        """A constant tensor read by the tile DMA (not as a kernel): a constant buffer."""
        if name not in self.const_buffers:
            data = data if data is not None else self.g.constants[name].data
            buf = self._new_buffer(name, "constant", shape or data.shape, "fp16", data)
            self.const_buffers[name] = buf.view()
        return self.const_buffers[name]

    def filled(self, dims: tuple[int, int, int, int], value: float) -> View:
        """A constant buffer holding one value everywhere."""
        key = f"fill({value:g})x{dims}"
        data = ConstantData.derived(dims, lambda: np.full(dims, value, np.float32), f"fill {value:g}")
        return self.const_view(key, data, dims)

    def _plan_aliases(self) -> None:
        """Concat inputs written in place, and tensors that share storage with their reshape."""
        taken: set[str] = set()
        for node in self.nodes:
            if node.op != "concat" or node.name in self.host:
                continue
            rank = len(self.g.info(node.output).shape)
            axis4 = axis_nchw(node.attrs["axis"], rank)
            start = 0
            for name in node.inputs:
                size = as_nchw(self.g.info(name).shape)[axis4]
                prod = self.producer.get(name)
                if (prod is not None and prod.op not in VIEW_OPS and prod.op != "concat"
                        and name not in self.outputs and name not in taken
                        and node.inputs.count(name) == 1 and name not in self.g.constants):
                    self.alias[name] = (node.output, axis4, start)
                    taken.add(name)
                start += size
        for node in self.nodes:
            if node.op != "reshape" or node.name in self.host:
                continue
            src = node.inputs[0]
            prod = self.producer.get(src)
            if (prod is None or prod.op in VIEW_OPS or src in self.outputs or src in self.alias
                    or len(self.consumers.get(src, [])) != 1):
                continue
            if node.output in self.outputs or node.output in self.alias:
                self.back_reshape[src] = node.output

    def dest_for(self, name: str) -> View:
        """Where the value ``name`` is written (allocating its storage on first use)."""
        if name in self.storage:
            return self.storage[name]
        info = self.g.info(name)
        view: View | None = None
        if name in self.outputs:
            view = self._new_buffer(name, "output", info.shape, "fp16").view()
        elif name in self.alias:
            target, axis4, start = self.alias[name]
            base = self.dest_for(target)
            view = slice_view(base, axis4, start, as_nchw(info.shape)[axis4], 1)
        elif name in self.back_reshape:
            view = reshape_view(self.dest_for(self.back_reshape[name]), info.shape)
        if view is None:
            view = self._new_buffer(name, "intermediate", info.shape).view()
        self.storage[name] = view
        return view

    def src(self, name: str) -> View:
        """The view a value is read from (constants become constant buffers)."""
        if name in self.storage:
            return self.storage[name]
        if name in self.g.constants:
            return self.const_view(name)
        raise CompileError("value is read before it is computed", file=self.g.source or None,
                           found=repr(name))

    def packed(self, view: View, stem: str) -> View:
        """A view in the packed layout: the view itself, or a copy of it."""
        probe = Buffer(0, "", "", *view.dims).view()
        if view.n == 1 or view.sn == probe.sn:
            if (view.sc, view.sh) == (probe.sc, probe.sh) or (view.c == 1 and view.sh == probe.sh):
                return view
        out = self.temp(view.dims, stem)
        self.copy(view, out, stem, "")
        return out

    # -- emission helpers ------------------------------------------------------------------

    def emit(self, eop: EOp) -> None:
        """Append an engine op."""
        self.eops.append(eop)

    def copy(self, src: View, dest: View, name: str, where: str) -> None:
        """A DMA copy through the NE bypass (one per image)."""
        for i in range(src.n):
            self.emit(EOp(name, where, [src.image(i)], dest.image(i), ne=NeSpec("bypass")))

    def bypass(self, src: View, dest: View, ne: NeSpec, name: str, where: str) -> None:
        """Bias, post-scale and nonlinearity without a kernel (one op per image)."""
        for i in range(src.n):
            self.emit(EOp(name, where, [src.image(i)], dest.image(i), ne=replace(ne)))

    def planar(self, op: str, a: View, b: View | None, dest: View, name: str, where: str,
               relu: bool = False) -> None:
        """A planar-engine op of one or two sources (one per image)."""
        for i in range(dest.n):
            srcs = [a.image(min(i, a.n - 1))] + ([b.image(min(i, b.n - 1))] if b is not None else [])
            self.emit(EOp(name, where, srcs, dest.image(i), planar=PlanarSpec(op, relu)))

    def conv1x1(self, src: View, dest: View, kernel: KernelSource, name: str, where: str,
                groups: int = 1, ne: NeSpec | None = None) -> None:
        """A 1x1 convolution with a constant kernel (one per image)."""
        base = ne or NeSpec("conv")
        for i in range(src.n):
            spec = replace(base, op="conv", kernel=kernel, groups=groups)
            self.emit(EOp(name, where, [src.image(i)], dest.image(i), ne=spec))

    # -- epilogue fusion -------------------------------------------------------------------

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

    # -- the walk --------------------------------------------------------------------------

    def run(self) -> list[EOp]:
        """Lower every engine node in order; host nodes split the ops into segments.

        ``self.timeline`` records the result: ``("engine", first_op, end_op)`` runs of engine
        ops and ``("host", node, reason)`` entries between them.
        """
        host = self.host
        self.timeline: list[tuple] = []
        start = 0
        for node in self.nodes:
            if node.name in host:
                self._finish_outputs([i for i in node.inputs if i in self.outputs])
                if len(self.eops) > start:
                    self.timeline.append(("engine", start, len(self.eops)))
                    start = len(self.eops)
                self.timeline.append(("host", node, host[node.name]))
                continue
            if node.name in self.fused:
                continue
            handler = getattr(self, f"_op_{node.op}", None)
            if handler is None:
                if node.op in BINARY_PLANAR:
                    handler = self._binary
                elif node.op in LUT_UNARY or node.op in ("relu", "relu6", "clip"):
                    handler = self._lut_unary
                else:
                    raise CompileError("no engine lowering for this operation", file=self.g.source or None,
                                       where=node.describe(), found=node.op)
            handler(node)
        self._finish_outputs(self.outputs)
        if len(self.eops) > start:
            self.timeline.append(("engine", start, len(self.eops)))
        return self.eops

    def _finish_outputs(self, names: list[str]) -> None:
        for name in names:
            if name not in self.outputs:
                continue
            view = self.storage.get(name)
            if view is None:
                view = self.src(name)
            buf = self.buffers[view.buffer]
            if buf.role == "output" and buf.name == name and view == buf.view():
                continue
            info = self.g.info(name)
            out = self._new_buffer(name, "output", info.shape, "fp16").view()
            if view.dims != out.dims:
                view = reshape_view(view, info.shape) or view
            self.copy(view, out, f"{name}.copy", f"output '{name}'")
            self.storage[name] = out

    # -- op handlers -----------------------------------------------------------------------

    def _kernel_of(self, node: Node, name: str, shape4: tuple[int, int, int, int]) -> KernelSource:
        if name not in self.g.constants:
            raise CompileError("weights must be constant for this lowering", file=self.g.source or None,
                               where=node.describe(), found=repr(name))
        data = self.g.constants[name].data
        fmt = node.attrs.get("weight_format", "fp16")
        bits = int(node.attrs.get("palette_bits", 0)) if fmt == "palette" else 0
        if fmt not in self.limits.dtypes:
            self.notes.append(f"{node.describe()}: weight format {fmt} is not available on this chip; "
                              f"weights stay fp16")
            fmt, bits = "fp16", 0
        if fmt == "palette" and f"int{bits}" not in self.limits.dtypes and "palette" not in self.limits.dtypes:
            fmt, bits = "fp16", 0
        encoded = None
        if data.encoding is not None and data.encoding[0] == fmt and data.encoding[1] == bits:
            encoded = data.encoding[2]
        sparsity = float(node.attrs.get("sparsity", 0.0))
        if not sparsity:
            return KernelSource(shape4, lambda: data.array().reshape(shape4), fmt, bits, data.description, encoded)

        def pruned() -> np.ndarray:
            # the same weights pruned the same way on every compile: the mask is seeded by the layer
            w = data.array().reshape(shape4).astype(np.float32)
            rng = np.random.default_rng(zlib.crc32(node.name.encode()))
            return np.where(rng.random(shape4) < sparsity, np.float32(0.0), w)

        return KernelSource(shape4, pruned, fmt, bits, f"{data.description}, {sparsity:.0%} pruned", None, sparsity)

    def _bias_of(self, node: Node, index: int) -> np.ndarray | None:
        if len(node.inputs) <= index:
            return None
        name = node.inputs[index]
        if name not in self.g.constants:
            raise CompileError("bias must be constant", file=self.g.source or None, where=node.describe())
        data = self.g.constants[name].data
        if data.scalar_value() == 0.0:
            return None
        return data.array().reshape(-1).astype(np.float32)

    def _op_conv2d(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        w_shape = self.g.info(node.inputs[1]).shape
        a = node.attrs
        ne = NeSpec("conv", self._kernel_of(node, node.inputs[1], w_shape),  # type: ignore[arg-type]
                    (w_shape[2], w_shape[3]), a["stride"], a["padding"], a["dilation"], a["groups"],
                    self._bias_of(node, 2))
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=replace(ne)))

    def _op_linear(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        cout, cin = self.g.info(node.inputs[1]).shape
        ne = NeSpec("conv", self._kernel_of(node, node.inputs[1], (cout, cin, 1, 1)),
                    bias=self._bias_of(node, 2))
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=replace(ne)))

    def _op_batch_norm(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        c = x.c
        params = [self.g.constants[p].data for p in node.inputs[1:]]
        eps = float(node.attrs["eps"])

        def gain() -> np.ndarray:
            gamma, _, _, var = (p.array().reshape(-1) for p in params)
            return gamma / np.sqrt(var + eps)

        gamma, beta, mean, var = (p.array().reshape(-1) for p in params)
        g = gamma / np.sqrt(var + eps)
        ne = NeSpec("conv", _values_kernel((c, 1, 1, 1), gain, "batch-norm gain"), groups=c,
                    bias=(beta - mean * g).astype(np.float32))
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=replace(ne)))

    def _op_matmul(self, node: Node) -> None:
        a_name, b_name = node.inputs
        ta, tb = bool(node.attrs["transpose_a"]), bool(node.attrs["transpose_b"])
        out_info = self.g.info(node.output)
        n_out, c_out, m, ncols = as_nchw(out_info.shape)
        an, ac, ar, acol = as_nchw(self.g.info(a_name).shape)
        bn, bc, br, bcol = as_nchw(self.g.info(b_name).shape)
        k = ar if ta else acol
        template = NeSpec("conv")
        out = self.absorb(node.output, template, channel_ok=False)
        dest = self.dest_for(out)
        a_const = a_name in self.g.constants
        b_view: View
        if b_name in self.g.constants:
            data = self.g.constants[b_name].data
            if tb:
                shape_t = data.shape[:-2] + (data.shape[-1], data.shape[-2])
                data = ConstantData.derived(shape_t, lambda d=data: np.swapaxes(d.array(), -1, -2),
                                            "transposed")
                b_view = self.const_view(f"{b_name}^T", data, shape_t)
            else:
                b_view = self.const_view(b_name)
        else:
            b_view = self.src(b_name)
        a_view = None if a_const else self.src(a_name)
        if a_view is not None and ta and c_out > 1 and self._grouped_matmul(
                node, a_view, b_view, dest, template, (an, ac, bn, bc), (c_out, m, k, ncols), n_out):
            return
        for n in range(n_out):
            for c in range(c_out):
                data_view = b_view.plane(min(n, bn - 1), min(c, bc - 1)).rows_as_channels()
                d = dest.plane(n, c).rows_as_channels()
                if a_const:
                    adata = self.g.constants[a_name].data
                    idx = (min(n, an - 1), min(c, ac - 1))

                    def make(adata: ConstantData = adata, idx: tuple[int, int] = idx) -> np.ndarray:
                        mat = adata.array().reshape(as_nchw(adata.shape))[idx]
                        return (mat.T if ta else mat).reshape(m, k, 1, 1)

                    spec = replace(template, kernel=KernelSource((m, k, 1, 1), make, "fp16", 0, "matrix"))
                    self.emit(EOp(node.name, node.describe(), [data_view], d, ne=spec))
                else:
                    plane = a_view.plane(min(n, an - 1), min(c, ac - 1))  # type: ignore[union-attr]
                    weights = plane.rows_as_channels() if ta else plane
                    self.emit(EOp(node.name, node.describe(), [data_view], d, ne=replace(template),
                                  weights_view=weights))

    def _grouped_matmul(self, node: Node, a_view: View, b_view: View, dest: View, template: NeSpec,
                        counts: tuple[int, int, int, int], dims: tuple[int, int, int, int], n_out: int) -> bool:
        """A^T B over every channel of an image as one grouped task (heads as groups).

        Each channel's matrices are merged along channels, which strides say only when the
        planes are packed back to back; then the run-time weights of group c are A_c's rows.
        """
        an, ac, bn, bc = counts
        c_out, m, k, ncols = dims
        if ac != c_out or bc != c_out:
            return False
        parts = []
        for n in range(n_out):
            data = reshape_view(b_view.image(min(n, bn - 1)), (1, c_out * k, 1, ncols))
            weights = reshape_view(a_view.image(min(n, an - 1)), (1, c_out * k, 1, m))
            out = reshape_view(dest.image(n), (1, c_out * m, 1, ncols))
            if data is None or weights is None or out is None:
                return False
            parts.append((data, weights, out))
        for data, weights, out in parts:
            self.emit(EOp(node.name, node.describe(), [data], out, ne=replace(template, groups=c_out),
                          weights_view=weights))
        return True

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

    def _absorb_relu(self, node: Node) -> str | None:
        t = node.output
        users = self.consumers.get(t, [])
        if (t in self.outputs or len(users) != 1 or t in self.alias or t in self.back_reshape
                or users[0].op != "relu" or users[0].name in self.host):
            return None
        self.fused.add(users[0].name)
        return users[0].output

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
            ne = NeSpec("conv", _values_kernel((channels, 1, 1, 1), lambda v=vec: v, "per-channel scale"),
                        groups=channels)
        else:
            return False
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=replace(ne)))
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
        for axis in (0, 1, 2, 3):
            if view.dims[axis] == target[axis]:
                continue
            dims = list(view.dims)
            dims[axis] = target[axis]
            out = self.temp(tuple(dims), f"{node.name}.broadcast")  # type: ignore[arg-type]
            self.broadcast(view, axis, out, node.name, node.describe())
            view = out
        return view

    def broadcast(self, src: View, axis: int, dest: View, name: str, where: str,
                  values: Any = None, fill: float = 1.0) -> None:
        """Repeat ``src`` (size 1 along ``axis``) into ``dest``; entry i is scaled by values[i]."""
        size = dest.dims[axis]

        def factors() -> np.ndarray:
            if values is None:
                return np.full(size, fill, np.float32)
            return np.asarray(values() if callable(values) else values, np.float32).reshape(-1) * fill

        if axis == 0:
            for i in range(size):
                self.copy(src, dest.image(i), name, where)
            return
        if axis == 1:
            self.conv1x1(src, dest, _values_kernel((size, 1, 1, 1), factors, "broadcast"), name, where)
            return
        if axis == 2:
            c = src.c
            src_p = self.packed(src, f"{name}.packed")
            dst = self._merged(dest, (dest.n, c * size, 1, dest.w))
            kernel = _values_kernel((c * size, 1, 1, 1), lambda: np.tile(factors(), c), "broadcast rows")
            self.conv1x1(src_p, dst, kernel, name, where, groups=c)
            self._unmerge(dst, dest, name, where)
            return
        # width: a product with a constant row of ``factors`` for every row of src
        src_p = self.packed(src, f"{name}.packed")
        dst = self._merged(dest, (dest.n, src.c * src.h, 1, dest.w))
        key = f"row({size})*{fill:g}" if values is None else f"{name}.row#{len(self.buffers)}"
        row = ConstantData.derived((1, 1, 1, size), lambda: factors().reshape(1, 1, 1, size), "broadcast row")
        data = self.const_view(key, row, (1, 1, 1, size))
        for i in range(src.n):
            rows = reshape_view(src_p.image(i), (1, 1, src.c * src.h, 1))
            assert rows is not None
            self.emit(EOp(name, where, [data.rows_as_channels() if data.h > 1 else data], dst.image(i),
                          ne=NeSpec("conv"), weights_view=rows))
        self._unmerge(dst, dest, name, where)

    def _merged(self, dest: View, dims: tuple[int, int, int, int]) -> View:
        """``dest`` seen with merged axes; a packed temporary when strides cannot say it."""
        view = reshape_view(dest, dims)
        if view is not None:
            return view
        return self.temp(dims, "merged")

    def _unmerge(self, merged: View, dest: View, name: str, where: str) -> None:
        if self.buffers[merged.buffer].name.startswith("merged"):
            back = reshape_view(merged, dest.dims)
            assert back is not None
            self.copy(back, dest, name, where)

    def reduce(self, src: View, axis: int, kind: str, dest: View, name: str, where: str,
               epilogue: NeSpec | None = None) -> None:
        """Reduce ``src`` along ``axis`` into ``dest`` (size 1 there); NE reductions take an epilogue."""
        size = src.dims[axis]
        scale = 1.0 / size if kind == "mean" else 1.0
        if kind in ("max", "min"):
            self._reduce_extreme(src, axis, kind, dest, name, where)
            if epilogue is not None:
                self.bypass(dest, dest, epilogue, name, where)
            return
        ne = replace(epilogue) if epilogue is not None else NeSpec("conv")
        ne.op = "conv"
        if axis == 1:
            self.conv1x1(src, dest, _ones_kernel((1, size, 1, 1), scale), name, where, ne=ne)
            return
        if axis == 2:
            c = src.c
            src_p = self.packed(src, f"{name}.packed")
            merged = reshape_view(src_p, (src.n, c * size, 1, src.w))
            assert merged is not None
            self.conv1x1(merged, dest, _ones_kernel((c, size, 1, 1), scale), name, where, groups=c, ne=ne)
            return
        # width: rows times a column of ones
        src_p = self.packed(src, f"{name}.packed")
        dst = self._merged(dest, (dest.n, src.c * src.h, 1, 1))
        ones = self.const_view(f"ones({size})*{scale:g}", ConstantData.derived(
            (1, size, 1, 1), lambda: np.full((1, size, 1, 1), scale, np.float32), "ones"), (1, size, 1, 1))
        for i in range(src.n):
            rows = reshape_view(src_p.image(i), (1, 1, src.c * src.h, size))
            assert rows is not None
            self.emit(EOp(name, where, [ones], dst.image(i), ne=replace(ne), weights_view=rows))
        self._unmerge(dst, dest, name, where)

    def _reduce_extreme(self, src: View, axis: int, kind: str, dest: View, name: str, where: str) -> None:
        if axis in (2, 3):
            window = (src.h, 1) if axis == 2 else (1, src.w)
            op = "maxpool" if kind == "max" else "minpool"
            for i in range(src.n):
                self.emit(EOp(name, where, [src.image(i)], dest.image(i),
                              planar=PlanarSpec(op, False, window, window)))
            return
        # channels: a tree of planar max over overlapping halves (max is idempotent)
        cur, count = src, src.c
        while count > 1:
            half = (count + 1) // 2
            out = dest if half == 1 else self.temp((src.n, half, src.h, src.w), f"{name}.{kind}")
            self.planar(kind, cur.channels(0, half), cur.channels(count - half, half), out, name, where)
            cur, count = out, half
        if src.c == 1:
            self.copy(src, dest, name, where)

    # -- composite ops ---------------------------------------------------------------------

    def _axis(self, node: Node) -> int:
        return axis_nchw(node.attrs["axis"], len(self.g.info(node.inputs[0]).shape))

    def _small(self, view: View, axis: int) -> tuple[int, int, int, int]:
        dims = list(view.dims)
        dims[axis] = 1
        return tuple(dims)  # type: ignore[return-value]

    def _row_tiles(self, x: View, target: View, axis: int, full_tiles: int) -> list[tuple[View, View]]:
        """Row tiles of a row-wise decomposition over ``axis``: ``[(x, target)]`` when untiled.

        A tensor whose working set exceeds the cap (as every intermediate would spill to DRAM)
        is cut along an axis other than the reduced one, height if it has rows, else width in
        steps of 32 elements (64 bytes, so every tile starts on a row boundary), into the
        largest tiles whose working set, ``full_tiles`` tensors of the tile's size, fits the
        cap. The stages then run tile by tile with their temporaries on chip, as Apple's softmax
        streams a few rows at a time through the pool; one element of every reduction lives in
        one tile, so the arithmetic is unchanged.
        """
        cap = self.chip.memory.working_set_cap_bytes.value
        whole = [(x, target)]
        if axis != 1 or x.n != 1 or target.n != 1:
            return whole
        if full_tiles * Buffer(0, "", "", *x.dims).nbytes <= cap:
            return whole
        tile_axis, extent, step = (2, x.h, 1) if x.h > 1 else (3, x.w, 32)

        def tile_bytes(count: int) -> int:
            dims = list(x.dims)
            dims[tile_axis] = count
            return full_tiles * Buffer(0, "", "", *dims).nbytes

        size = 0
        for count in range(step, extent, step):
            if tile_bytes(count) > cap:
                break
            size = count
        if size == 0:
            return whole
        tiles = []
        for start in range(0, extent, size):
            count = min(size, extent - start)
            xs = slice_view(x, tile_axis, start, count, 1)
            ts = slice_view(target, tile_axis, start, count, 1)
            assert xs is not None and ts is not None
            tiles.append((xs, ts))
        return tiles

    def _tiled(self, node: Node, full_tiles: int, body: Any) -> None:
        """Run ``body(x, target, axis)`` once per row tile of the node's input.

        When a tile's working set fits the cap, its temporaries stay in the pool, and so does
        ``x``: an untiled intermediate is written there by its producer, anything else is
        brought on chip once (a copy through the NE) before the stages read it twice or more,
        as a tile DMA fills the pool once. Otherwise every stage reads DRAM.
        """
        x = self.src(node.inputs[0])
        axis = self._axis(node)
        tiles = self._row_tiles(x, self.dest_for(node.output), axis, full_tiles)
        cap = self.chip.memory.working_set_cap_bytes.value
        fits = (full_tiles + 1) * Buffer(0, "", "", *tiles[0][0].dims).nbytes <= cap
        self.on_chip = len(tiles) > 1 or fits
        try:
            for xs, ts in tiles:
                buf = self.buffers[xs.buffer]
                if fits and not buf.on_chip:
                    if buf.role == "intermediate" and len(tiles) == 1:
                        buf.on_chip = True  # the producer writes it into the pool instead
                    else:
                        staged = self.temp(xs.dims, f"{node.name}.tile")
                        self.copy(xs, staged, node.name, node.describe())
                        xs = staged
                body(node, xs, ts, axis)
        finally:
            self.on_chip = False

    def _op_softmax(self, node: Node) -> None:
        # live at once: x, the negated max and the shifted values; then e, the broadcast sum
        # and the result
        self._tiled(node, 3, self._softmax)

    def _spread(self, v: View, like: View, axis: int) -> View | None:
        """``v`` (size 1 along ``axis``) read across ``like``'s channels or rows through a zero stride.

        The planar engine broadcasts a source itself (PECfg Src1/Src2Broadcast,
        command-stream.md register 0x0048), so a per-row statistic needs no broadcast task.
        """
        if axis == 1 and v.c == 1 and like.c > 1:
            return replace(v, c=like.c, sc=0)
        if axis == 2 and v.h == 1 and like.h > 1:
            return replace(v, h=like.h, sh=0)
        return None

    def _per_row(self, stat: View, like: View, axis: int, name: str, where: str, values: Any = None) -> View:
        """``stat`` (one value per row) across ``like``: a zero-stride view, else a broadcast task.

        ``values`` scales entry i of the broadcast (a norm's gain), which only a task can do.
        """
        spread = None if values is not None else self._spread(stat, like, axis)
        if spread is not None:
            return spread
        full = self.temp(like.dims, f"{name}.broadcast")
        self.broadcast(stat, axis, full, name, where, values=values)
        return full

    def _softmax(self, node: Node, x: View, target: View, axis: int) -> None:
        nm, wh = node.name, node.describe()
        small = self._small(x, axis)
        m = self.temp(small, f"{nm}.max")
        self.reduce(x, axis, "max", m, nm, wh)
        shifted = self.temp(x.dims, f"{nm}.shifted")
        self.planar("sub", x, self._per_row(m, x, axis, nm, wh), shifted, nm, wh)
        e = self.temp(x.dims, f"{nm}.exp")
        exp_table, log2e = LUT_OPS["exp"]
        self.bypass(shifted, e, NeSpec("bypass", post_scale=log2e, activation="lut", table=build_table(exp_table)),
                    nm, wh)
        s = self.temp(small, f"{nm}.sum")
        self.reduce(e, axis, "sum", s, nm, wh)
        self.planar("div", e, self._per_row(s, x, axis, nm, wh), target, nm, wh)

    def _norm_params(self, node: Node, first: int) -> tuple[Any, Any]:
        gamma = beta = None
        if len(node.inputs) > first:
            gamma = self.g.constants[node.inputs[first]].data
        if len(node.inputs) > first + 1:
            beta = self.g.constants[node.inputs[first + 1]].data
        return gamma, beta

    def _finish_norm(self, node: Node, x_centered: View, r: View, axis: int, target: View) -> None:
        nm, wh = node.name, node.describe()
        gamma, beta = self._norm_params(node, 1)
        unit_gain = gamma is None or bool(np.all(gamma.array() == 1.0))
        rb = self._per_row(r, x_centered, axis, nm, wh, values=None if unit_gain else gamma.array)
        has_beta = beta is not None and beta.scalar_value() != 0.0
        if not has_beta:
            self.planar("mul", x_centered, rb, target, nm, wh)
            return
        y = self.temp(x_centered.dims, f"{nm}.scaled")
        self.planar("mul", x_centered, rb, y, nm, wh)
        if axis == 1:
            ne = NeSpec("bypass", bias=beta.array().reshape(-1).astype(np.float32))
            self.bypass(y, target, ne, nm, wh)
        else:
            shape = list(x_centered.dims)
            full = ConstantData.derived(tuple(shape), lambda: np.broadcast_to(
                beta.array().reshape([-1 if i == axis else 1 for i in range(4)]), tuple(shape)).copy(),
                "beta")
            self.planar("add", y, self.const_view(f"{nm}.beta", full, tuple(shape)), target, nm, wh)

    def _rsqrt_epilogue(self, eps: float) -> NeSpec:
        return NeSpec("conv", bias=np.array([eps], np.float32), activation="lut", table=build_table("rsqrt"))

    def _op_layer_norm(self, node: Node) -> None:
        # live at once: the centered values, the broadcast scale and the result
        self._tiled(node, 3, self._layer_norm)

    def _layer_norm(self, node: Node, x: View, target: View, axis: int) -> None:
        nm, wh = node.name, node.describe()
        small = self._small(x, axis)
        mu = self.temp(small, f"{nm}.mean")
        self.reduce(x, axis, "mean", mu, nm, wh)
        xc = self.temp(x.dims, f"{nm}.centered")
        self.planar("sub", x, self._per_row(mu, x, axis, nm, wh), xc, nm, wh)
        sq = self.temp(x.dims, f"{nm}.square")
        self.planar("mul", xc, xc, sq, nm, wh)
        r = self.temp(small, f"{nm}.rstd")
        self.reduce(sq, axis, "mean", r, nm, wh, epilogue=self._rsqrt_epilogue(float(node.attrs["eps"])))
        self._finish_norm(node, xc, r, axis, target)

    def _op_rms_norm(self, node: Node) -> None:
        # live at once: x, the broadcast scale and the result
        self._tiled(node, 3, self._rms_norm)

    def _rms_norm(self, node: Node, x: View, target: View, axis: int) -> None:
        nm, wh = node.name, node.describe()
        sq = self.temp(x.dims, f"{nm}.square")
        self.planar("mul", x, x, sq, nm, wh)
        r = self.temp(self._small(x, axis), f"{nm}.rrms")
        self.reduce(sq, axis, "mean", r, nm, wh, epilogue=self._rsqrt_epilogue(float(node.attrs["eps"])))
        self._finish_norm(node, x, r, axis, target)

    def _reduce_op(self, node: Node, kind: str) -> None:
        x = self.src(node.inputs[0])
        axis = self._axis(node)
        small = self._small(x, axis)
        if node.attrs["keepdims"]:
            self.reduce(x, axis, kind, self.dest_for(node.output), node.name, node.describe())
            return
        tmp = self.temp(small, f"{node.name}.keep")
        self.reduce(x, axis, kind, tmp, node.name, node.describe())
        view = reshape_view(tmp, self.g.info(node.output).shape)
        if view is None:
            raise CompileError("this reduction's result layout needs the host", file=self.g.source or None,
                               where=node.describe())
        self.storage[node.output] = view

    def _op_reduce_sum(self, node: Node) -> None:
        self._reduce_op(node, "sum")

    def _op_reduce_mean(self, node: Node) -> None:
        self._reduce_op(node, "mean")

    def _op_reduce_max(self, node: Node) -> None:
        self._reduce_op(node, "max")

    def _op_reduce_min(self, node: Node) -> None:
        self._reduce_op(node, "min")

    def _pool(self, node: Node, op: str, window: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int, int, int]) -> None:
        x = self.src(node.inputs[0])
        relu = self._absorb_relu(node)
        dest = self.dest_for(relu or node.output)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i),
                          planar=PlanarSpec(op, bool(relu), window, stride, padding)))

    def _op_max_pool2d(self, node: Node) -> None:
        a = node.attrs
        self._pool(node, "maxpool", a["kernel"], a["stride"], a["padding"])

    def _op_avg_pool2d(self, node: Node) -> None:
        a = node.attrs
        self._pool(node, "avgpool", a["kernel"], a["stride"], a["padding"])

    def _op_global_avg_pool(self, node: Node) -> None:
        _, _, h, w = self.src(node.inputs[0]).dims
        self._pool(node, "avgpool", (h, w), (h, w), (0, 0, 0, 0))

    def _op_global_max_pool(self, node: Node) -> None:
        _, _, h, w = self.src(node.inputs[0]).dims
        self._pool(node, "maxpool", (h, w), (h, w), (0, 0, 0, 0))

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

    # -- views -----------------------------------------------------------------------------

    def _set_view(self, node: Node, view: View | None) -> None:
        if view is None:
            x = self.src(node.inputs[0])
            packed = self.packed(x, f"{node.name}.packed")
            view = self._view_of(node, packed)
            if view is None:
                raise CompileError("this layout change needs the host", file=self.g.source or None,
                                   where=node.describe())
        existing = self.storage.get(node.output)
        if existing is not None and existing != view:
            self.copy(view, existing, node.name, node.describe())
            return
        self.storage[node.output] = view

    def _view_of(self, node: Node, x: View) -> View | None:
        a = node.attrs
        rank = len(self.g.info(node.inputs[0]).shape)
        if node.op == "reshape":
            return reshape_view(x, a["shape"])
        if node.op == "transpose":
            perm4 = tuple(range(4 - rank)) + tuple(p + 4 - rank for p in a["perm"])
            return permute_view(x, perm4)  # type: ignore[arg-type]
        if node.op == "slice":
            axis4 = axis_nchw(a["axis"], rank)
            count = as_nchw(self.g.info(node.output).shape)[axis4]
            return slice_view(x, axis4, a["start"], count, a["step"])
        return x

    def _op_reshape(self, node: Node) -> None:
        self._set_view(node, self._view_of(node, self.src(node.inputs[0])))

    _op_transpose = _op_reshape
    _op_slice = _op_reshape
    _op_identity = _op_reshape

    def _op_concat(self, node: Node) -> None:
        dest = self.dest_for(node.output)
        rank = len(self.g.info(node.output).shape)
        axis4 = axis_nchw(node.attrs["axis"], rank)
        start = 0
        for name in node.inputs:
            size = as_nchw(self.g.info(name).shape)[axis4]
            if self.alias.get(name, (None,))[0] != node.output:
                part = slice_view(dest, axis4, start, size, 1)
                assert part is not None
                self.copy(self.src(name), part, node.name, node.describe())
            start += size
