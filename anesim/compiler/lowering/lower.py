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

from anesim.compiler.lowering.attention import AttentionOps
from anesim.compiler.lowering.elementwise import BINARY_PLANAR, ElementwiseOps
from anesim.compiler.lowering.eops import EOp
from anesim.compiler.lowering.fusion import LUT_UNARY
from anesim.compiler.lowering.layout import LayoutOps
from anesim.compiler.lowering.views import reshape_view
from anesim.errors import CompileError


class SegmentLowerer(AttentionOps, ElementwiseOps, LayoutOps):
    """Turns the nodes of one segment into :class:`EOp` s over :class:`Buffer` views.

    The op families live in their own modules (attention over products and reductions,
    elementwise, layout, on top of epilogue fusion, broadcast/reduce primitives and the segment's buffers); this
    class walks the nodes and sends each to its handler, ``_op_<name>`` or a family handler.
    """

    def run(self) -> list[EOp]:
        """Lower every engine node in order; host nodes split the ops into segments.

        ``self.timeline`` records the result: ``("engine", first_op, end_op)`` runs of engine
        ops and ``("host", node, reason)`` entries between them.
        """
        host = self.host
        self.timeline: list[tuple] = []
        start = 0
        made: set[str] = set()  # values the engine nodes visited so far compute
        for node in self.nodes:
            if node.name in host:
                # Every segment output made so far is written out before the cut: an output
                # that is a view (an identity, a reshape) of a value in this segment is
                # otherwise copied in a later segment, which cannot read this one's
                # intermediates (they are not segment inputs).
                self._finish_outputs([o for o in self.outputs if o in made])
                if len(self.eops) > start:
                    self.timeline.append(("engine", start, len(self.eops)))
                    start = len(self.eops)
                self.timeline.append(("host", node, host[node.name]))
                continue
            made.add(node.output)
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
