"""Workload families: build each measured workload through the builder API, and count its work.

A family turns the ``params`` of a trace row into a :class:`~anesim.compiler.graph.Graph` (one
program, one dispatch) and says how much work the source counted for it: FLOPs (2 per MAC,
the sources' convention) and bytes (what the source divided by its latency). Tensors use the
engine's channel-first layout: a matrix with ``M`` rows of ``K`` features is ``(1, K, 1, M)``,
so a linear layer is a 1x1 convolution, as Apple's compiler lowers it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anesim.compiler import Builder, Graph, Tensor
from anesim.errors import UnsupportedError

Params = dict[str, Any]


@dataclass(frozen=True)
class Family:
    """How to build one family's program and count the work its sources divided by."""

    name: str
    build: Callable[[Params], Graph]
    flops: Callable[[Params], float] | None = None
    bytes: Callable[[Params], float] | None = None
    doc: str = ""


def _name(family: str, p: Params) -> str:
    # The name identifies the workload exactly: the timer caches compiled programs by it.
    return family + json.dumps(p, sort_keys=True, separators=(",", ":"))


# ----------------------------------------------------------------------------- matmuls


def _weights(p: Params) -> dict[str, Any]:
    """Builder weight-format arguments for the row's weight encoding."""
    fmt = p.get("weights", "fp16")
    if fmt == "fp16":
        return {}
    if fmt == "int8":
        return {"weight_format": "int8"}
    if fmt == "int4":
        return {"weight_format": "palette", "palette_bits": int(p.get("palette_bits", 4))}
    if fmt == "sparse":
        return {"sparsity": float(p["sparsity"])}
    raise UnsupportedError("weight format has no builder equivalent", found=repr(fmt),
                           expected="fp16, int8, int4 (palette) or sparse")


def build_gemm(p: Params) -> Graph:
    """One linear layer: an M x K activation times a K x N weight (ANEForge's af.linear)."""
    b = Builder(_name("gemm", p))
    x = b.input("x", (1, p["k"], 1, p["m"]))
    b.output(b.linear(x, p["n"], name="fc", **_weights(p)))
    return b.build()


def gemm_flops(p: Params) -> float:
    """2 * M * K * N."""
    return 2.0 * p["m"] * p["k"] * p["n"]


def build_gemv(p: Params) -> Graph:
    """A decode GEMV: one row of K features times a K x N weight."""
    return build_gemm({**p, "m": 1})


def gemv_flops(p: Params) -> float:
    """2 * K * N."""
    return 2.0 * p["k"] * p["n"]


def gemv_bytes(p: Params) -> float:
    """(K*N + K + N) * 2 B, or the weights alone (K*N*2 B) when the source counted only those."""
    if p.get("byte_count") == "weights":
        return 2.0 * p["k"] * p["n"]
    return 2.0 * (p["k"] * p["n"] + p["k"] + p["n"])


def build_matmul_chain(p: Params) -> Graph:
    """``depth`` linear layers in one program, each [M x K] @ [K x N] with K = N."""
    b = Builder(_name("matmul_chain", p))
    x: Tensor = b.input("x", (1, p["k"], 1, p["m"]))
    for i in range(int(p["depth"])):
        x = b.linear(x, p["n"], name=f"fc{i}")
    b.output(x)
    return b.build()


def matmul_chain_flops(p: Params) -> float:
    """2 * M * K * N per layer, times the depth when one is given."""
    return 2.0 * p["m"] * p["k"] * p["n"] * int(p.get("depth", 1))


# ------------------------------------------------------------------------ convolutions


def _out_hw(p: Params) -> tuple[int, int]:
    k = int(p.get("kernel", 3))
    if p.get("padding", "same") == "valid":
        return p["h"] - k + 1, p["w"] - k + 1
    return p["h"], p["w"]


def build_conv3x3(p: Params) -> Graph:
    """One 3x3 stride-1 convolution, C in and out channels, same or valid padding."""
    b = Builder(_name("conv3x3", p))
    x = b.input("x", (p.get("batch", 1), p["c"], p["h"], p["w"]))
    pad = 1 if p.get("padding", "same") == "same" else 0
    b.output(b.conv2d(x, p["c"], kernel=3, padding=pad, name="conv"))
    return b.build()


