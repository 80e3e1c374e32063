"""The state of lowering one segment: its buffers, where each value lives, and the ops emitted.

:class:`SegmentBase` allocates buffers (inputs, outputs, intermediates, constants read by the
tile DMA), decides where each value is written - its own buffer, its place in a concat result
written in place, or the storage of the reshape it feeds - and appends engine ops through a few
helpers (a copy, a bypass, a planar op, a 1x1 convolution), one op per image, or for the
helpers that work plane by plane one per group of images taken as channels. The op-family
modules build on it; :mod:`anesim.compiler.lowering.lower` combines them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anesim.chips.schema import ChipConfig
from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Graph, Node, as_nchw, axis_nchw
from anesim.compiler.lowering.capability import Limits
from anesim.compiler.lowering.eops import EOp, NeSpec, PlanarSpec
from anesim.compiler.lowering.kernels import KernelSource
from anesim.compiler.lowering.views import Buffer, View, batch_folds, reshape_view, slice_view
from anesim.errors import CompileError
from anesim.limits import LimitError
from anesim.limits import current as current_limits
from anesim.program.model import align_up

VIEW_OPS = ("reshape", "transpose", "slice", "identity")


def ones_kernel(shape: tuple[int, int, int, int], value: float = 1.0) -> KernelSource:
    """A constant kernel holding one value everywhere."""
    return KernelSource(shape, lambda: np.full(shape, value, np.float32), "fp16", 0, f"fill {value:g}")


def values_kernel(shape: tuple[int, int, int, int], make: Any, description: str) -> KernelSource:
    """A constant kernel whose values ``make()`` computes when they are first read."""
    return KernelSource(shape, lambda: np.asarray(make(), np.float32).reshape(shape), "fp16", 0, description)


def per_channel(ne: NeSpec, channels: int) -> NeSpec:
    """A copy of an NE spec that works plane by plane (no kernel, or a depthwise one), for
    ``channels`` channels: its per-channel bias and kernel repeated for each image a batch fold
    took as channels."""
    changes: dict[str, Any] = {}
    if ne.bias is not None and 1 < ne.bias.size < channels:
        changes["bias"] = np.tile(ne.bias, channels // ne.bias.size)
    kernel = ne.kernel
    if kernel is not None and kernel.shape[0] < channels:
        changes["kernel"] = kernel.repeated_out(channels // kernel.shape[0])
        changes["groups"] = channels
    return ne.copy(**changes)


def rows_as_lanes(src: View, dest: View, lanes: int) -> tuple[View, View]:
    """``src`` and ``dest`` (one image, same dims) with rows merged into channels, when that helps.

    Only when the result has fewer channels than ``lanes`` and more than one row, and strides
    can say the merge for both views; otherwise the views as they are.
    """
    if dest.c >= lanes or dest.h == 1 or src.dims != dest.dims:
        return src, dest
    merged = (1, dest.c * dest.h, 1, dest.w)
    s, d = reshape_view(src, merged), reshape_view(dest, merged)
    if s is None or d is None:
        return src, dest
    return s, d


class SegmentBase:
    """Buffers, storage and emission helpers shared by the op families of one segment."""

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
        self.max_ops = current_limits(chip).steps
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
        # the strides of a packed fp16 buffer of the view's dims (Buffer's rule, without making one)
        row = align_up(view.w * 2)
        plane = align_up(row * view.h)
        if view.n == 1 or view.sn == plane * view.c:
            if (view.sc, view.sh) == (plane, row) or (view.c == 1 and view.sh == row):
                return view
        out = self.temp(view.dims, stem)
        self.copy(view, out, stem, "")
        return out

    def emit(self, eop: EOp) -> None:
        """Append an engine op; refused as soon as the ops outnumber the step limit (a large batch
        goes image by image through the layers that mix channels: the whole lowering of one that
        is refused anyway took seconds)."""
        self.eops.append(eop)
        if len(self.eops) > self.max_ops:
            raise LimitError("exceeds the step limit (scales with --max-memory / ANESIM_MAX_MEMORY)",
                             file=self.g.source or None,
                             where=f"lowered engine operations (refused while lowering node '{eop.name}')",
                             expected=f"<= {self.max_ops:,}", found=f"more than {self.max_ops:,}")

    def copy(self, src: View, dest: View, name: str, where: str) -> None:
        """A DMA copy through the NE bypass (per image, or images as channels: :meth:`per_plane`)."""
        self.bypass(src, dest, NeSpec("bypass"), name, where)

    def bypass(self, src: View, dest: View, ne: NeSpec, name: str, where: str) -> None:
        """Bias, post-scale and nonlinearity without a kernel (per image, or images as channels:
        :meth:`per_plane`).

        A per-element op has no use for the row structure: when the result holds fewer channels
        than the NE has channel lanes and no per-channel bias, source and result are seen with
        their rows as channels (the same bytes, a view), so every core and lane takes a share
        instead of one lane walking the rows.
        """
        for s, d in self.per_plane(src, dest):
            if ne.bias is None or ne.bias.size == 1:
                s, d = rows_as_lanes(s, d, self.chip.ne.cores.value * self.chip.ne.out_channels_per_cycle_fp16.value)
            self.emit(EOp(name, where, [s], d, ne=per_channel(ne, d.c)))

    def per_plane(self, src: View, dest: View) -> list[tuple[View, View]]:
        """``src`` and ``dest`` image by image for work done plane by plane (no channel mixing),
        or, where the layout allows (:func:`batch_folds`), a batch's images as channels: a task
        for as many images as the channel limit holds, not one per image."""
        folds = batch_folds([src, dest], self.limits.max_dimension, self.chip.memory.working_set_cap_bytes.value)
        return [(s, d) for s, d in folds] if folds else [(src.image(i), dest.image(i)) for i in range(src.n)]

    def planar(self, op: str, a: View, b: View | None, dest: View, name: str, where: str,
               relu: bool = False) -> None:
        """A planar-engine op of one or two sources: per image (a source of one image serves every
        image), or a batch's images as channels where every operand allows it (:func:`batch_folds`)."""
        folds = batch_folds([dest, a] + ([b] if b is not None else []), self.limits.max_dimension,
                            self.chip.memory.working_set_cap_bytes.value)
        if folds:  # (a per-plane op: a batch's images are taken as channels, a few tasks for all)
            for d, *srcs in folds:
                self.emit(EOp(name, where, srcs, d, planar=PlanarSpec(op, relu)))
            return
        for i in range(dest.n):
            srcs = [a.image(min(i, a.n - 1))] + ([b.image(min(i, b.n - 1))] if b is not None else [])
            self.emit(EOp(name, where, srcs, dest.image(i), planar=PlanarSpec(op, relu)))

    def conv1x1(self, src: View, dest: View, kernel: KernelSource, name: str, where: str,
                groups: int = 1, ne: NeSpec | None = None) -> None:
        """A 1x1 convolution with a constant kernel (one per image)."""
        base = ne or NeSpec("conv")
        for i in range(src.n):
            spec = base.copy(op="conv", kernel=kernel, groups=groups)
            self.emit(EOp(name, where, [src.image(i)], dest.image(i), ne=spec))
