"""Multi-task compositions: softmax, layer norm, GELU, attention as chains of generated tasks.

They follow the patterns Apple's compiler emits in the eiln kernels (docs/functional.md): a
reduction along each row written as one 16-byte pool line per row, a planar op that broadcasts
that value back along the row, lookup tables for exp2, sqrt and 1/x, results handed from task to
task through the on-chip pool or an intermediate DRAM buffer, and - for attention - operands
read as run-time kernels from DRAM, which is how the engine transposes a matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anesim.opsuite import tasks as T
from anesim.opsuite.cases import Arrays, Built, erf, samples, spread, x64
from anesim.opsuite.stream import Buffer, TaskRegs

H, W = 64, 64
ROW = 2 * W
PLANE = ROW * H
LINE = 16  # one pool line: where a reduction leaves the value of one row
INF = math.inf
LOG2E = 1.0 / math.log(2.0)
X = Buffer(5, "src0", "input", (1, 1, H, W))
OUT = Buffer(4, "dst0", "output", (1, 1, H, W))
MID = Buffer(3, "mid", "intermediate", (1, 1, H, W))


@dataclass(frozen=True)
class Composition:
    """A multi-task program, its reference and its composed bound."""

    name: str
    pattern: str
    build: Callable[[], Built]
    draw: Callable[[np.random.Generator], Arrays]
    reference: Callable[[Arrays], np.ndarray]
    bound_ulp: float
    floor: float = 2.0 ** -8
    output: str = "dst0"


def _rows(src: dict[str, int], h: int = H, w: int = W) -> dict[str, int]:
    return {**T.shape_fields(1, 1, w, 1, 1, 1, groups=h), **src}


def _full(h: int = H, w: int = W) -> dict[str, int]:
    return T.shape_fields(1, h, w, 1, h, w)


def _reduce(cfg: int, src: dict[str, int], dst_line: int, hdr: dict[str, int], h: int = H, w: int = W,
            **scalars: float) -> TaskRegs:
    """A row reduction (groups of one row) into one pool line per row at ``dst_line``."""
    fields = {**_rows(src, h, w), **T.pool_result(dst_line, LINE, LINE, LINE), **T.pe_fields(cfg, **scalars)}
    return T.task(fields, hdr)


def _dram_rows(buf: Buffer) -> dict[str, int]:
    return T.dram_source(buf, plane=buf.row_stride, group=buf.row_stride)


def _pool_rows(base: int) -> dict[str, int]:
    return {**T.pool_source(base, ROW, ROW, ROW)}


def _table_task(src: dict[str, int], dst: dict[str, int], table_at: int, hdr: dict[str, int],
                h: int = H, w: int = W, post_scale: float = 1.0) -> TaskRegs:
    fields = {**T.shape_fields(1, h, w, 1, h, w), **src, **dst, **T.ne_fields(4, 2, table_at, post_scale)}
    return T.task(fields, {**hdr, "KBase0": 1, "KBE0": 1, "ENE": 1})


EXP2 = T.lut_words((-25, 16, 0, INF), samples(np.exp2, 0, 1 / 32), (0, 0, 0, 0), 5, "exp2", "none")


def softmax_tasks(x: Buffer, mid: Buffer, out: Buffer, table_at: int = 0) -> list[TaskRegs]:
    """Softmax along the rows of ``x`` into ``out``, as softmax.bin's five tasks."""
    _, _, h, w = x.shape
    row, p1 = x.row_stride, 4096
    return [
        _reduce(0x2, _dram_rows(x), 0, T.header(x.slot, ne=False), h, w),
        T.task({**_full(h, w), **T.dram_source(x), **T.pool_source(0, LINE, LINE * h, second=True),
                **T.pool_result(p1, row, row * h), **T.pe_fields(0xC0000, scale=LOG2E)}, T.header(x.slot, ne=False)),
        _table_task(T.pool_source(p1, row, row * h), T.dram_result(mid), table_at, T.header(dst=mid.slot), h, w),
        _reduce(0x1000, _dram_rows(mid), 0, T.header(mid.slot, ne=False), h, w),
        T.task({**_full(h, w), **T.pool_source(0, LINE, LINE * h), **T.dram_source(mid, second=True),
                **T.dram_result(out), **T.pe_fields(0x80004)}, T.header(None, mid.slot, out.slot, ne=False)),
    ]


