"""Broadcasts and reductions along one axis: the building blocks of the composite ops.

Broadcasts are 1x1 convolutions with a ones kernel (channels), grouped convolutions over
merged axes (rows) or products with a constant row (width). Reductions are 1x1 convolutions
with ones or averaging kernels (channel and height axes) or products with a ones vector (width
axis); maxima and minima are pooling windows or a tree of planar max/min over channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.lowering.eops import EOp, NeSpec, PlanarSpec
from anesim.compiler.lowering.segment import SegmentBase, ones_kernel, values_kernel
from anesim.compiler.lowering.views import View, reshape_view


class Primitives(SegmentBase):
    """Broadcast and reduce a view along one NCHW axis."""

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
            self.conv1x1(src, dest, values_kernel((size, 1, 1, 1), factors, "broadcast"), name, where)
            return
        if axis == 2:
            c = src.c
            src_p = self.packed(src, f"{name}.packed")
            dst = self._merged(dest, (dest.n, c * size, 1, dest.w))
            kernel = values_kernel((c * size, 1, 1, 1), lambda: np.tile(factors(), c), "broadcast rows")
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
        ne = epilogue.copy() if epilogue is not None else NeSpec("conv")
        ne.op = "conv"
        if axis == 1:
            self.conv1x1(src, dest, ones_kernel((1, size, 1, 1), scale), name, where, ne=ne)
            return
        if axis == 2:
            c = src.c
            src_p = self.packed(src, f"{name}.packed")
            merged = reshape_view(src_p, (src.n, c * size, 1, src.w))
            assert merged is not None
            self.conv1x1(merged, dest, ones_kernel((c, size, 1, 1), scale), name, where, groups=c, ne=ne)
            return
        # width: rows times a column of ones
        src_p = self.packed(src, f"{name}.packed")
        dst = self._merged(dest, (dest.n, src.c * src.h, 1, 1))
        ones = self.const_view(f"ones({size})*{scale:g}", ConstantData.derived(
            (1, size, 1, 1), lambda: np.full((1, size, 1, 1), scale, np.float32), "ones"), (1, size, 1, 1))
        for i in range(src.n):
            rows = reshape_view(src_p.image(i), (1, 1, src.c * src.h, size))
            assert rows is not None
            self.emit(EOp(name, where, [ones], dst.image(i), ne=ne.copy(), weights_view=rows))
        self._unmerge(dst, dest, name, where)

    def _reduce_extreme(self, src: View, axis: int, kind: str, dest: View, name: str, where: str) -> None:
        if axis in (2, 3):
            window = (src.h, 1) if axis == 2 else (1, src.w)
            op = "maxpool" if kind == "max" else "minpool"
            for s, d in self.per_plane(src, dest):
                self.emit(EOp(name, where, [s], d, planar=PlanarSpec(op, False, window, window)))
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
