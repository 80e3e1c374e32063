"""Graph-to-graph rewrites that run before lowering.

- Constant folding: an op whose inputs are all constants becomes a derived constant (computed
  lazily, so folding a transpose of a 100 MB weight costs nothing until it is needed).
- Transpose folding: a transpose of the last two axes that only feeds matrix products becomes
  the product's ``transpose_a``/``transpose_b`` flag (the compiler's matmul lowering takes the
  contraction direction as attributes, guide ch. 22).
- Batch-norm folding: a batch norm after a convolution or linear layer folds into its weights
  and bias (guide ch. 22, ``FoldScale``/``FoldWeightsWithScale``).

Each pass rewrites the graph it is given in place and returns it; :func:`run_passes` copies the
caller's graph once and runs them all on the copy (one copy per pass was a tenth of a large
model's compile).
"""

from __future__ import annotations

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Constant, Graph, Node
from anesim.compiler.reference.ops import run_node


def clone(graph: Graph) -> Graph:
    """A copy of the graph whose node list, nodes, attributes and tables can be rewritten freely."""
    return Graph(graph.name, dict(graph.inputs), dict(graph.constants),
                 [n.copy() for n in graph.nodes], list(graph.outputs), dict(graph.values),
                 graph.source, set(graph.scalar_outputs), dict(graph.output_types), list(graph.approximations))


def fold_constants(g: Graph) -> Graph:
    """Turn ops whose inputs are all constants into lazily computed constants."""
    kept: list[Node] = []
    for node in g.nodes:
        if node.inputs and all(i in g.constants for i in node.inputs) and node.output not in g.outputs:
            deps = [g.constants[i].data for i in node.inputs]
            frozen = node.copy()

            def make(deps: list[ConstantData] = deps, frozen: Node = frozen) -> np.ndarray:
                return run_node(frozen, [d.array() for d in deps])

            info = g.info(node.output)
            g.constants[node.output] = Constant(
                node.output, ConstantData.derived(info.shape, make, f"folded {node.op}"))
        else:
            kept.append(node)
    g.nodes = kept
    return g


def fold_transposes(g: Graph) -> Graph:
    """Fold last-two-axes transposes into the matrix products that read them."""
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes):
            if node.op != "transpose" or node.output in g.outputs:
                continue
            rank = len(g.info(node.inputs[0]).shape)
            swap = tuple(range(rank - 2)) + (rank - 1, rank - 2)
            if rank < 2 or tuple(node.attrs["perm"]) != swap:
                continue
            users = g.consumers(node.output)
            if not users or any(u.op != "matmul" for u in users):
                continue
            source = node.inputs[0]
            ok = True
            for user in users:
                if user.inputs[1] == node.output and not user.attrs["transpose_b"] \
                        and source not in g.constants:
                    ok = False  # the engine cannot read a transposed right operand
            if not ok:
                continue
            for user in users:
                ins = list(user.inputs)
                for pos, key in ((0, "transpose_a"), (1, "transpose_b")):
                    if ins[pos] == node.output:
                        ins[pos] = source
                        user.attrs[key] = not user.attrs[key]
                user.inputs = tuple(ins)
            g.nodes.remove(node)
            changed = True
    return g