def softmax() -> Built:
    """max, (x - max)·log2 e, exp2, 1/Σ, product: softmax.bin's five tasks."""
    return Built(softmax_tasks(X, MID, OUT), EXP2, [OUT, X, MID])


L, D = 32, 32  # attention: sequence length and head size (each row of 32 fp16 is one 64-byte line)


def attention() -> Built:
    """softmax(Q·Kᵀ/√d)·V in seven tasks: two matrix products whose left operand the kernel DMA
    reads from DRAM at run time (the second one the probabilities the softmax just wrote).

    The engine's layouts do the transposes: Q is read as the kernel (one row of d weights per
    query), K arrives channel-first ([1, d, 1, L], as Core ML hands tensors to the engine) and is
    the convolution's input, so S = Q·Kᵀ comes out with one channel per query; stored as an
    L×L matrix, its rows are the softmax rows; P is then the kernel of the second product, whose
    input is V read as L channels of d values.
    """
    q = Buffer(7, "q", "input", (1, 1, L, D))
    k = Buffer(6, "k", "input", (1, D, 1, L))
    v = Buffer(5, "v", "input", (1, L, 1, D))
    s = Buffer(3, "scores", "intermediate", (1, 1, L, L))
    e = Buffer(2, "exp", "intermediate", (1, 1, L, L))
    p = Buffer(8, "probs", "intermediate", (1, 1, L, L))
    o = Buffer(4, "out", "output", (1, 1, L, D))
    row = 64

    def product(src: Buffer, kernel: Buffer, dst: Buffer, cin: int, width: int, scale: float) -> TaskRegs:
        fields = {**T.shape_fields(cin, 1, width, L, 1, width), **T.dram_source(src),
                  **T.dram_result(dst, row=row, plane=row), **T.ne_fields(0, 0, None, scale, kernel_bytes=L * row)}
        fields["NE.MACCfg.KernelMode"] = 0
        return T.task(fields, {**T.header(src.slot, None, dst.slot), "KBase0": kernel.slot, "KBE0": 1})

    tasks = [product(k, q, s, D, L, 1 / math.sqrt(D)), *softmax_tasks(s, e, p),
             product(v, p, o, L, D, 1.0)]
    return Built(tasks, EXP2, [o, v, k, q, s, e, p])


def layer_norm(eps: float = 2.0 ** -10) -> Built:
    """mean, x - mean, square, mean + eps, sqrt, 1/x, product: a normalisation along each row."""
    sqrt = T.lut_words((0, INF, 0, INF), samples(lambda m: np.sqrt(np.maximum(m, 0.5)), 0, 1 / 16),
                       (0, 0, 0, 0), 4, "sqrt", "positive")
    recip = T.lut_words((0, INF, INF, 0), samples(lambda m: 1 / m, 0.5, 1 / 64), (0, 0, 0, 0), 6, "recip", "odd")
    d, sq, var, root, inv = 4096, 4096 + PLANE, 0x10000, 0x10000 + LINE * H, 0x10000 + 2 * LINE * H
    line = {**T.shape_fields(1, H, 1, 1, H, 1)}
    tasks = [
        _reduce(0x0, _dram_rows(X), 0, T.header(X.slot, ne=False), final_scale=1 / W),
        T.task({**_full(), **T.dram_source(X), **T.pool_source(0, LINE, LINE * H, second=True),
                **T.pool_result(d, ROW, PLANE), **T.pe_fields(0xC0000)}, T.header(X.slot, ne=False)),
        T.task({**_full(), **T.pool_source(d, ROW, PLANE), **T.pool_source(d, ROW, PLANE, second=True),
                **T.pool_result(sq, ROW, PLANE), **T.pe_fields(0x80004)}, T.header(ne=False)),
        _reduce(0x0, _pool_rows(sq), var, T.header(ne=False), bias=eps * W, final_scale=1 / W),
        T.task({**line, **T.pool_source(var, LINE, LINE * H), **T.pool_result(root, LINE, LINE * H),
                **T.ne_fields(4, 2, 0)}, T.header(kernel=True)),
        T.task({**line, **T.pool_source(root, LINE, LINE * H), **T.pool_result(inv, LINE, LINE * H),
                **T.ne_fields(4, 2, 128)}, T.header(kernel=True)),
        T.task({**_full(), **T.pool_source(inv, LINE, LINE * H), **T.pool_source(d, ROW, PLANE, second=True),
                **T.dram_result(OUT), **T.pe_fields(0x80004)}, T.header(None, None, OUT.slot, ne=False)),
    ]
    return Built(tasks, sqrt + recip, [OUT, X])