def conv3x3_flops(p: Params) -> float:
    """2 * B * C^2 * 9 * Ho * Wo."""
    ho, wo = _out_hw(p)
    return 2.0 * p.get("batch", 1) * p["c"] ** 2 * 9 * ho * wo


def build_conv_stack(p: Params) -> Graph:
    """``layers`` k x k convolutions with relu between, optionally ending in a spatial mean."""
    b = Builder(_name("conv_stack", p))
    x: Tensor = b.input("x", (p.get("batch", 1), p["c"], p["h"], p["w"]))
    k = int(p.get("kernel", 3))
    pad = k // 2 if p.get("padding", "same") == "same" else 0
    for i in range(int(p["layers"])):
        x = b.conv2d(x, p["c"], kernel=k, padding=pad, name=f"conv{i}",
                     activation="relu" if p.get("relu", True) else None)
    if p.get("reduce_mean"):
        x = b.global_avg_pool(x, name="mean")
    b.output(x)
    return b.build()


def conv_stack_flops(p: Params) -> float:
    """layers * 2 * B * C^2 * k^2 * Ho * Wo."""
    k = int(p.get("kernel", 3))
    ho, wo = _out_hw(p)
    return float(p["layers"]) * 2.0 * p.get("batch", 1) * p["c"] ** 2 * k * k * ho * wo


def build_dispatch_floor(p: Params) -> Graph:
    """A program whose work is negligible: a tiny conv graph or a 64-element linear."""
    if p["graph"] == "linear":
        return build_gemm({"m": 1, "k": p["k"], "n": p["n"]})
    return build_conv_stack({**p, "layers": 1})


def build_conv1x1(p: Params) -> Graph:
    """One 1x1 convolution C_in -> C_out over H x W."""
    b = Builder(_name("conv1x1", p))
    x = b.input("x", (p.get("batch", 1), p["c_in"], p["h"], p["w"]))
    b.output(b.conv2d(x, p["c_out"], kernel=1, name="conv"))
    return b.build()


def conv1x1_flops(p: Params) -> float:
    """2 * C_in * C_out * H * W."""
    return 2.0 * p.get("batch", 1) * p["c_in"] * p["c_out"] * p["h"] * p["w"]


def build_conv1x1_chain(p: Params) -> Graph:
    """``depth`` C x C 1x1 convolutions in one program (maderix inmem_peak, guide OCG probe)."""
    b = Builder(_name("conv1x1_chain", p))
    x: Tensor = b.input("x", (1, p["c"], p["h"], p["w"]))
    for i in range(int(p["depth"])):
        x = b.conv2d(x, p["c"], kernel=1, name=f"conv{i}")
    b.output(x)
    return b.build()


def conv1x1_chain_flops(p: Params) -> float:
    """2 * C^2 * H * W per layer, times the depth when one is given."""
    return 2.0 * p["c"] ** 2 * p["h"] * p["w"] * int(p.get("depth", 1))


# ------------------------------------------------------------------------------ streams


def _stream_input(b: Builder, p: Params) -> Tensor:
    # A [rows x cols] matrix reduced or normalised over cols: cols on the channel axis.
    return b.input("x", (1, p["cols"], 1, p["rows"]))


def build_elementwise(p: Params) -> Graph:
    """A standalone unary op (relu or gelu) over rows x cols fp16."""
    b = Builder(_name("elementwise", p))
    x = _stream_input(b, p)
    b.output(b.activation(p.get("op", "relu"), x, name="op"))
    return b.build()


def rw_bytes(p: Params) -> float:
    """Read + write: 2 * elements * 2 B."""
    return 4.0 * p["rows"] * p["cols"]


def read_bytes(p: Params) -> float:
    """Read only: elements * 2 B."""
    return 2.0 * p["rows"] * p["cols"]


