"""Reductions, softmax, layer and RMS norms, and pooling: ops that combine values along an axis.

Softmax and the norms decompose into reductions (:mod:`anesim.compiler.lowering.primitives`),
lookup tables (exp, rsqrt) and planar subtract, multiply and divide; a per-row statistic is
read across its row through a zero stride where the planar engine can broadcast it. A tensor
whose working set exceeds the chip's cap is cut into row tiles whose temporaries stay on chip.
Pooling and global pooling are planar-engine windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Node, axis_nchw
from anesim.compiler.lowering.eops import EOp, NeSpec, PlanarSpec
from anesim.compiler.lowering.fusion import EpilogueFusion
from anesim.compiler.lowering.luts import LUT_OPS, build_table
from anesim.compiler.lowering.primitives import Primitives
from anesim.compiler.lowering.views import Buffer, View, reshape_view, slice_view
from anesim.errors import CompileError


# Full-size tensors a softmax row tile counts as live at once: x, the maximum and the shifted
# values; then e, the sum and the result (the statistics counted as full size, for when they
# need a broadcast task).
SOFTMAX_TILE_TENSORS = 3

class ReductionOps(EpilogueFusion, Primitives):
    """Lowers reductions, softmax, norms and pooling."""

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
        cap; a batch that does not fit is first cut into its images. The stages then run tile
        by tile with their temporaries on chip, as Apple's softmax streams a few rows at a time
        through the pool; one element of every reduction lives in one tile, so the arithmetic
        is unchanged.
        """
        cap = self.chip.memory.working_set_cap_bytes.value
        whole = [(x, target)]
        if axis != 1 or x.n != target.n:
            return whole
        if full_tiles * Buffer(0, "", "", *x.dims).nbytes <= cap:
            return whole
        if x.n > 1:
            # A batch: the rows of every image are reduced on their own, so each image is tiled
            # as a tensor of one (whole where it fits), and a batch never spills where one
            # image alone would not.
            tiles = []
            for i in range(x.n):
                xi, ti = slice_view(x, 0, i, 1, 1), slice_view(target, 0, i, 1, 1)
                assert xi is not None and ti is not None
                tiles.extend(self._row_tiles(xi, ti, axis, full_tiles))
            return tiles
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
        # sized so the staged input fits beside the temporaries: x is then read from DRAM once
        tiles = self._row_tiles(x, self.dest_for(node.output), axis, full_tiles + 1)
        cap = self.chip.memory.working_set_cap_bytes.value
        fits = (full_tiles + 1) * Buffer(0, "", "", *tiles[0][0].dims).nbytes <= cap
        self.on_chip = fits  # (every row tile fits by construction; an image left whole may not)
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
        self._tiled(node, SOFTMAX_TILE_TENSORS, self._softmax)

    def _spread(self, v: View, like: View, axis: int) -> View | None:
        """``v`` (size 1 along ``axis``) read across ``like``'s channels or rows through a zero stride.

        The planar engine broadcasts a source itself (PECfg Src1/Src2Broadcast,
        command-stream.md register 0x0048), so a per-row statistic needs no broadcast task.
        """
        if axis == 1 and v.c == 1 and like.c > 1:
            return View(v.buffer, v.offset, v.n, like.c, v.h, v.w, v.sn, 0, v.sh, v.elem)
        if axis == 2 and v.h == 1 and like.h > 1:
            return View(v.buffer, v.offset, v.n, v.c, like.h, v.w, v.sn, v.sc, 0, v.elem)
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

    def _minus_row_stat(self, node: Node, x: View, axis: int, kind: str, label: str) -> View:
        """``x`` minus its per-row ``kind`` ("max" or "mean") along ``axis``: a reduction, then a
        planar subtraction reading the statistic through :meth:`_per_row`."""
        nm, wh = node.name, node.describe()
        stat = self.temp(self._small(x, axis), f"{nm}.{kind}")
        self.reduce(x, axis, kind, stat, nm, wh)
        out = self.temp(x.dims, f"{nm}.{label}")
        self.planar("sub", x, self._per_row(stat, x, axis, nm, wh), out, nm, wh)
        return out

    def _softmax(self, node: Node, x: View, target: View, axis: int) -> None:
        nm, wh = node.name, node.describe()
        small = self._small(x, axis)
        shifted = self._minus_row_stat(node, x, axis, "max", "shifted")
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
        xc = self._minus_row_stat(node, x, axis, "mean", "centered")
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
        # (a pooling works plane by plane: a batch's images are taken as channels where they can be)
        for s, d in self.per_plane(x, dest):
            self.emit(EOp(node.name, node.describe(), [s], d,
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
