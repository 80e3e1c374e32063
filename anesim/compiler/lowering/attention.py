"""Scaled dot-product attention as one block whose scores never leave the chip.

A matrix product whose result, after constant scales the NE epilogue holds, feeds only a softmax
over the rows of each plane (the keys, when the scores are ``(N, heads, S_k, S_q)``), whose
result feeds only the right operand of a second product, is attention in the channel-first
layout Apple recommends for the engine: the product writes each plane's rows as channels, so
the keys are on the channel axis, the softmax reduces along it, and the second product reads
the probabilities as its data, not as run-time weights. Such a block is lowered plane by plane
(every head of every image) and, when a head's scores exceed the working set, in column tiles
of queries: scores, softmax stages and context of one tile are emitted together and every
temporary stays in the pool (guide ch. 22: the attention block is what the compiler's co-issue
filter selects, a softmax on the planar engine next to the value product on the MAC array;
App. B: the fused attention atom keeps "the channel axis holding the sequence"; ch. 18: a
fused attention route is 3.7-5.3x faster because it removes intermediate round trips). The
arithmetic is that of the three ops lowered one by one.
"""

from __future__ import annotations

import math

from anesim.compiler.graph.graph import Node, as_nchw, axis_nchw
from anesim.compiler.lowering.eops import NeSpec
from anesim.compiler.lowering.products import ProductOps
from anesim.compiler.lowering.reductions import SOFTMAX_TILE_TENSORS, ReductionOps
from anesim.compiler.lowering.views import Buffer, slice_view

# Ops after the scores product that its epilogue holds (a scalar gain or offset).
_SCALAR_EPILOGUE = ("scale", "mul", "div", "add", "sub", "neg")
# Full-size tensors of one tile live at once: one. The softmax's stages each read one full-size
# tensor and write the next (scores -> shifted -> exponentials -> probabilities); every input
# dies with the stage that reads it, so the memory plan writes each stage in place over the one
# before (allocation type 4, guide ch. 22). The per-query maximum and sum are one row each, read
# through a zero stride (the planar engine's broadcast), and are not counted, as the op-by-op
# softmax's row tiles count only full-size tensors.
TILE_TENSORS = 1
COLUMN_STEP = 32  # query columns per tile step: 64 bytes of fp16, so every tile starts a row