def build_reduction(p: Params) -> Graph:
    """Sum over the last axis (cols) of rows x cols."""
    b = Builder(_name("reduction", p))
    x = _stream_input(b, p)
    b.output(b.op("reduce_" + p.get("op", "sum"), [x], name="reduce", axis=1, keepdims=True))
    return b.build()


def build_softmax(p: Params) -> Graph:
    """Softmax over the last axis (cols) of rows x cols."""
    b = Builder(_name("softmax", p))
    b.output(b.softmax(_stream_input(b, p), axis=1, name="softmax"))
    return b.build()


def build_layer_norm(p: Params) -> Graph:
    """Layer norm with gain and bias over the last axis (cols) of rows x cols."""
    b = Builder(_name("layer_norm", p))
    b.output(b.layer_norm(_stream_input(b, p), axis=1, gamma="ones", beta="zeros", name="ln"))
    return b.build()


# --------------------------------------------------------------------- transformer parts


def build_attention(p: Params) -> Graph:
    """Scaled dot-product attention [B, H, S, D] in one program: QK^T, scale, softmax, times V.

    The measured program (ANEForge af.sdpa) runs wholly on the engine as the fused attention
    atom, which holds "the channel axis holding the sequence" (guide App. B) and covers the
    transposes itself. The operands arrive in that layout, the same bytes as [B*H, S, D]:
    queries and values with their features on rows, [B*H, 1, D, S], keys as [B*H, 1, S, D]. The
    scores are then [B*H, 1, S_k, S_q] with the keys on rows, the softmax runs over the keys
    (the axis the engine reduces along; Apple's ml-ane-transformers takes softmax over dim 1),
    and the context V^T P is [B*H, 1, D, S_q].
    """
    b = Builder(_name("attention", p))
    bh, s_len, d = p["batch"] * p["heads"], p["seq"], p["d_head"]
    q_t = b.input("q_t", (bh, 1, d, s_len))
    k = b.input("k", (bh, 1, s_len, d))
    v_t = b.input("v_t", (bh, 1, d, s_len))
    s = b.scale(b.matmul(k, q_t, name="scores"), 1.0 / d ** 0.5, name="scale")
    a = b.softmax(s, axis=2, name="softmax")
    b.output(b.matmul(v_t, a, name="context"))
    return b.build()


def attention_flops(p: Params) -> float:
    """4*H*S^2*D + 5*H*S^2 per batch (ANEForge roofline_analysis.py)."""
    h, s, d = p["heads"], p["seq"], p["d_head"]
    return p["batch"] * (4.0 * h * s * s * d + 5.0 * h * s * s)


MAX_CHUNK = 16000  # vocabulary chunk: under the 16384 extent cap of H13-H15 (ANEMLL splits lm_head too)