def fold_batch_norms(g: Graph) -> Graph:
    """Fold batch norms into the convolution or linear layer in front of them."""
    for bn in [n for n in g.nodes if n.op == "batch_norm"]:
        prod = g.producer(bn.inputs[0])
        if prod is None or prod.op not in ("conv2d", "linear") or bn.inputs[0] in g.outputs:
            continue
        if len(g.consumers(bn.inputs[0])) != 1 or prod.inputs[1] not in g.constants:
            continue
        if any(p not in g.constants for p in bn.inputs[1:]):
            continue
        if len(prod.inputs) > 2 and prod.inputs[2] not in g.constants:
            continue
        params = [g.constants[p].data for p in bn.inputs[1:]]
        eps = float(bn.attrs["eps"])
        w_data = g.constants[prod.inputs[1]].data
        b_data = g.constants[prod.inputs[2]].data if len(prod.inputs) > 2 else None
        cout = w_data.shape[0]

        def factor(params: list[ConstantData] = params, eps: float = eps) -> np.ndarray:
            gamma, _, _, var = (p.array().reshape(-1) for p in params)
            return gamma / np.sqrt(var + eps)

        def weight(w: ConstantData = w_data, f=factor) -> np.ndarray:
            arr = w.array()
            return arr * f().reshape((-1,) + (1,) * (arr.ndim - 1))

        def bias(b: ConstantData | None = b_data, params: list[ConstantData] = params, f=factor,
                 cout: int = cout) -> np.ndarray:
            _, beta, mean, _ = (p.array().reshape(-1) for p in params)
            b0 = b.array().reshape(-1) if b is not None else np.zeros(cout, np.float32)
            return (b0 - mean) * f() + beta

        w_name, b_name = f"{prod.name}.folded_weight", f"{prod.name}.folded_bias"
        g.constants[w_name] = Constant(w_name, ConstantData.derived(w_data.shape, weight, "batch norm folded"))
        g.constants[b_name] = Constant(b_name, ConstantData.derived((cout,), bias, "batch norm folded"))
        from anesim.compiler.graph.graph import TensorInfo

        g.values[w_name] = TensorInfo(w_name, w_data.shape)
        g.values[b_name] = TensorInfo(b_name, (cout,))
        prod.inputs = (prod.inputs[0], w_name, b_name)
        old_out = prod.output
        prod.output = bn.output
        g.values.pop(old_out, None)
        g.nodes.remove(bn)
    return g


def drop_identities(g: Graph) -> Graph:
    """Read through identity ops (block returns, no-op casts) unless they name an output."""
    rename: dict[str, str] = {}
    kept: list[Node] = []
    producers: dict[str, Node] = {}
    uses: dict[str, int] = {}
    for node in g.nodes:
        for i in node.inputs:
            uses[i] = uses.get(i, 0) + 1
    for node in g.nodes:
        node.inputs = tuple(rename.get(i, i) for i in node.inputs)
        if node.op == "identity" and node.output not in g.outputs:
            rename[node.output] = node.inputs[0]
            continue
        src = node.inputs[0] if node.inputs else ""
        prod = producers.get(src)
        if (node.op == "identity" and prod is not None and src not in g.outputs
                and uses.get(src, 0) == 1 and src not in rename.values()):
            # An output that only renames its producer's result: the producer writes it directly.
            g.values.pop(src, None)
            prod.output = node.output
            producers[node.output] = prod
            continue
        producers[node.output] = node
        kept.append(node)
    g.nodes = kept
    return g


def drop_dead(g: Graph) -> Graph:
    """Remove ops whose results nothing reads and that are not outputs."""
    live = set(g.outputs)
    kept: list[Node] = []
    for node in reversed(g.nodes):
        if node.output in live:
            kept.append(node)
            live.update(node.inputs)
    g.nodes = kept[::-1]
    return g


def _flat(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] == 1 and shape[3] == 1


def sink_flattens(g: Graph) -> Graph:
    """Keep classifier heads channel-first: move a (N, C, 1, 1) -> (N, C) flatten past the ops after it.

    Features-last models flatten pooled features before their fully connected layers. Flattening
    moves the channel axis into the width axis, which only the host can do; done after the head
    (products with constant weights, constant-broadcast elementwise ops, activations, softmax)
    it costs nothing, because the outputs are copied out by the host anyway.
    """
    from anesim.compiler.graph.graph import TensorInfo

    changed = True
    while changed:
        changed = False
        for r in [n for n in g.nodes if n.op == "reshape"]:
            src = g.info(r.inputs[0]).shape
            dst = g.info(r.output).shape
            if not (_flat(src) and dst == (src[0], src[1])) or r.output in g.outputs:
                continue
            users = g.consumers(r.output)
            if len(users) != 1:
                continue
            y = users[0]
            rewritten = _channel_first(g, y, r, TensorInfo)
            if rewritten:
                changed = True
                break
    return g