class AttentionOps(ProductOps, ReductionOps):
    """Lowers a product -> softmax over keys -> product chain as one on-chip block."""

    def _op_matmul(self, node: Node) -> None:
        route = self._attention_route(node)
        if route is None:
            super()._op_matmul(node)
            return
        scores, softmax, context = route
        template = NeSpec("conv")
        out = self.absorb(node.output, template, channel_ok=False)
        if out != scores:  # the epilogue held less than the route assumed: lower op by op
            self.matmul_into(node, template, self.dest_for(out))
            return
        self._attention_block(node, template, softmax, context)

    def _single_reader(self, name: str) -> Node | None:
        users = self.consumers.get(name, [])
        if (len(users) != 1 or name in self.outputs or name in self.alias or name in self.back_reshape
                or users[0].name in self.host or users[0].inputs.count(name) != 1):
            return None
        return users[0]

    def _scalar_epilogue(self, y: Node, t: str) -> bool:
        """True when the NE epilogue folds ``y`` (an op on ``t``) as a scalar gain or offset."""
        if y.op not in _SCALAR_EPILOGUE or self.g.info(y.output).shape != self.g.info(t).shape:
            return False
        if y.op == "scale":
            return float(y.attrs["scale"]) != 0.0
        if y.op == "neg":
            return True
        other = y.inputs[1] if y.inputs[0] == t else y.inputs[0]
        if other not in self.g.constants or (y.op == "div" and y.inputs[0] != t):
            return False
        data = self.g.constants[other].data
        if math.prod(data.shape) != 1 or len(data.shape) > len(self.g.info(t).shape):
            return False
        return y.op not in ("mul", "div") or data.scalar_value() != 0.0

    def _attention_route(self, node: Node) -> tuple[str, Node, Node] | None:
        """(scores tensor, softmax node, context node) when ``node`` starts an attention block."""
        if node.attrs["transpose_b"] or node.inputs[1] in self.g.constants:
            return None
        t = node.output
        y = self._single_reader(t)
        while y is not None and y.op != "softmax":
            if not self._scalar_epilogue(y, t):
                return None
            t = y.output
            y = self._single_reader(t)
        if y is None or axis_nchw(y.attrs["axis"], len(self.g.info(t).shape)) != 2:
            return None
        context = self._single_reader(y.output)
        if (context is None or context.op != "matmul" or context.inputs[1] != y.output
                or context.attrs["transpose_b"]):
            return None
        weights = context.inputs[0]
        if weights not in self.storage and weights not in self.g.constants:
            return None  # computed later in the walk: the block cannot run here
        n, c, keys, s_q = as_nchw(self.g.info(t).shape)
        cn, cc, _, cs_q = as_nchw(self.g.info(context.output).shape)
        if (cn, cc, cs_q) != (n, c, s_q):
            return None
        # (as the op-by-op softmax sizes its row tiles: the staged input beside its temporaries)
        whole = Buffer(0, "", "", n, c, keys, s_q).nbytes
        if (SOFTMAX_TILE_TENSORS + 1) * whole <= self.chip.memory.working_set_cap_bytes.value:
            return None  # op by op, the softmax's temporaries already stay in the pool
        return t, y, context

    def _query_tile(self, keys: int, queries: int) -> int:
        """Query columns per tile: all of them, or the most whose tile tensors fit the cap."""
        cap = self.chip.memory.working_set_cap_bytes.value

        def need(columns: int) -> int:
            return TILE_TENSORS * Buffer(0, "", "", 1, 1, keys, columns).nbytes

        if need(queries) <= cap:
            return queries
        columns = COLUMN_STEP
        while columns + COLUMN_STEP < queries and need(columns + COLUMN_STEP) <= cap:
            columns += COLUMN_STEP
        return columns

    def _attention_block(self, node: Node, template: NeSpec, softmax: Node, context: Node) -> None:
        """Scores, softmax and context, plane by plane and tile by tile, temporaries on chip."""
        template2 = NeSpec("conv")
        dest = self.dest_for(self.absorb(context.output, template2, channel_ok=False))
        self.fused.update({softmax.name, context.name})
        n_out, c_out, keys, queries = as_nchw(self.g.info(softmax.output).shape)
        data = self.product_data(node)
        a1 = None if node.inputs[0] in self.g.constants else self.src(node.inputs[0])
        a2 = None if context.inputs[0] in self.g.constants else self.src(context.inputs[0])
        columns = self._query_tile(keys, queries)
        self.on_chip = True
        try:
            for n in range(n_out):
                for c in range(c_out):
                    q_plane = data.plane(min(n, data.n - 1), min(c, data.c - 1)).rows_as_channels()
                    out_plane = dest.plane(n, c).rows_as_channels()
                    for start in range(0, queries, columns):
                        count = min(columns, queries - start)
                        q_tile = slice_view(q_plane, 3, start, count, 1)
                        out_tile = slice_view(out_plane, 3, start, count, 1)
                        assert q_tile is not None and out_tile is not None
                        scores = self.temp((1, 1, keys, count), f"{softmax.name}.scores")
                        self.plane_product(node, template, a1, (n, c), q_tile, scores.rows_as_channels())
                        probs = self.temp((1, 1, keys, count), f"{softmax.name}.probs")
                        self._softmax(softmax, scores, probs, 2)
                        self.plane_product(context, template2, a2, (n, c), probs.rows_as_channels(), out_tile)
        finally:
            self.on_chip = False
