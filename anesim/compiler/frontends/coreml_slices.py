"""MIL slicing operations (``slice_by_index``, ``split``) as engine slices (Core ML importer mixin)."""

from __future__ import annotations

from typing import Any


class Slices:
    """Importer mixin: MIL operations that cut a tensor along its axes."""

    b: Any  # the importer's Builder; _ins, _arg, _axes, _ints, _bools, _number and fail are the importer's
    _ins: Any
    _arg: Any
    _axes: Any
    _ints: Any
    _bools: Any
    _number: Any
    fail: Any

    def _split(self, inputs: dict[str, list[Any]], outputs: list[str]) -> None:
        x = self._ins(inputs, "x")[0]
        shape = self.b.graph.info(x).shape
        (axis,) = self._axes(inputs, "axis", len(shape))
        if self._arg(inputs, "split_sizes", None) is not None:
            sizes = self._ints(inputs, "split_sizes")
        else:
            parts = self._number(inputs, "num_splits", whole=True)
            if parts < 1 or shape[axis] % parts:
                raise self.fail("num_splits must divide the axis", found=f"{parts} parts of {shape[axis]}")
            sizes = [shape[axis] // parts] * parts
        if len(sizes) != len(outputs) or sum(sizes) != shape[axis] or min(sizes) < 1:
            raise self.fail("split sizes must be positive, one per output, and cover the axis",
                            expected=f"{len(outputs)} sizes summing to {shape[axis]}", found=sizes)
        start = 0
        for size, name in zip(sizes, outputs):
            self.b.op("slice", [x], name=name, axis=axis, start=start, end=start + size, step=1)
            start += size

    def _slice(self, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        shape = self.b.graph.info(x).shape
        rank = len(shape)
        begin = self._ints(inputs, "begin")
        end = self._ints(inputs, "end")
        stride = self._ints(inputs, "stride", [1] * rank)
        bmask = self._bools(inputs, "begin_mask", [False] * rank)
        emask = self._bools(inputs, "end_mask", [False] * rank)
        squeeze = self._bools(inputs, "squeeze_mask", [False] * rank)
        for what, values in (("begin", begin), ("end", end), ("stride", stride), ("begin_mask", bmask),
                             ("end_mask", emask), ("squeeze_mask", squeeze)):
            if len(values) != rank:
                raise self.fail(f"slice_by_index '{what}' must give one entry per axis",
                                expected=f"{rank} entries", found=len(values))
        moves = []
        for axis in range(rank):
            start = 0 if bmask[axis] else begin[axis]
            stop = shape[axis] if emask[axis] else end[axis]
            if stride[axis] < 1:
                raise self.fail("negative slice strides are not supported")
            if (start, stop, stride[axis]) != (0, shape[axis], 1):
                moves.append((axis, start, stop, stride[axis]))
        current = x
        final = out if not any(squeeze) else f"{out}.full"
        if not moves:
            self.b.op("identity", [current], name=final)
        for k, (axis, start, stop, step) in enumerate(moves):
            name = final if k == len(moves) - 1 else f"{out}.axis{axis}"
            current = self.b.op("slice", [current], name=name, axis=axis, start=start, end=stop, step=step).name
        if any(squeeze):
            kept = [d for i, d in enumerate(self.b.graph.info(final).shape) if not squeeze[i]] or [1]
            self.b.op("reshape", [final], name=out, shape=kept)