def build_decode_step(p: Params) -> Graph:
    """One decode step of a pre-norm decoder (ANEForge decode_measurement.py).

    Tokens sit on the width axis, ``(1, d, 1, B)``, so every weight is read once per step. Per
    layer: rms norm; Q, K, V projections; each stream's query against its own KV cache, which
    the host feeds as inputs (K transposed as [B, H, dh, S], V as [B, H, S, dh], the bytes
    ANEForge feeds); scale, softmax, context; output projection and residual; rms norm,
    SiLU-gated FFN, residual. Then a final norm and the vocabulary projection in chunks of at
    most 16000 outputs. The new token's own key and value (one more score column) are left out.
    The attention stays channel-first, so the whole step is one engine program as ANEForge
    measures it: a token's query channels split into heads by a view, (1, H, dh, 1); the scores
    are K^T q and the context V^T a, with the sequence on the height axis.
    """
    d, heads, layers = p["d_model"], p["n_heads"], p["n_layers"]
    dh, bsz, s_kv, d_ff = d // heads, p["batch"], p["s_kv"], p["d_ff"]
    wfmt = _weights(p)
    b = Builder(_name("decode_step", p))
    h: Tensor = b.input("x", (1, d, 1, bsz))
    for i in range(layers):
        a_in = b.rms_norm(h, axis=1, gamma="ones", name=f"l{i}.ln1")
        q = b.linear(a_in, d, name=f"l{i}.wq", **wfmt)
        # K and V of the new token, as in the source; nothing here reads them (the cache append is
        # the host's), so the compiler drops both and their weights are not streamed
        b.linear(a_in, d, name=f"l{i}.wk", **wfmt)
        b.linear(a_in, d, name=f"l{i}.wv", **wfmt)
        kc = b.input(f"l{i}.k_cache_t", (bsz, heads, dh, s_kv))
        vc = b.input(f"l{i}.v_cache", (bsz, heads, s_kv, dh))
        ctxs = []
        for t in range(bsz):
            # each token against its own cache: the query's channels split into heads (a view),
            # scores K^T q and context V^T a with the sequence on the height axis
            qt = q if bsz == 1 else b.slice(q, 3, t, t + 1, 1, name=f"l{i}.q{t}")
            kt = kc if bsz == 1 else b.slice(kc, 0, t, t + 1, 1, name=f"l{i}.k{t}")
            vt = vc if bsz == 1 else b.slice(vc, 0, t, t + 1, 1, name=f"l{i}.v{t}")
            qh = b.reshape(qt, (1, heads, dh, 1), name=f"l{i}.q_heads{t}")
            sc = b.scale(b.matmul(kt, qh, transpose_a=True, name=f"l{i}.scores{t}"), 1.0 / dh ** 0.5,
                         name=f"l{i}.scale{t}")
            a = b.softmax(sc, axis=2, name=f"l{i}.softmax{t}")
            ctx_t = b.matmul(vt, a, transpose_a=True, name=f"l{i}.ctx{t}")  # (1, H, dh, 1)
            ctxs.append(b.reshape(ctx_t, (1, d, 1, 1), name=f"l{i}.ctx_r{t}"))
        ctx = ctxs[0] if bsz == 1 else b.concat(ctxs, axis=3, name=f"l{i}.ctx")
        h = b.add(h, b.linear(ctx, d, name=f"l{i}.wo", **wfmt), name=f"l{i}.res1")
        f_in = b.rms_norm(h, axis=1, gamma="ones", name=f"l{i}.ln2")
        g = b.activation("silu", b.linear(f_in, d_ff, name=f"l{i}.wg", **wfmt), name=f"l{i}.silu")
        u = b.linear(f_in, d_ff, name=f"l{i}.wu", **wfmt)
        f = b.linear(b.mul(g, u, name=f"l{i}.gate"), d, name=f"l{i}.wd", **wfmt)
        h = b.add(h, f, name=f"l{i}.res2")
    h = b.rms_norm(h, axis=1, gamma="ones", name="lnf")
    vocab, parts, start = p["vocab"], [], 0
    while start < vocab:
        n = min(MAX_CHUNK, vocab - start)
        parts.append(b.linear(h, n, name=f"vocab{len(parts)}", **wfmt))
        start += n
    b.output(parts[0] if len(parts) == 1 else b.concat(parts, axis=1, name="logits"))
    return b.build()


# ------------------------------------------------------------------------------ registry

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gemm", build_gemm, gemm_flops, doc="square or rectangular GEMM as one linear layer"),
    Family("gemv", build_gemv, gemv_flops, gemv_bytes, doc="M = 1 weight stream"),
    Family("linear_weights", build_gemm, gemm_flops, doc="linear layer with fp16/int8/int4/sparse weights"),
    Family("matmul_chain", build_matmul_chain, matmul_chain_flops, doc="chain of linear layers in one program"),
    Family("conv3x3", build_conv3x3, conv3x3_flops, doc="3x3 convolution at C channels"),
    Family("conv_stack", build_conv_stack, conv_stack_flops, doc="fused stack of convolutions with relu"),
    Family("conv1x1", build_conv1x1, conv1x1_flops, doc="one 1x1 convolution"),
    Family("conv1x1_chain", build_conv1x1_chain, conv1x1_chain_flops, doc="chain of 1x1 convolutions"),
    Family("ocg_passes", build_conv1x1_chain, conv1x1_chain_flops, doc="1x1 chain across an OCG pass step"),
    Family("core_scaling", build_conv1x1, conv1x1_flops, doc="1x1 conv with 1-4 output channels"),
    Family("dispatch_floor", build_dispatch_floor, doc="program with negligible work"),
    Family("elementwise", build_elementwise, bytes=rw_bytes, doc="standalone relu or gelu stream"),
    Family("reduction", build_reduction, bytes=read_bytes, doc="sum over the last axis"),
    Family("softmax", build_softmax, bytes=rw_bytes, doc="softmax over the last axis"),
    Family("layer_norm", build_layer_norm, bytes=rw_bytes, doc="layer norm over the last axis"),
    Family("attention", build_attention, attention_flops, doc="scaled dot-product attention"),
    Family("decode_step", build_decode_step, doc="one decode step of a small decoder"),
]}