def gelu() -> Built:
    """x · Φ(x) with Φ - ½ an odd table plus ½ on the planar engine (silu.bin's shape)."""
    half_erf = T.lut_words((0, INF, 0, 0.5), samples(lambda u: 0.5 * erf(u / math.sqrt(2.0)), 0, 1 / 8),
                           (0, 0, 0, 0.5), 3, "none", "odd")
    p1, p2 = 0, PLANE
    tasks = [
        _table_task(T.dram_source(X), T.pool_result(p1, ROW, PLANE), 0, T.header(X.slot)),
        T.task({**_full(), **T.pool_source(p1, ROW, PLANE), **T.pool_result(p2, ROW, PLANE),
                **T.pe_fields(0x0, bias=0.5)}, T.header(ne=False)),
        T.task({**_full(), **T.dram_source(X), **T.pool_source(p2, ROW, PLANE, second=True),
                **T.dram_result(OUT), **T.pe_fields(0x80004)}, T.header(X.slot, None, OUT.slot, ne=False)),
    ]
    return Built(tasks, half_erf, [OUT, X])


def _softmax_ref(a: Arrays) -> np.ndarray:
    x = x64(a)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layer_norm_ref(a: Arrays, eps: float = 2.0 ** -10) -> np.ndarray:
    x = x64(a)
    d = x - x.mean(axis=-1, keepdims=True)
    return d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)


def _gelu_ref(a: Arrays) -> np.ndarray:
    x = x64(a)
    return 0.5 * x * (1.0 + erf(x.reshape(-1) / math.sqrt(2.0)).reshape(x.shape))


def _attention_ref(a: Arrays) -> np.ndarray:
    q = np.asarray(a["q"], np.float64)[0, 0]
    k = np.asarray(a["k"], np.float64)[0, :, 0, :]  # (d, L)
    v = np.asarray(a["v"], np.float64)[0, :, 0, :]  # (L, d)
    s = q @ k / math.sqrt(D)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return ((e / e.sum(axis=-1, keepdims=True)) @ v)[None, None]


def _attention_inputs(rng: np.random.Generator) -> Arrays:
    return {"q": spread(rng, -2, 2, (1, 1, L, D), specials=False), "k": spread(rng, -2, 2, (1, D, 1, L), specials=False),
            "v": spread(rng, -2, 2, (1, L, 1, D), specials=False)}


def all_compositions() -> list[Composition]:
    """Every composition of the suite."""
    one = lambda lo, hi: (lambda rng: {"src0": spread(rng, lo, hi, (1, 1, H, W), specials=False)})  # noqa: E731
    return [
        Composition("softmax", "5 tasks: row max -> pool, (x - max)·log2 e, exp2 table -> DRAM, 1/Σ -> pool, "
                    "product", softmax, one(-8, 8), _softmax_ref, 8),
        Composition("layer_norm", "7 tasks: row mean -> pool, x - mean, square, mean + eps, sqrt table, "
                    "1/x table, product", layer_norm, one(-4, 4), _layer_norm_ref, 6, floor=2.0 ** -4),
        Composition("gelu", "3 tasks: odd table Φ - ½ -> pool, + ½, x · Φ", gelu, one(-6, 6), _gelu_ref, 16,
                    floor=2.0 ** -4),
        Composition("attention", "7 tasks: Q·Kᵀ/√d (Q as run-time kernel), softmax (5 tasks), P·V (P as "
                    "run-time kernel)", attention, _attention_inputs, _attention_ref, 28, floor=2.0 ** -4,
                    output="out"),
    ]
