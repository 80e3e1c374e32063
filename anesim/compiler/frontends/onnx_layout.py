"""ONNX data-movement ops -> graph ops: reshapes, transposes, concatenation, slicing, gathers,
padding, tiling, broadcasting, resizing and ``Einsum``.

Index arithmetic is done at compile time. Picking elements along one axis (``Gather`` with
constant indices, reflecting or edge ``Pad``, ``Tile``, ``Expand``, a negative-step ``Slice``,
nearest ``Resize``) becomes slices and a concatenation when it is a few contiguous runs, else a
product with a constant 0/1 matrix along that axis (exact in fp16: one term per output).
Linear and cubic ``Resize`` are products with interpolation matrices, read off the ``onnx``
reference implementation so every coordinate mode means what the specification says.
"""

from __future__ import annotations

import math

import numpy as np

from anesim.compiler.frontends.onnx_fold import evaluate_node
from anesim.compiler.frontends.onnx_norm import NormHandlers

MAX_RUNS = 8  # more contiguous runs than this: a 0/1 matrix product instead of slices


class LayoutHandlers(NormHandlers):
    """Handlers for data movement (mixed into the importer)."""

    # -- primitives ------------------------------------------------------------------------

    def map_axis(self, x: str, axis: int, matrix: np.ndarray) -> str:
        """Apply a constant matrix (out, in) along ``axis`` of ``x``."""
        shape = list(self.b.graph.info(x).shape)
        rank = len(shape)
        axis %= rank
        position = axis + 4 - rank
        if rank == 1:
            row = self.emit("reshape", [x], shape=[1, shape[0]])
            y = self.emit("matmul", [row, self._const_tensor(matrix.T, "map")])
            return self.emit("reshape", [y], shape=[matrix.shape[0]])
        if position == 3:
            return self.emit("matmul", [x, self._const_tensor(matrix.T, "map")])
        if position == 2:
            return self.emit("matmul", [self._const_tensor(matrix, "map"), x])
        if position == 1:
            x4 = x if rank == 4 else self.emit("reshape", [x], shape=[1] + shape)
            y = self.emit("linear", [x4, self._const_tensor(matrix, "map")])
            if rank == 4:
                return y
            return self.emit("reshape", [y], shape=list(self.b.graph.info(y).shape)[1:])
        raise self.fail("a data-dependent map along the batch axis is not supported")

    def select(self, x: str, axis: int, source: list[int | None], fill: float = 0.0) -> str:
        """Output index j along ``axis`` takes ``x[source[j]]``, or ``fill`` where it is None."""
        shape = list(self.b.graph.info(x).shape)
        rank = len(shape)
        axis %= rank
        if source == list(range(shape[axis])):
            return x
        runs: list[list] = []
        for s in source:
            last = runs[-1] if runs else None
            if last is not None and ((s is None and last[0] is None) or
                                     (s is not None and last[0] is not None and s == last[0] + last[1])):
                last[1] += 1
            else:
                runs.append([s, 1])
        if len(runs) <= MAX_RUNS or axis + 4 - rank == 0:
            pieces = []
            for start, length in runs:
                if start is None:
                    piece_shape = list(shape)
                    piece_shape[axis] = length
                    pieces.append(self._const_tensor(np.full(piece_shape, fill, np.float32), "fill"))
                elif start == 0 and length == shape[axis]:
                    pieces.append(x)
                else:
                    pieces.append(self.emit("slice", [x], axis=axis, start=start, end=start + length))
            return pieces[0] if len(pieces) == 1 else self.emit("concat", pieces, axis=axis,
                                                                dtype=self.dtype(x))
        matrix = np.zeros((len(source), shape[axis]), np.float32)
        for j, s in enumerate(source):
            if s is not None:
                matrix[j, s] = 1.0
        y = self.map_axis(x, axis, matrix)
        if fill != 0.0 and any(s is None for s in source):
            mask_shape = [1] * rank
            mask_shape[axis] = len(source)
            mask = np.array([fill if s is None else 0.0 for s in source], np.float32).reshape(mask_shape)
            y = self.emit("add", [y, self._const_tensor(mask, "fill")])
        self.dtypes[y] = self.dtype(x)
        return y

    def reshape_to(self, x: str, shape: list[int]) -> str:
        """``x`` reshaped to an ONNX shape (a scalar is held as (1,))."""
        if list(self.shape(x)) == list(shape) and x not in self.scalars:
            return x
        y = self.emit("reshape", [x], shape=list(shape) or [1])
        if not shape:
            self.scalars.add(y)
        return y

    # -- reshapes ----------------------------------------------------------------------------

    def _op_Reshape(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        if self.opset < 5:
            target = list(self.attr("shape"))
        else:
            target = self.const_ints(1)
        allowzero = bool(self.attr("allowzero", 0))
        if not allowzero:
            # (a 0 copies the input's dimension at its place: there must be one)
            if any(d == 0 and i >= len(shape) for i, d in enumerate(target)):
                raise self.fail("Reshape: a 0 in the target shape copies an input dimension the input "
                                "does not have", expected=f"0 only at the first {len(shape)} places",
                                found=f"{tuple(shape)} -> {tuple(target)}")
            target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            if known == 0:
                raise self.fail("reshape to an empty tensor is not supported")
            target = [math.prod(shape) // known if d == -1 else d for d in target]
        if 0 in target or math.prod(target) != math.prod(shape):
            raise self.fail("bad reshape", found=f"{tuple(shape)} -> {tuple(target)}")
        self._finish_reshape(x, target)

    def _finish_reshape(self, x: str, target: list[int]) -> None:
        y = self.emit("reshape", [x], shape=list(target) or [1])
        self.finish(y, self.node.output[0], scalar=not target)

    def _op_Flatten(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axis = int(self.attr("axis", 1))
        if not -len(shape) <= axis <= len(shape):
            raise self.fail("Flatten axis out of range", found=axis)
        axis = axis + len(shape) if axis < 0 else axis
        self._finish_reshape(x, [math.prod(shape[:axis]), math.prod(shape[axis:])])

    def _axes_input(self) -> list[int] | None:
        return self.attr("axes") if self.opset < 13 else self.const_ints(1)

    def _op_Squeeze(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axes = self._axes_input()
        axes = {a % len(shape) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[a] != 1 for a in axes):
            raise self.fail("Squeeze of an axis that is not 1", found=f"axes {sorted(axes)} of {tuple(shape)}")
        self._finish_reshape(x, [d for i, d in enumerate(shape) if i not in axes])

    def _op_Unsqueeze(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axes = self._axes_input() or []
        rank = len(shape) + len(axes)
        target = list(shape)
        for axis in sorted(a % rank for a in axes):
            target.insert(axis, 1)
        self._finish_reshape(x, target)

    def _op_Transpose(self) -> None:
        x = self.t(0)
        perm = self.attr("perm")
        self.finish(self.emit("transpose", [x], perm=list(perm) if perm is not None else None),
                    self.node.output[0])

    # -- concatenation and slicing -----------------------------------------------------------

    def _op_Concat(self) -> None:
        names = [self.t(i) for i in range(len(self.node.input)) if self.inp(i)]
        axis = int(self.attr("axis", 1 if self.opset < 4 else 0))
        dtypes = {self.dtype(n) for n in names}
        y = self.emit("concat", names, axis=axis) if len(names) > 1 else self.emit("identity", names)
        self.finish(y, self.node.output[0], next(iter(dtypes)) if len(dtypes) == 1 else None)

    def _op_Split(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axis = int(self.attr("axis", 0)) % len(shape)
        outs = self.node.output
        sizes = self.attr("split") if self.opset < 13 else self.const_ints(1)
        if not sizes:
            count = int(self.attr("num_outputs", len(outs))) if self.opset >= 18 else len(outs)
            step = -(-shape[axis] // count)
            sizes = [min(step, shape[axis] - i * step) for i in range(count)]
        if len(sizes) != len(outs) or sum(sizes) != shape[axis] or min(sizes) < 0:
            raise self.fail("split sizes do not fit", found=f"{sizes} of an axis of {shape[axis]}")
        start = 0
        for size, out in zip(sizes, outs):
            if out and size == 0:  # an empty part is known at compile time
                empty = list(shape)
                empty[axis] = 0
                self.known[out] = np.zeros(empty, self.dtype(x))
            elif out:
                if size == shape[axis]:
                    y = self.emit("identity", [x])
                else:
                    y = self.emit("slice", [x], axis=axis, start=start, end=start + size)
                self.finish(y, out)
            start += size

    def _op_Slice(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        rank = len(shape)
        if self.opset < 10:
            starts, ends = list(self.attr("starts")), list(self.attr("ends"))
            axes = list(self.attr("axes") or range(len(starts)))
            steps = [1] * len(starts)
        else:
            starts, ends = self.const_ints(1), self.const_ints(2)
            axes = self.const_ints(3, list(range(len(starts))))
            steps = self.const_ints(4, [1] * len(starts))
        y = x
        for axis, start, end, step in zip(axes, starts, ends, steps):
            axis %= rank
            dim = shape[axis]
            if step == 0:
                raise self.fail("a slice step of 0")
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            if step > 0:
                start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            indices = list(range(start, end, step))
            if not indices:  # an empty result is known at compile time
                empty = list(self.shape(y))
                empty[axis] = 0
                self.known[self.node.output[0]] = np.zeros(empty, self.dtype(x))
                return
            if step > 0 and indices != list(range(dim)):
                y = self.emit("slice", [y], axis=axis, start=start, end=end, step=step)
            elif step < 0:
                y = self.select(y, axis, indices)
        self.finish(y if y != x else self.emit("identity", [x]), self.node.output[0])

    def _op_Gather(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axis = int(self.attr("axis", 0)) % len(shape)
        indices = np.asarray(self.const(1)).astype(np.int64)
        flat = [int(i) + shape[axis] if i < 0 else int(i) for i in indices.reshape(-1)]
        if any(not 0 <= i < shape[axis] for i in flat) or not flat:
            raise self.fail("Gather indices out of range or empty", found=indices.reshape(-1)[:8].tolist())
        position = axis + 4 - len(shape)
        if position == 0 and len(flat) > MAX_RUNS:
            y = self.emit("gather", [x], axis=axis, indices=tuple(flat))
        else:
            y = self.select(x, axis, flat)
        target = shape[:axis] + list(indices.shape) + shape[axis + 1:]
        self.finish(self.reshape_to(y, target), self.node.output[0], self.dtype(x), scalar=not target)

    def _op_GatherElements(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        axis = int(self.attr("axis", 0)) % len(shape)
        indices = np.asarray(self.const(1)).astype(np.int64)
        indices = np.where(indices < 0, indices + shape[axis], indices)
        y = self.emit("gather_elements", [x], axis=axis, indices=tuple(int(i) for i in indices.reshape(-1)),
                      index_shape=tuple(indices.shape))
        self.finish(y, self.node.output[0], self.dtype(x))

    def _op_DepthToSpace(self) -> None:
        attrs = {"blocksize": int(self.attr("blocksize")), "mode": self.attr("mode", "DCR")}
        self.finish(self.emit("depth_to_space", [self.t(0)], **attrs), self.node.output[0])

    def _op_SpaceToDepth(self) -> None:
        self.finish(self.emit("space_to_depth", [self.t(0)], blocksize=int(self.attr("blocksize"))),
                    self.node.output[0])

    # -- padding, tiling, broadcasting -------------------------------------------------------

    def _op_Pad(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        rank = len(shape)
        mode = self.attr("mode", "constant")
        if self.opset < 11:
            pads = list(self.attr("pads" if self.opset >= 2 else "paddings"))
            value = float(self.attr("value", 0.0))
            axes = list(range(rank))
        else:
            pads = self.const_ints(1)
            value = self.const_float(2, 0.0) if self.inp(2) else 0.0
            axes = [a % rank for a in self.const_ints(3, list(range(rank)))]
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise self.fail("unknown Pad mode", found=mode)
        y = x
        for k, axis in enumerate(axes):
            before, after = pads[k], pads[k + len(axes)]
            n = shape[axis]
            if before == 0 and after == 0:
                continue
            source: list[int | None] = []
            for j in range(-before, n + after):
                if 0 <= j < n:
                    source.append(j)
                elif mode == "constant":
                    source.append(None)
                elif mode == "edge":
                    source.append(min(max(j, 0), n - 1))
                elif mode == "wrap":
                    source.append(j % n)
                else:
                    if n < 2 or j < -(n - 1) or j > 2 * (n - 1):
                        raise self.fail("reflect padding wider than the axis", found=f"{before}, {after} of {n}")
                    source.append(-j if j < 0 else 2 * (n - 1) - j)
            if not source:
                raise self.fail("the padded tensor is empty")
            y = self.select(y, axis, source, value)
        self.finish(y if y != x else self.emit("identity", [x]), self.node.output[0], self.dtype(x))

    def _op_Tile(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        repeats = self.const_ints(1)
        y = x
        for axis, r in enumerate(repeats):
            if r < 1:
                raise self.fail("Tile repeats must be at least 1", found=repeats)
            if r > 1:
                y = self.select(y, axis, [j % shape[axis] for j in range(shape[axis] * r)])
        self.finish(y if y != x else self.emit("identity", [x]), self.node.output[0], self.dtype(x))

    def _op_Expand(self) -> None:
        x = self.t(0)
        shape = list(self.shape(x))
        target = list(np.broadcast_shapes(tuple(shape), tuple(self.const_ints(1))))
        y = x
        if len(target) > len(shape):
            shape = [1] * (len(target) - len(shape)) + shape
            y = self.emit("reshape", [x], shape=shape)
        for axis, (have, want) in enumerate(zip(shape, target)):
            if have != want:
                y = self.select(y, axis, [0] * want)
        self.finish(y if y != x else self.emit("identity", [x]), self.node.output[0], self.dtype(x))

    # -- resizing ------------------------------------------------------------------------------

    def _op_Resize(self) -> None:
        self.require_float(0)
        x = self.t(0)
        shape = list(self.shape(x))
        rank = len(shape)
        attrs = {name: self.attr(name) for name in ("antialias", "coordinate_transformation_mode",
                                                    "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                                                    "mode", "nearest_mode", "keep_aspect_ratio_policy")}
        attrs = {k: v for k, v in attrs.items() if v is not None}
        axes = [a % rank for a in (self.attr("axes") or range(rank))]
        if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
            raise self.fail("Resize with tf_crop_and_resize is not supported")
        if self.opset < 11:
            scales, sizes = self.const(1), None
        else:
            scales = self.const(2) if self.inp(2) else None
            sizes = self.const(3) if self.inp(3) else None
        if scales is not None and np.size(scales) == 0:
            scales = None
        if sizes is not None and attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise self.fail("Resize with keep_aspect_ratio_policy other than stretch is not supported",
                            found=attrs["keep_aspect_ratio_policy"])
        attrs.pop("keep_aspect_ratio_policy", None)
        y = x
        for k, axis in enumerate(axes):
            n = shape[axis]
            if sizes is not None:
                out = int(np.asarray(sizes).reshape(-1)[k])
                if out == n:
                    continue
                args, names = [np.asarray([n, out], np.int64)], ["", "", "", "sizes"]
            else:
                scale = float(np.asarray(scales).reshape(-1)[k])
                if scale == 1.0:
                    continue
                args, names = [np.asarray([1.0, scale], np.float32)], ["", "scales"] if self.opset < 11 \
                    else ["", "", "scales"]
            matrix = self._resize_matrix(n, args, names, attrs)
            if attrs.get("mode", "nearest") == "nearest" and np.all(np.isin(matrix, (0.0, 1.0))) \
                    and np.all(matrix.sum(1) == 1):
                y = self.select(y, axis, [int(i) for i in matrix.argmax(1)])
            else:
                y = self.map_axis(y, axis, matrix)
        self.finish(y if y != x else self.emit("identity", [x]), self.node.output[0])

    def _resize_matrix(self, n: int, args: list[np.ndarray], names: list[str], attrs: dict) -> np.ndarray:
        """The (out, n) interpolation matrix of one axis: the reference Resize of an identity."""
        node = self.helper.make_node("Resize", ["X"] + names[1:], ["Y"], **attrs)
        result = evaluate_node(node, [np.eye(n, dtype=np.float32)] + args, ["X"] + names[1:], self.opset)[0]
        return np.asarray(result, np.float32).T

    # -- einsum --------------------------------------------------------------------------------

    def _op_Einsum(self) -> None:
        self.require_float()
        equation = self.attr("equation").replace(" ", "")
        if "..." in equation or "->" not in equation:
            raise self.fail("Einsum needs an explicit output and no ellipsis", found=equation)
        lhs, out = equation.split("->")
        terms = lhs.split(",")
        names = [self.t(i) for i in range(len(terms))]
        if len(terms) == 1:
            self.finish(self._einsum_single(names[0], terms[0], out), self.node.output[0])
            return
        if len(terms) != 2 or any(len(set(t)) != len(t) for t in terms + [out]):
            raise self.fail("Einsum is supported for one or two operands without repeated indices",
                            found=equation)
        a_idx, b_idx = terms
        # Indices in one operand only and not in the output are summed first.
        a = self._einsum_sum(names[0], a_idx, set(b_idx) | set(out))
        b = self._einsum_sum(names[1], b_idx, set(a_idx) | set(out))
        a_idx = "".join(c for c in a_idx if c in set(b_idx) | set(out))
        b_idx = "".join(c for c in b_idx if c in set(a_idx) | set(out))
        batch = [c for c in out if c in a_idx and c in b_idx]
        free_a = [c for c in out if c in a_idx and c not in b_idx]
        free_b = [c for c in out if c in b_idx and c not in a_idx]
        contract = [c for c in a_idx if c in b_idx and c not in out]
        sizes = dict(zip(a_idx, self.shape(a))) | dict(zip(b_idx, self.shape(b)))
        a = self._einsum_arrange(a, a_idx, batch, free_a, contract)
        b = self._einsum_arrange(b, b_idx, batch, contract, free_b)
        y = self.emit("matmul", [a, b])
        full = batch + free_a + free_b
        y = self.emit("reshape", [y], shape=[sizes[c] for c in full] or [1])
        if full != list(out):
            y = self.emit("transpose", [y], perm=[full.index(c) for c in out])
        self.finish(y, self.node.output[0])

    def _einsum_sum(self, x: str, idx: str, keep: set[str]) -> str:
        drop = [i for i, c in enumerate(idx) if c not in keep]
        return self.reduce(x, "reduce_sum", drop, False) if drop else x

    def _einsum_arrange(self, x: str, idx: str, batch: list[str], rows: list[str], cols: list[str]) -> str:
        """``x`` as (batch..., rows, cols), rows and columns each merged into one axis."""
        order = batch + rows + cols
        if list(idx) != order:
            x = self.emit("transpose", [x], perm=[idx.index(c) for c in order])
        sizes = dict(zip(order, self.b.graph.info(x).shape))
        target = [sizes[c] for c in batch] + [math.prod(sizes[c] for c in rows),
                                              math.prod(sizes[c] for c in cols)]
        if len(target) > 4:
            target = [math.prod(target[:-2])] + target[-2:]
        return self.emit("reshape", [x], shape=target) if list(self.b.graph.info(x).shape) != target else x

    def _einsum_single(self, x: str, idx: str, out: str) -> str:
        if len(set(idx)) != len(idx):
            raise self.fail("Einsum with a repeated index (a diagonal or trace) is not supported")
        x = self._einsum_sum(x, idx, set(out))
        idx = "".join(c for c in idx if c in out)
        if idx != out:
            x = self.emit("transpose", [x], perm=[idx.index(c) for c in out])
        return x if x != self.inp(0) else self.emit("identity", [x])