def family(name: str) -> Family:
    """The family called ``name``."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnsupportedError("unknown workload family", found=repr(name),
                               expected=", ".join(sorted(FAMILIES))) from None


def work(name: str, params: Params, quantity: str) -> float | None:
    """The work a rate divides: FLOPs, bytes or the batch (tokens per step)."""
    fam = family(name)
    if quantity == "flop_rate" and fam.flops:
        return fam.flops(params)
    if quantity == "byte_rate" and fam.bytes:
        return fam.bytes(params)
    if quantity == "token_rate":
        return float(params.get("batch", 1))
    return None


# ---------------------------------------------------------------- roofline coordinates

# FLOP per element of the stream archetypes (ANEForge roofline_analysis.py counts).
_STREAM_FLOPS = {"relu": 1.0, "gelu": 10.0, "sum": 1.0, "softmax": 5.0, "layer_norm": 10.0}


def intensity(name: str, p: Params) -> tuple[float, float] | None:
    """(FLOPs, compulsory DRAM bytes) of one workload, for placing it on a roofline."""
    n_el = p.get("rows", 0) * p.get("cols", 0)
    wbytes = {"int8": 1.0, "int4": 0.5}.get(p.get("weights", "fp16"), 2.0)
    if name in ("gemm", "linear_weights") and "m" in p:
        m, k, n = p["m"], p["k"], p["n"]
        return gemm_flops(p), 2.0 * (m * k + m * n) + wbytes * k * n
    if name == "gemv" and "k" in p:
        return gemv_flops(p), 2.0 * (p["k"] + p["n"]) + wbytes * p["k"] * p["n"]
    if name == "conv3x3" and "c" in p:
        b, c, h, w = p.get("batch", 1), p["c"], p["h"], p["w"]
        return conv3x3_flops(p), 2.0 * (2 * b * c * h * w + 9 * c * c)
    if name == "conv_stack":
        b, c, h, w, k = p.get("batch", 1), p["c"], p["h"], p["w"], int(p.get("kernel", 3))
        return conv_stack_flops(p), 2.0 * (2 * b * c * h * w + p["layers"] * k * k * c * c)
    if name in ("conv1x1", "core_scaling"):
        b = p.get("batch", 1)
        return conv1x1_flops(p), 2.0 * (b * (p["c_in"] + p["c_out"]) * p["h"] * p["w"] + p["c_in"] * p["c_out"])
    if name in ("conv1x1_chain", "ocg_passes") and "c" in p and "depth" in p:
        return conv1x1_chain_flops(p), 2.0 * (2 * p["c"] * p["h"] * p["w"] + p["depth"] * p["c"] ** 2)
    if name == "matmul_chain" and "depth" in p:
        m, k, n = p["m"], p["k"], p["n"]
        return matmul_chain_flops(p), 2.0 * (m * k + m * n + p["depth"] * k * n)
    if name == "attention":
        h, s, d = p["batch"] * p["heads"], p["seq"], p["d_head"]
        return attention_flops(p), 2.0 * (4 * h * s * d + 2 * h * s * s)  # ANEForge: scores spill
    if name in ("elementwise", "softmax", "layer_norm", "reduction") and n_el:
        key = p.get("op", name)
        return _STREAM_FLOPS.get(key, 1.0) * n_el, (read_bytes(p) if name == "reduction" else rw_bytes(p))
    return None
