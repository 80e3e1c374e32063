"""Reshape, slice, transpose, identity and concat: ops that only change how a buffer is addressed.

Each becomes a strided view of its input where strides can say it (the width axis stays
contiguous), else a packed copy first; concat inputs are written straight into their place in
the result (the H13 concat sample writes its second input at offset 0x100000 of the output),
and only inputs that could not be are copied.
"""

from __future__ import annotations

from anesim.compiler.graph.graph import Node, as_nchw, axis_nchw
from anesim.compiler.lowering.segment import SegmentBase
from anesim.compiler.lowering.views import View, permute_view, reshape_view, slice_view
from anesim.errors import CompileError


class LayoutOps(SegmentBase):
    """Lowers the ops that are views."""

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
