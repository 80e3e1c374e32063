"""The single-op cases: one generated H13 task per engine mode, with its float64 reference.

Each case names the register mode it exercises, the inputs that matter for it (|x| > 1 for the
inverse tangent, negatives for elu/selu, zero and subnormals for reciprocal, square root and
log, magnitudes near the fp16 limit for saturation), a float64 numpy reference of the function
and the error bound in fp16 ulps the suite asserts. Table cases carry 33 samples of their
function, laid out as the mode expects; what the bound then measures is the engine's table
evaluation (fold, clamps, range reduction, interpolation, tails) against the exact function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anesim.opsuite import tasks as T
from anesim.opsuite.stream import Buffer, TaskRegs

Arrays = dict[str, np.ndarray]
SHAPE = (1, 1, 64, 64)
FP16_MAX = 65504.0
TINY = 2.0 ** -24  # the smallest fp16 subnormal


@dataclass
class Built:
    """A generated program: its tasks, kernel data and host buffers."""

    tasks: list[TaskRegs]
    data: bytes
    buffers: list[Buffer]


@dataclass(frozen=True)
class OpCase:
    """One op of the suite."""

    name: str
    mode: str  # the register mode the case exercises
    build: Callable[[], Built]
    draw: Callable[[np.random.Generator], Arrays]
    reference: Callable[[Arrays], np.ndarray]  # float64, exact
    bound_ulp: float  # asserted: max |got - exact| in ulps of max(|exact|, floor) rounded to fp16
    bit_exact: bool = False  # asserted too: got == RN16(exact) (zeros by value)
    floor: float = 2.0 ** -14  # errors of values below this magnitude are measured in its ulps
    source: str = ""
    generations: tuple[str, ...] = ("H13",)
    output: str = "dst0"


# ------------------------------------------------------------------------------ inputs

SPECIALS = np.array([0.0, -0.0, TINY, -TINY, 1023 * TINY, 2.0 ** -14, -(2.0 ** -14), 1.0, -1.0, 0.5, 2.0,
                     FP16_MAX, -FP16_MAX, 60000.0, -60000.0, 1000.0, -1000.0])


def spread(rng: np.random.Generator, lo: float, hi: float, shape: tuple[int, ...] = SHAPE,
           log: tuple[float, float] | None = None, signed: bool = True, specials: bool = True) -> np.ndarray:
    """A spread of fp16 inputs: half uniform in [lo, hi], a quarter log-uniform over ``log``
    (2**a .. 2**b, both signs when ``signed``), and the special values."""
    n = int(np.prod(shape))
    out = rng.uniform(lo, hi, n)
    if log is not None:
        k = n // 4
        mags = np.exp2(rng.uniform(log[0], log[1], k))
        out[:k] = mags * (rng.choice([-1.0, 1.0], k) if signed else 1.0)
    if specials:
        sp = SPECIALS if signed else SPECIALS[SPECIALS >= 0]
        out[-len(sp):] = sp
    with np.errstate(over="ignore"):
        return out.reshape(shape).astype(np.float16)


def _one(lo: float, hi: float, log: tuple[float, float] | None = None, signed: bool = True,
         shape: tuple[int, ...] = SHAPE) -> Callable[[np.random.Generator], Arrays]:
    return lambda rng: {"src0": spread(rng, lo, hi, shape, log, signed)}


def _two(lo: float, hi: float, log: tuple[float, float] | None = None) -> Callable[[np.random.Generator], Arrays]:
    return lambda rng: {"src0": spread(rng, lo, hi, SHAPE, log), "src1": spread(rng, lo, hi, SHAPE, log)[:, :, ::-1]}


def x64(a: Arrays, name: str = "src0") -> np.ndarray:
    """An input as float64 values."""
    return np.asarray(a[name], np.float16).astype(np.float64)


def rn16(v: np.ndarray | float) -> np.ndarray:
    """Round float64 values to fp16 and back."""
    with np.errstate(over="ignore"):
        return np.asarray(v, np.float64).astype(np.float16).astype(np.float64)


# ------------------------------------------------------------------------------ programs

SRC, SRC2, DST = Buffer(5, "src0", "input", SHAPE), Buffer(6, "src1", "input", SHAPE), Buffer(4, "dst0", "output", SHAPE)


def ne_unary(table: bytes | None = None, nonlinear: int = 2, post_scale: float = 1.0,
             src: Buffer = SRC, dst: Buffer = DST) -> Callable[[], Built]:
    """One NE bypass task (op mode 4) with a nonlinearity, DRAM to DRAM."""
    def build() -> Built:
        n, c, h, w = src.shape
        fields = {**T.shape_fields(c, h, w, c, h, w, src.dtype, dst.dtype), **T.dram_source(src), **T.dram_result(dst),
                  **T.ne_fields(4, nonlinear, 0 if table is not None else None, post_scale)}
        hdr = T.header(src.slot, None, dst.slot, kernel=table is not None)
        return Built([T.task(fields, hdr)], table or b"", [dst, src])
    return build


def pe_task(cfg: int, binary: bool, groups: int = 1, **scalars: float) -> Callable[[], Built]:
    """One planar-engine task (ENE 0), DRAM sources to DRAM result."""
    def build() -> Built:
        n, c, h, w = SRC.shape
        if groups > 1:  # a reduction along each row: the rows are groups of one row each
            dst = Buffer(4, "dst0", "output", (1, 1, h, 1))
            fields = {**T.shape_fields(1, 1, w, 1, 1, 1, groups=groups),
                      **T.dram_source(SRC, plane=SRC.row_stride, group=SRC.row_stride),
                      **T.dram_result(dst, plane=dst.row_stride, group=dst.row_stride)}
        else:
            dst = DST
            fields = {**T.shape_fields(c, h, w, c, h, w), **T.dram_source(SRC), **T.dram_result(DST)}
        buffers = [dst, SRC]
        if binary:
            fields.update(T.dram_source(SRC2, second=True))
            fields["Common.ChCfg.Src2InFmt"] = 2
            buffers.append(SRC2)
        fields.update(T.pe_fields(cfg, **scalars))
        hdr = T.header(SRC.slot, SRC2.slot if binary else None, dst.slot, ne=False)
        return Built([T.task(fields, hdr)], b"", buffers)
    return build


def ne_conv(cin: int, cout: int, k: int, seed: int = 3) -> Callable[[], Built]:
    """One NE convolution (op mode 0) with fp16 weights in slot 1, padding k // 2."""
    shape_in, shape_out = (1, cin, 16, 16), (1, cout, 16, 16)
    src, dst = Buffer(5, "src0", "input", shape_in), Buffer(4, "dst0", "output", shape_out)

    def build() -> Built:
        w = conv_weights(cin, cout, k, seed)
        row = -(-cin * k * k * 2 // 64) * 64  # each output channel padded to 64 bytes
        data = b"".join(w[o].reshape(-1).astype("<f2").tobytes().ljust(row, b"\0") for o in range(cout))
        fields = {**T.shape_fields(cin, 16, 16, cout, 16, 16), **T.dram_source(src), **T.dram_result(dst),
                  **T.ne_fields(0, 0, None, 1.0, kernel_bytes=len(data))}
        fields.update({"Common.ConvCfg.Kw": k, "Common.ConvCfg.Kh": k, "Common.ConvCfg.Px": k // 2,
                       "Common.ConvCfg.Py": k // 2, "NE.MACCfg.KernelMode": 0})
        return Built([T.task(fields, T.header(src.slot, None, dst.slot, kernel=True))], data, [dst, src])
    return build


def conv_weights(cin: int, cout: int, k: int, seed: int) -> np.ndarray:
    """Seeded fp16 weights (OIHW)."""
    return np.random.default_rng(seed).uniform(-1, 1, (cout, cin, k, k)).astype(np.float16)


def conv_reference(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Exact float64 convolution, stride 1."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cout, cin, k, _ = w.shape
    h, wd = x.shape[2] - k + 1, x.shape[3] - k + 1
    out = np.zeros((1, cout, h, wd))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("oc,nchw->nohw", w[:, :, dy, dx].astype(np.float64), x[:, :, dy:dy + h, dx:dx + wd])
    return out


def samples(fn: Callable[[np.ndarray], np.ndarray], first: float, step: float) -> np.ndarray:
    """fn at the 33 knots first + k * step."""
    with np.errstate(all="ignore"):
        return fn(first + step * np.arange(33))


def erf(x: np.ndarray) -> np.ndarray:
    """math.erf elementwise."""
    return np.vectorize(math.erf)(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _elu(x: np.ndarray, alpha: float = 1.0, scale: float = 1.0) -> np.ndarray:
    return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


SELU = (1.6732632423543772, 1.0507009873554805)  # alpha, lambda (Klambauer et al. 2017)
LOG2E = 1.0 / math.log(2.0)
TABLE_SRC = "table layout: anesim/hwx/tables.py (eiln kernels, tinygrad sigmoid.hwx; docs/functional.md)"
PE_SRC = "PE.Cfg fields: command-stream.md §3.6 (FT-MAPS h13, AB examples); eiln binary kernels"
NE_SRC = "NE MACCfg/KernelCfg: command-stream.md §3.6, §3.10; guide appendix C"


def _unary(fn: Callable[[np.ndarray], np.ndarray], negative_zero: bool = False) -> Callable[[Arrays], np.ndarray]:
    def ref(a: Arrays) -> np.ndarray:
        x = x64(a)
        with np.errstate(all="ignore"):
            y = fn(x)
        return np.where(x < 0, 0.0, y) if negative_zero else y
    return ref


def _ulp_tables() -> list[OpCase]:
    inf = math.inf
    out = [
        OpCase("tanh", "table mode 0 (plain from 0), fold odd", ne_unary(T.lut_words(
            (0, inf, 0, 1), samples(np.tanh, 0, 0.125), (0, 0, 0, 1), 3, "none", "odd")),
            _one(-6, 6, (-20, 15)), _unary(np.tanh), 8, floor=2.0 ** -4, source=TABLE_SRC),
        OpCase("atan", "table mode 0 (plain from 0), fold odd, upper tail", ne_unary(T.lut_words(
            (0, inf, 0, 0), samples(np.arctan, 0, 0.5), (0, 0, 0, math.pi / 2), 1, "none", "odd")),
            _one(-40, 40, (-10, 15)), _unary(np.arctan), 160, floor=2.0 ** -4, source=TABLE_SRC),
        OpCase("gelu", "table mode 1 (centred), fold none, tails", ne_unary(T.lut_words(
            (-inf, inf, 0, inf), samples(_gelu, -4, 0.25), (0, 0, 1, 0), 2, "centred", "none")),
            _one(-8, 8, (-12, 15)), _unary(_gelu), 64, floor=2.0 ** -3, source=TABLE_SRC),
        OpCase("elu", "table mode 1 (centred), negative tail", ne_unary(T.lut_words(
            (-inf, inf, -1, inf), samples(_elu, -8, 0.5), (0, -1, 1, 0), 1, "centred", "none")),
            _one(-12, 6, (-12, 15)), _unary(_elu), 256, floor=2.0 ** -3, source=TABLE_SRC),
        OpCase("selu", "table mode 1 (centred), scaled tails", ne_unary(T.lut_words(
            (-inf, inf, -SELU[0] * SELU[1], inf), samples(lambda x: _elu(x, *SELU), -8, 0.5),
            (0, -SELU[0] * SELU[1], SELU[1], 0), 1, "centred", "none")),
            _one(-12, 6, (-12, 15)), _unary(lambda x: _elu(x, *SELU)), 384, floor=2.0 ** -3, source=TABLE_SRC),
        OpCase("sigmoid", "table mode 1 (centred), clamps", ne_unary(T.lut_words(
            (-inf, inf, 0, 1), samples(_sigmoid, -8, 0.5), (0, 0, 0, 1), 1, "centred", "none")),
            _one(-12, 12, (-12, 15)), _unary(_sigmoid), 64, floor=2.0 ** -6, source=TABLE_SRC),
        OpCase("sigmoid_plain", "plain table (trailer words zero), clamps", ne_unary(T.lut_words(
            (-10, 10, 0, 1), samples(_sigmoid, -10, 20 / 32))),
            _one(-14, 14, (-12, 15)), _unary(_sigmoid), 112, floor=2.0 ** -6, source=TABLE_SRC),
        OpCase("exp2", "table mode 10 (exp2 range reduction)", ne_unary(T.lut_words(
            (-25, 16, 0, inf), samples(np.exp2, 0, 1 / 32), (0, 0, 0, 0), 5, "exp2", "none")),
            _one(-30, 20, (-14, 4)), _unary(np.exp2), 1.5, source=TABLE_SRC),
        OpCase("exp", "table mode 10 behind NE PostScale RN16(log2 e)", ne_unary(T.lut_words(
            (-25, 16, 0, inf), samples(np.exp2, 0, 1 / 32), (0, 0, 0, 0), 5, "exp2", "none"), post_scale=LOG2E),
            _one(-18, 12, (-14, 4)), _unary(np.exp), 12, source=TABLE_SRC + "; exp.bin PostScale"),
        OpCase("log2", "table mode 9 (log2 reduction), fold positive", ne_unary(T.lut_words(
            (0, inf, -inf, 0), samples(np.log2, 0.5, 1 / 64), (0, 0, 0, 0), 6, "log2", "positive")),
            _one(0, 100, (-24, 16)), _unary(np.log2, negative_zero=True), 16, floor=2.0 ** -5,
            source=TABLE_SRC + "; log(-1) = +0 measured (guide ch. 3)"),
        OpCase("sqrt", "table mode 5 (sqrt reduction), fold positive", ne_unary(T.lut_words(
            (0, inf, 0, inf), samples(lambda m: np.sqrt(np.maximum(m, 0.5)), 0, 1 / 16), (0, 0, 0, 0), 4, "sqrt",
            "positive")), _one(0, 1000, (-24, 16)), _unary(np.sqrt, negative_zero=True), 1.5,
            source=TABLE_SRC + "; sqrt(-1) = +0 measured (guide ch. 3)"),
        OpCase("recip", "table mode 7 (reciprocal reduction), fold odd", ne_unary(T.lut_words(
            (0, inf, inf, 0), samples(lambda m: 1 / m, 0.5, 1 / 64), (0, 0, 0, 0), 6, "recip", "odd")),
            _one(-100, 100, (-24, 16)), _unary(lambda x: np.where(x == 0, np.inf, 1 / np.where(x == 0, 1, x))), 2,
            source=TABLE_SRC + "; 1/±0 = +inf (planar rule, docs/numerics.md)"),
    ]
    return out


def _exact_tables() -> list[OpCase]:
    inf = math.inf
    leak = float(np.float16(0.01))
    return [
        OpCase("trunc", "table mode 4 (int), fold odd", ne_unary(T.lut_words(
            (-inf, inf, -inf, inf), None, (0, 0, 0, 0), 0, "int", "odd")),
            _one(-3000, 3000, (-10, 15)), _unary(np.trunc), 0.5, True, source=TABLE_SRC + "; ceil.bin"),
        OpCase("frac", "table mode 3 (frac), fold odd", ne_unary(T.lut_words(
            (-inf, inf, 0, 0), None, (0, 0, 0, 0), 0, "frac", "odd")),
            _one(-64, 64, (-10, 15)), _unary(lambda x: x - np.trunc(x)), 0.5, True, source=TABLE_SRC + "; ceil.bin"),
        OpCase("leaky_relu", "tails-only table (word 41 bit 6)", ne_unary(T.lut_words(
            (-inf, inf, -inf, inf), None, (leak, 0, 1, 0))),
            _one(-8, 8, (-20, 15)), _unary(lambda x: np.where(x > 0, x, leak * x)), 0.5, True,
            source=TABLE_SRC + "; leakyrelu.bin"),
        OpCase("relu6", "tails-only table with clamps", ne_unary(T.lut_words(
            (0, 6, 0, 6), None, (0, 0, 1, 0))),
            _one(-10, 10, (-20, 15)), _unary(lambda x: np.clip(x, 0, 6)), 0.5, True, source=TABLE_SRC + "; relu6.bin"),
        OpCase("sign", "tails-only table, fold odd", ne_unary(T.lut_words(
            (0, 1, 0, 1), None, (0, 0, 0, 1), 0, "none", "odd")),
            _one(-4, 4, (-24, 15)), _unary(np.sign), 0.5, True, source=TABLE_SRC + "; sign.bin"),
        OpCase("relu", "NE NonlinearMode 1", ne_unary(None, 1), _one(-8, 8, (-24, 15)),
               _unary(lambda x: np.maximum(x, 0)), 0.5, True, source=NE_SRC + "; relu.hwx"),
        OpCase("post_scale", "NE bypass with PostScale", ne_unary(None, 0, post_scale=0.3), _one(-8, 8, (-24, 15)),
               _unary(lambda x: x * float(np.float16(0.3))), 0.5, True, source=NE_SRC + "; exp.bin PostScale"),
    ]


def _planar() -> list[OpCase]:
    def two(op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[Arrays], np.ndarray]:
        return lambda a: op(x64(a, "src0"), x64(a, "src1"))
    big = (-20, 15.9)
    return [
        OpCase("add", "PE OpMode 0, SecSrc 2", pe_task(0x80000, True), _two(-8, 8, big), two(np.add), 0.5, True,
               source=PE_SRC + "; add.bin, sum.hwx"),
        OpCase("mul", "PE OpMode 1", pe_task(0x80004, True), _two(-8, 8, big), two(np.multiply), 0.5, True,
               source=PE_SRC + "; mul.bin"),
        OpCase("max", "PE OpMode 2", pe_task(0x80008, True), _two(-8, 8, big), two(np.maximum), 0.5, True,
               source=PE_SRC + "; max.bin"),
        OpCase("min", "PE OpMode 3", pe_task(0x8000C, True), _two(-8, 8, big), two(np.minimum), 0.5, True,
               source=PE_SRC + "; min.bin"),
        OpCase("sqsum", "PE OpMode 4: (a + b)^2", pe_task(0x80010, True), _two(-8, 8, big),
               two(lambda a, b: (a + b) ** 2), 2, source=PE_SRC + " (op 4 = sum of squares)"),
        OpCase("add_relu", "PE ReluEn", pe_task(0x80020, True), _two(-8, 8, big),
               two(lambda a, b: np.maximum(a + b, 0)), 0.5, True, source=PE_SRC + " (ReluEn [5])"),
        OpCase("sub", "PE add with PreScale -1", pe_task(0x80000, True, pre_scale=-1.0), _two(-8, 8, big),
               two(lambda a, b: b - a), 0.5, True, source=PE_SRC + "; sub.bin"),
        OpCase("abs", "PE Cond (0x40)", pe_task(0x40, False), _one(-8, 8, big), _unary(np.abs), 0.5, True,
               source=PE_SRC + "; abs.bin"),
        OpCase("affine", "PE copy with Scale and Bias", pe_task(0x0, False, scale=0.5, bias=0.25),
               _one(-8, 8, big), _unary(lambda x: x * 0.5 + 0.25), 0.5, True, source=PE_SRC + "; sigmoid.bin, ave.bin"),
        OpCase("final_scale", "PE FinalScale (fp32)", pe_task(0x0, False, final_scale=0.125),
               _one(-8, 8, big), _unary(lambda x: x * 0.125), 0.5, True, source=PE_SRC),
        OpCase("reduce_max", "PE 0x2 over one-row groups", pe_task(0x2, False, groups=SHAPE[2]),
               _one(-8, 8, big), lambda a: x64(a).max(axis=-1, keepdims=True), 0.5, True,
               source="softmax.bin task 0 (docs/functional.md)"),
        OpCase("reduce_sum", "PE 0x0 over one-row groups", pe_task(0x0, False, groups=SHAPE[2]),
               _one(-1, 1), lambda a: x64(a).sum(axis=-1, keepdims=True), 1, floor=2.0 ** -4,
               source="norm.bin task 2 (docs/functional.md)"),
        OpCase("recip_sum", "PE 0x1000 over one-row groups", pe_task(0x1000, False, groups=SHAPE[2]),
               lambda rng: {"src0": spread(rng, 0, 1, signed=False, specials=False)},
               lambda a: 1.0 / x64(a).sum(axis=-1, keepdims=True), 1.5, source="softmax.bin task 3 (docs/functional.md)"),
    ]


def _ne() -> list[OpCase]:
    def conv(cin: int, cout: int, k: int) -> Callable[[Arrays], np.ndarray]:
        w = conv_weights(cin, cout, k, 3)
        return lambda a: conv_reference(np.asarray(a["src0"], np.float16), w, k // 2)
    return [
        OpCase("conv1x1", "NE OpMode 0, fp16 kernel", ne_conv(8, 4, 1),
               lambda rng: {"src0": spread(rng, -4, 4, (1, 8, 16, 16), specials=False)}, conv(8, 4, 1), 8,
               floor=2.0 ** -2, source=NE_SRC + "; conv.hwx (MAC rule docs/numerics.md)"),
        OpCase("conv3x3", "NE OpMode 0, 3x3 kernel, padding 1", ne_conv(4, 4, 3),
               lambda rng: {"src0": spread(rng, -4, 4, (1, 4, 16, 16), specials=False)}, conv(4, 4, 3), 12,
               floor=2.0 ** -2, source=NE_SRC),
    ]


def _dtypes() -> list[OpCase]:
    u8, i8 = Buffer(5, "src0", "input", SHAPE, "uint8"), Buffer(5, "src0", "input", SHAPE, "int8")
    return [
        OpCase("uint8_input", "source MemFmt 0 (uint8)", ne_unary(None, 1, src=u8),
               lambda rng: {"src0": rng.integers(0, 256, SHAPE).astype(np.uint8)},
               lambda a: np.asarray(a["src0"], np.float64), 0.5, True, source="command-stream.md §4.2 (UInt8 = 0)"),
        OpCase("int8_input", "source MemFmt 1 (int8)", ne_unary(None, 1, src=i8),
               lambda rng: {"src0": rng.integers(-128, 128, SHAPE).astype(np.int8)},
               lambda a: np.maximum(np.asarray(a["src0"], np.float64), 0), 0.5, True,
               source="command-stream.md §4.2 (Int8 = 1)"),
    ]


def all_cases() -> list[OpCase]:
    """Every single-op case, in the order docs/ops.md lists them."""
    return _ulp_tables() + _exact_tables() + _ne() + _planar() + _dtypes()
