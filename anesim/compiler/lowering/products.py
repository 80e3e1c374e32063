"""Convolutions, linear layers, batch norms and matrix products: the NE ops with a kernel.

A linear layer is a 1x1 convolution over channels; a batch norm on its own is a depthwise 1x1
convolution. A matrix product with a constant left operand is a 1x1 convolution; otherwise its
weights are read from a tensor at run time (command-stream.md App. A: the H13 matmul sample
reads A from an input slot). Both operands are addressed as strided views, so no data moves.
"""

from __future__ import annotations

import zlib

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Node, as_nchw
from anesim.compiler.lowering.eops import EOp, NeSpec
from anesim.compiler.lowering.fusion import EpilogueFusion
from anesim.compiler.lowering.kernels import KernelSource
from anesim.compiler.lowering.segment import values_kernel
from anesim.compiler.lowering.views import View, reshape_view
from anesim.errors import CompileError


class ProductOps(EpilogueFusion):
    """Lowers the ops that multiply by weights on the NE."""

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
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=ne.copy()))

    def _op_linear(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        cout, cin = self.g.info(node.inputs[1]).shape
        ne = NeSpec("conv", self._kernel_of(node, node.inputs[1], (cout, cin, 1, 1)),
                    bias=self._bias_of(node, 2))
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=ne.copy()))

    def _op_batch_norm(self, node: Node) -> None:
        x = self.src(node.inputs[0])
        c = x.c
        params = [self.g.constants[p].data for p in node.inputs[1:]]
        eps = float(node.attrs["eps"])
        gamma, beta, mean, var = (p.array().reshape(-1) for p in params)
        with np.errstate(all="ignore"):  # (a negative variance: NaN, as the formula gives)
            g = gamma / np.sqrt(var + eps)
            bias = (beta - mean * g).astype(np.float32)
        ne = NeSpec("conv", values_kernel((c, 1, 1, 1), lambda: g, "batch-norm gain"), groups=c, bias=bias)
        out = self.absorb(node.output, ne, channel_ok=True)
        dest = self.dest_for(out)
        for i in range(x.n):
            self.emit(EOp(node.name, node.describe(), [x.image(i)], dest.image(i), ne=ne.copy()))

    def _op_matmul(self, node: Node) -> None:
        template = NeSpec("conv")
        out = self.absorb(node.output, template, channel_ok=False)
        self.matmul_into(node, template, self.dest_for(out))

    def matmul_into(self, node: Node, template: NeSpec, dest: View) -> None:
        """Every (n, c) plane of a matrix product with the epilogue ``template``, into ``dest``."""
        a_name, b_name = node.inputs
        ta = bool(node.attrs["transpose_a"])
        n_out, c_out, m, ncols = as_nchw(self.g.info(node.output).shape)
        an, ac, ar, acol = as_nchw(self.g.info(a_name).shape)
        bn, bc, br, bcol = as_nchw(self.g.info(b_name).shape)
        k = ar if ta else acol
        b_view = self.product_data(node)
        a_view = None if a_name in self.g.constants else self.src(a_name)
        if a_view is not None and ta and c_out > 1 and self._grouped_matmul(
                node, a_view, b_view, dest, template, (an, ac, bn, bc), (c_out, m, k, ncols), n_out):
            return
        if a_view is not None and not ta and self._stacked_matmul(node, a_view, b_view, dest, template,
                                                                  (an, ac, bn, bc), (n_out, c_out, m, k, ncols)):
            return
        for n in range(n_out):
            for c in range(c_out):
                data_view = b_view.plane(min(n, bn - 1), min(c, bc - 1)).rows_as_channels()
                self.plane_product(node, template, a_view, (n, c), data_view,
                                   dest.plane(n, c).rows_as_channels())

    def product_data(self, node: Node) -> View:
        """The right operand of a matrix product (a constant is transposed at compile time)."""
        b_name = node.inputs[1]
        if b_name not in self.g.constants:
            return self.src(b_name)
        data = self.g.constants[b_name].data
        if not node.attrs["transpose_b"]:
            return self.const_view(b_name)
        shape_t = data.shape[:-2] + (data.shape[-1], data.shape[-2])
        data = ConstantData.derived(shape_t, lambda d=data: np.swapaxes(d.array(), -1, -2), "transposed")
        return self.const_view(f"{b_name}^T", data, shape_t)

    def plane_product(self, node: Node, template: NeSpec, a_view: View | None, plane: tuple[int, int],
                      data: View, dest: View) -> None:
        """One (n, c) plane of ``node``'s product: ``data`` (rows as channels) times plane ``a``.

        A constant ``a`` becomes a kernel; a tensor ``a`` supplies the weights at run time.
        ``data`` and ``dest`` may be column slices of the plane (the weights are the same).
        """
        a_name = node.inputs[0]
        ta = bool(node.attrs["transpose_a"])
        an, ac, ar, acol = as_nchw(self.g.info(a_name).shape)
        m, k = (acol, ar) if ta else (ar, acol)
        n, c = plane
        if a_view is None:
            adata = self.g.constants[a_name].data
            idx = (min(n, an - 1), min(c, ac - 1))

            def make(adata: ConstantData = adata, idx: tuple[int, int] = idx) -> np.ndarray:
                mat = adata.array().reshape(as_nchw(adata.shape))[idx]
                return (mat.T if ta else mat).reshape(m, k, 1, 1)

            spec = template.copy(kernel=KernelSource((m, k, 1, 1), make, "fp16", 0, "matrix"))
            self.emit(EOp(node.name, node.describe(), [data], dest, ne=spec))
            return
        weights = a_view.plane(min(n, an - 1), min(c, ac - 1))
        self.emit(EOp(node.name, node.describe(), [data], dest, ne=template.copy(),
                      weights_view=weights.rows_as_channels() if ta else weights, weights_by_row=not ta))

    def _stacked_matmul(self, node: Node, a_view: View, b_view: View, dest: View, template: NeSpec,
                        counts: tuple[int, int, int, int], dims: tuple[int, int, int, int, int]) -> bool:
        """Planes A_(n,c) B that share their right operand B as products of stacked planes: the
        rows of A of as many planes as the engine's channel limit takes, one output channel each.
        Every plane shares B when B has no leading axes; the channels of an image share it when B
        has none on C. (A batch of 4,096 x 16 small products was 65,536 tasks.) Each output is the
        same dot product over k as plane by plane. Only where strides can say the stack."""
        an, ac, bn, bc = counts
        n_out, c_out, m, k, ncols = dims
        if (bn, bc) == (1, 1) and (an, ac) == (n_out, c_out) and n_out * c_out > 1:  # every plane
            groups = [(a_view, b_view.plane(0, 0), dest, n_out * c_out)]
        elif bc == 1 and ac == c_out and c_out > 1:  # the channels of each image
            groups = [(a_view.image(min(n, an - 1)), b_view.plane(min(n, bn - 1), 0), dest.image(n), c_out)
                      for n in range(n_out)]
        else:
            return False
        step = max(1, self.limits.max_dimension // m) * m  # (whole planes per product)
        pieces = []
        for a_part, b_plane, d_part, planes in groups:
            rows = planes * m
            weights = reshape_view(a_part, (1, 1, rows, k))
            out = reshape_view(d_part, (1, 1, rows, ncols))
            if weights is None or out is None:
                return False
            data = b_plane.rows_as_channels()
            for r0 in range(0, rows, step):
                count = min(step, rows - r0)
                pieces.append((data, weights._replace(offset=weights.offset + r0 * weights.sh, h=count),
                               out._replace(offset=out.offset + r0 * out.sh, h=count)))
        for data, w_rows, o_rows in pieces:
            self.emit(EOp(node.name, node.describe(), [data], o_rows.rows_as_channels(), ne=template.copy(),
                          weights_view=w_rows, weights_by_row=True))
        return True

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
            self.emit(EOp(node.name, node.describe(), [data], out, ne=template.copy(groups=c_out),
                          weights_view=weights, weights_by_row=False))
        return True
