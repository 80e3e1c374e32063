"""Rank-5 MIL tensors lowered onto the engine's rank-4 layouts (Core ML importer mixin).

coremltools writes rank-5 tensors for two patterns of the networks it converts: a group norm's
view (N, G, C/G, H, W), reduced over its last three axes, and the packed-projection split of
``torch.nn.MultiheadAttention`` through (1, L, 1, 3, E) with unit axes. A rank-5 value is held
in the graph folded: its first two axes merged, (s0*s1, s2, s3, s4), which is the same row-major
data, so a reshape into or out of it is exact. The operations below are the ones for which the
folded form computes exactly what MIL defines: reshapes, elementwise operations whose operands
broadcast alike over the merged axes, reductions that either leave both merged axes or reduce
both (or a unit one), and transposes (through the non-unit axes, which alone order the data).
Any other use of a rank-5 tensor is refused naming the operation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FOLD_RANK = 5  # the one rank above the engine's four that is folded
ELEMENTWISE = ("add", "sub", "mul", "real_div", "maximum", "minimum", "relu", "sigmoid", "tanh", "exp",
               "erf", "abs", "square", "sqrt", "rsqrt", "inverse", "identity", "cast", "silu")


def fold(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The rank-4 graph shape holding a rank-5 MIL shape (first two axes merged)."""
    return (shape[0] * shape[1], *shape[2:]) if len(shape) == FOLD_RANK else tuple(shape)


