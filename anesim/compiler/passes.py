"""Graph-to-graph rewrites that run before lowering.

- Constant folding: an op whose inputs are all constants becomes a derived constant (computed
  lazily, so folding a transpose of a 100 MB weight costs nothing until it is needed).
- Transpose folding: a transpose of the last two axes that only feeds matrix products becomes
  the product's ``transpose_a``/``transpose_b`` flag (the compiler's matmul lowering takes the
  contraction direction as attributes, guide ch. 22).
- Batch-norm folding: a batch norm after a convolution or linear layer folds into its weights
  and bias (guide ch. 22, ``FoldScale``/``FoldWeightsWithScale``).
"""

from __future__ import annotations

import copy

import numpy as np

from anesim.compiler.constants import ConstantData
from anesim.compiler.graph import Constant, Graph, Node
from anesim.compiler.reference import run_node

VIEW_LIKE_FOLDABLE = True


def clone(graph: Graph) -> Graph:
    """A copy of the graph whose node list and tables can be rewritten freely."""
    out = Graph(graph.name, dict(graph.inputs), dict(graph.constants),
                [copy.copy(n) for n in graph.nodes], list(graph.outputs), dict(graph.values),
                graph.source)
    for node in out.nodes:
        node.attrs = dict(node.attrs)
    return out


def fold_constants(graph: Graph) -> Graph:
    """Turn ops whose inputs are all constants into lazily computed constants."""
    g = clone(graph)
    kept: list[Node] = []
    for node in g.nodes:
        if node.inputs and all(i in g.constants for i in node.inputs) and node.output not in g.outputs:
            deps = [g.constants[i].data for i in node.inputs]
            frozen = copy.copy(node)

            def make(deps: list[ConstantData] = deps, frozen: Node = frozen) -> np.ndarray:
                return run_node(frozen, [d.array() for d in deps])

            info = g.info(node.output)
            g.constants[node.output] = Constant(
                node.output, ConstantData.derived(info.shape, make, f"folded {node.op}"))
        else:
            kept.append(node)
    g.nodes = kept
    return g


def fold_transposes(graph: Graph) -> Graph:
    """Fold last-two-axes transposes into the matrix products that read them."""
    g = clone(graph)
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


def fold_batch_norms(graph: Graph) -> Graph:
    """Fold batch norms into the convolution or linear layer in front of them."""
    g = clone(graph)
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
        from anesim.compiler.graph import TensorInfo

        g.values[w_name] = TensorInfo(w_name, w_data.shape)
        g.values[b_name] = TensorInfo(b_name, (cout,))
        prod.inputs = (prod.inputs[0], w_name, b_name)
        old_out = prod.output
        prod.output = bn.output
        g.values.pop(old_out, None)
        g.nodes.remove(bn)
    return g


def drop_identities(graph: Graph) -> Graph:
    """Read through identity ops (block returns, no-op casts) unless they name an output."""
    g = clone(graph)
    rename: dict[str, str] = {}
    kept = []
    for node in g.nodes:
        node.inputs = tuple(rename.get(i, i) for i in node.inputs)
        if node.op == "identity" and node.output not in g.outputs:
            rename[node.output] = node.inputs[0]
            continue
        kept.append(node)
    g.nodes = kept
    return g


def drop_dead(graph: Graph) -> Graph:
    """Remove ops whose results nothing reads and that are not outputs."""
    g = clone(graph)
    live = set(g.outputs)
    kept: list[Node] = []
    for node in reversed(g.nodes):
        if node.output in live:
            kept.append(node)
            live.update(node.inputs)
    g.nodes = kept[::-1]
    return g


def run_passes(graph: Graph) -> Graph:
    """Every pre-lowering rewrite, in order."""
    return drop_dead(fold_batch_norms(fold_transposes(fold_constants(drop_identities(graph)))))