def _channel_first(g: Graph, y: Node, r: Node, TensorInfo: type) -> bool:
    """Rewrite ``y`` (reading the flatten ``r``) to work on the channel-first tensor; True if done."""
    x = r.inputs[0]
    n, c = g.info(r.output).shape
    flat_in = r.output
    other = [i for i in y.inputs if i != flat_in]
    new_shape: tuple[int, ...]
    if y.op == "matmul" and y.inputs[0] == flat_in and len(y.inputs) == 2 and y.inputs[1] in g.constants \
            and not y.attrs["transpose_a"]:
        w = g.constants[y.inputs[1]].data
        tb = y.attrs["transpose_b"]
        k = w.shape[0] if tb else w.shape[1]
        name = f"{y.name}.weight_cf"
        g.constants[name] = Constant(name, ConstantData.derived(
            (k, c), (lambda d=w: d.array()) if tb else (lambda d=w: d.array().T), "linear weight"))
        g.values[name] = TensorInfo(name, (k, c))
        y.op, y.inputs, y.attrs = "linear", (x, name), {"weight_format": "fp16", "palette_bits": 4}
        new_shape = (n, k, 1, 1)
    elif y.op in ("add", "sub", "mul", "div", "max", "min") and len(other) == 1 and other[0] in g.constants:
        const = g.constants[other[0]].data
        if const.shape not in ((c,), (1, c)) or g.info(y.output).shape != (n, c):
            return False
        name = f"{other[0]}.cf"
        if name not in g.constants:
            g.constants[name] = Constant(name, ConstantData.derived(
                (1, c, 1, 1), lambda d=const: d.array().reshape(1, -1, 1, 1), "per-channel"))
            g.values[name] = TensorInfo(name, (1, c, 1, 1))
        y.inputs = tuple(x if i == flat_in else name for i in y.inputs)
        new_shape = (n, c, 1, 1)
    elif y.op == "softmax" and y.attrs["axis"] in (1, -1):
        y.inputs = (x,)
        y.attrs = {"axis": 1}
        new_shape = (n, c, 1, 1)
    elif len(y.inputs) == 1 and y.op in ("relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "exp", "scale",
                                          "leaky_relu", "clip", "identity", "neg", "abs"):
        y.inputs = (x,)
        new_shape = (n, c, 1, 1)
    else:
        return False
    # y now computes the channel-first value; the flatten moves after it
    out = y.output
    cf = f"{out}.cf"
    y.output = cf
    g.values[cf] = TensorInfo(cf, new_shape)
    r.inputs = (cf,)
    r.attrs = {**r.attrs, "shape": (new_shape[0], new_shape[1])}
    old_out = r.output
    r.output = out
    g.values.pop(old_out, None)
    g.values[out] = TensorInfo(out, (new_shape[0], new_shape[1]))
    g.nodes.remove(r)
    g.nodes.insert(g.nodes.index(y) + 1, r)
    return True


def keep_reduced_axes(g: Graph) -> Graph:
    """Split a reduction that drops its axis into one that keeps it and a reshape after it.

    The engine writes a reduction with the reduced axis kept (size one); dropping it moves the
    axes after it, which is a layout change like any reshape. As a reshape node of its own it is
    placed like one: a view of the result where the layout allows, the host where it does not.
    """
    from anesim.compiler.graph.graph import TensorInfo
    from anesim.compiler.graph.ops import REDUCE_OPS

    nodes: list[Node] = []
    for node in g.nodes:
        nodes.append(node)
        if node.op not in REDUCE_OPS or node.attrs.get("keepdims", True):
            continue
        dropped = g.info(node.output)
        if not dropped.shape:
            continue  # (a rank-1 tensor reduced to a scalar: nothing to reshape to)
        src = g.info(node.inputs[0]).shape
        axis = node.attrs["axis"] % len(src)
        kept = f"{node.output}.kept"
        g.values[kept] = TensorInfo(kept, tuple(1 if i == axis else d for i, d in enumerate(src)), dropped.dtype)
        nodes.append(Node(f"{node.name}.squeeze", "reshape", (kept,), node.output, {"shape": dropped.shape},
                          node.where))
        node.output = kept
        node.attrs["keepdims"] = True
    g.nodes = nodes
    return g


def run_passes(graph: Graph) -> Graph:
    """Every pre-lowering rewrite, in order, on a copy of the graph (``graph`` is left as it is)."""
    g = fold_constants(drop_identities(clone(graph)))
    return drop_dead(fold_batch_norms(fold_transposes(sink_flattens(keep_reduced_axes(g)))))