class Rank5:
    """Importer mixin: MIL operations on rank-5 tensors, on their folded rank-4 form."""

    b: Any  # the importer's Builder, value tables and helpers
    consts: dict[str, Any]
    lazy: dict[str, Any]
    _ins: Any
    _arg: Any
    _axes: Any
    _flag: Any
    reshape_target: Any
    fail: Any
    malformed: Any
    folded: dict[str, tuple[int, ...]]  # value name -> its rank-5 MIL shape (graph holds fold(shape))
    out_shape: list[int]  # the current operation's first output's MIL shape

    def mil_shape(self, name: str) -> tuple[int, ...]:
        """A graph tensor's shape as MIL sees it."""
        return self.folded.get(name) or tuple(self.b.graph.info(name).shape)

    def involves_rank5(self, inputs: dict[str, list[Any]]) -> bool:
        """Whether the current operation reads or writes a tensor of rank above four."""
        if len(self.out_shape) > 4:
            return True
        return any(kind == "name" and self._rank5_value(value) for bindings in inputs.values()
                   for kind, value in bindings)

    def _rank5_value(self, name: str) -> bool:
        """Whether a value (a graph tensor or a constant not yet in the graph) has rank above four."""
        if name in self.folded:
            return True
        if name in self.consts:
            return np.ndim(self.consts[name]) > 4
        return name in self.lazy and len(self.lazy[name].shape) > 4

    def _emit_out(self, graph_out: str, out: str) -> None:
        """Reshape a result into the current operation's output (folded when rank 5)."""
        target = tuple(self.out_shape)
        if len(target) > FOLD_RANK:
            raise self.fail(f"tensors of rank {len(target)} are not supported", found=target)
        self.b.op("reshape", [graph_out], name=out, shape=list(fold(target)) or [1])
        if len(target) == FOLD_RANK:
            self.folded[out] = target

    def rank5(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        """Lower one operation that reads or writes a rank-5 tensor, or refuse it naming the op."""
        target = tuple(self.out_shape)
        if len(target) > FOLD_RANK or any(d < 1 for d in target):
            raise self.fail("the output's shape is not a static shape of rank 5 or less",
                            found=list(target))
        if op in ("reshape", "squeeze", "expand_dims"):
            x = self._ins(inputs, "x")[0]
            source = self.mil_shape(x)
            given = self.reshape_target(op, inputs, list(source))
            known = math.prod(d for d in given if d != -1)
            if given.count(-1) == 1 and known > 0 and math.prod(source) % known == 0:
                given = [math.prod(source) // known if d == -1 else d for d in given]
            if math.prod(source) != math.prod(given) or any(d < 1 for d in given):
                raise self.fail("a reshape that changes the element count", found=(list(source), given))
            self._declared(given)
            self._emit_out(x, out)
        elif op in ELEMENTWISE:
            self._elementwise(op, inputs, out)
        elif op in ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min"):
            self._reduce5(op, inputs, out)
        elif op == "transpose":
            self._transpose5(inputs, out)
        else:
            raise self.fail("rank-5 tensors are supported only in reshapes, elementwise operations, "
                            "reductions and transposes", found=op)

    def _declared(self, given: list[int] | tuple[int, ...]) -> None:
        """Refuse an output whose declared shape is not the one the operation's parameters give
        (the folded form is built from the declared shape, so the two must agree)."""
        if tuple(given) != tuple(self.out_shape):
            raise self.malformed("the declared output shape is not the one its operands and parameters give",
                                 expected=list(given), found=list(self.out_shape))

    def _elementwise(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        target = tuple(self.out_shape)
        keys = ("x", "y") if op in ("add", "sub", "mul", "real_div", "maximum", "minimum") else ("x",)
        shapes = [self.mil_shape(self._ins(inputs, key)[0]) for key in keys]
        try:
            self._declared(np.broadcast_shapes(*shapes))
        except ValueError:
            raise self.fail("elementwise operands that do not broadcast", found=[list(sh) for sh in shapes]) from None
        names = []
        for key in keys:
            name = self._ins(inputs, key)[0]
            shape = (1,) * (FOLD_RANK - len(self.mil_shape(name))) + self.mil_shape(name)
            if len(target) == FOLD_RANK and shape[:2] != target[:2] and shape[0] * shape[1] != 1:
                # merged axes that broadcast differently from the result's cannot stay merged
                raise self.fail("an elementwise operand that broadcasts over one of the first two axes "
                                "of a rank-5 result", found=f"{list(shape)} against {list(target)}")
            names.append(name)
        from anesim.compiler.frontends.coreml import BINARY, UNARY  # the importer's own op tables
        self.b.op(BINARY.get(op) or UNARY[op], names, name=f"{out}.folded")
        self._emit_out(f"{out}.folded", out)

    def _reduce5(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        from anesim.compiler.frontends.coreml import REDUCE
        x = self._ins(inputs, "x")[0]
        shape = self.mil_shape(x)
        if len(shape) != FOLD_RANK:
            raise self.fail("a reduction to a rank-5 tensor", found=list(shape))
        axes = set(self._axes(inputs, "axes", FOLD_RANK))
        keep = self._flag(inputs, "keep_dims", False)
        self._declared([1 if a in axes else d for a, d in enumerate(shape)] if keep
                       else [d for a, d in enumerate(shape) if a not in axes])
        merged = {a for a in axes & {0, 1} if shape[a] != 1}  # reducing a unit axis changes nothing
        if merged and not {0, 1} <= axes and shape[0] != 1 and shape[1] != 1:
            raise self.fail("a reduction over only one of the first two axes of a rank-5 tensor",
                            found=sorted(axes))
        graph_axes = ([0] if merged else []) + sorted(a - 1 for a in axes if a >= 2)
        current = x
        for axis in graph_axes:
            current = self.b.op(REDUCE[op], [current], name=f"{out}.axis{axis}", axis=axis, keepdims=True).name
        self._emit_out(current, out)

    def _transpose5(self, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        shape = self.mil_shape(x)
        rank = len(shape)
        perm = self._axes(inputs, "perm", rank)
        if sorted(perm) != list(range(rank)):
            raise self.fail("a transpose whose perm is not a permutation of the axes", found=perm)
        self._declared([shape[a] for a in perm])
        kept = [a for a in range(rank) if shape[a] != 1]  # unit axes do not order the data
        if len(kept) > 4:
            raise self.fail("a rank-5 transpose with no unit axis", found=list(shape))
        order = [kept.index(a) for a in perm if shape[a] != 1]
        squeezed = self.b.op("reshape", [x], name=f"{out}.squeezed", shape=[shape[a] for a in kept] or [1]).name
        moved = squeezed
        if order != sorted(order):
            moved = self.b.op("transpose", [squeezed], name=f"{out}.moved", perm=order).name
        self._emit_out(moved, out)
