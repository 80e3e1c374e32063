"""Every sample program in ../shared/hwx computes what it should.

Each program runs on seeded random inputs in its operation's sensible domain and is checked
against a numpy reference of that operation, with any weights, slopes or epsilons read from the
program itself. Exact operations must match bit for bit (the MAC reference in
``anesim.numerics.reference`` implements the engine's rounding; zeros compare by value, since the
engine's -0 + +0 = +0 where numpy's ceil keeps -0). Lookup-table operations must stay within the
per-op tolerance that docs/numerics.md states beside the error measured here; the input of a
one-input table kernel also holds every finite fp16 value of the table's documented domain, so
the measured error is the error over that whole domain.

The eiln kernels run at their full 2560x1600 size (about half a second each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import anesim
from anesim.functional.tasks import mac_rules, table_to_lut
from anesim.numerics import apply_lut
from anesim.numerics import reference as R
from anesim.program.model import Program

SIDECARS = Path(__file__).resolve().parents[1] / "programs" / "eiln"
Inputs = dict[str, np.ndarray]


# ------------------------------------------------------------------------------ comparisons


def same_values(got: np.ndarray, want_bits: np.ndarray) -> bool:
    """Bit-identical fp16, except that +0 and -0 count as equal."""
    g = np.asarray(got, np.float16).view(np.uint16)
    w = np.asarray(want_bits, np.uint16)
    zero = ((g & 0x7FFF) == 0) & ((w & 0x7FFF) == 0)
    return bool(np.all((g == w) | zero))


def errors(got: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """Max absolute error and max error in fp16 spacings of the exact value (rounded to fp16)."""
    g = np.asarray(got, np.float64).reshape(-1)
    with np.errstate(over="ignore"):
        e16 = np.asarray(exact, np.float64).astype(np.float16).reshape(-1)
    e = e16.astype(np.float64)
    assert np.array_equal(np.isfinite(g), np.isfinite(e)), "finite where the reference is not (or back)"
    ok = np.isfinite(e)
    diff = np.abs(g[ok] - e[ok])
    # the fp16 spacing at the exact value, from its exponent field (2^-24 below the normal range)
    exponent = (e16.view(np.uint16)[ok] >> 10) & 0x1F
    spacing = np.ldexp(1.0, np.maximum(exponent, 1).astype(np.int64) - 25)
    return (float(diff.max(initial=0.0)), float((diff / spacing).max(initial=0.0)))


def unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """fn on fp16 inputs, through a table of its value at every fp16 pattern (math.erf is scalar)."""
    with np.errstate(all="ignore"):
        table = fn(np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float64))
    return lambda x: table[np.asarray(x, np.float16).view(np.uint16)]


def _erf(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in x])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float16).view(np.uint16)


# ------------------------------------------------------------------------------ inputs


def uniform(lo: float, hi: float) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    return lambda rng, shape: rng.uniform(lo, hi, shape).astype(np.float16)


def log_uniform(lo_exp: float, hi_exp: float, signed: bool = False
                ) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        v = np.exp2(rng.uniform(lo_exp, hi_exp, shape))
        if signed:
            v *= rng.choice([-1.0, 1.0], shape)
        return v.astype(np.float16)
    return draw


def draw_inputs(program: Program, seed: int,
                domain: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]) -> Inputs:
    rng = np.random.default_rng(seed)
    return {t.name: domain(rng, t.shape) for t in program.inputs}


EVERY_FP16 = np.arange(65536, dtype=np.uint16).view(np.float16)
EVERY_FP16 = EVERY_FP16[np.isfinite(EVERY_FP16)]


def with_every_value(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """x with its leading elements replaced by every finite fp16 value in [lo, hi]."""
    values = EVERY_FP16[(EVERY_FP16 >= lo) & (EVERY_FP16 <= hi)]
    out = np.array(x, np.float16)
    out.reshape(-1)[:len(values)] = values
    return out


# ------------------------------------------------------------------------------ the programs


def table_words(program: Program, task: int = 0) -> np.ndarray:
    """The 64 raw words of the table a task's kernel DMA fetches (read from the program's bytes)."""
    t = program.tasks[task]
    offset = 64 * t.fields["KernelDMASrc.CoeffBaseAddr[0].Addr"]
    data = next(s.data for s in program.slots.values() if s.role == "constant" and s.data)
    return np.frombuffer(data[offset:offset + 128], np.uint16)


def _f16(word: int) -> float:
    return float(np.array([word], np.uint16).view(np.float16)[0])


@dataclass(frozen=True)
class Case:
    """One sample: its input domain and the reference it must meet."""

    domain: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    # exact cases return fp16 bits; table cases return float64 exact values
    reference: Callable[[Program, Inputs], np.ndarray]
    exact: bool = True
    max_abs: float | None = None  # tolerance of a table op, absolute
    max_ulp: float | None = None  # tolerance of a table op, in fp16 spacings of the exact value
    every: tuple[float, float] | None = None  # sweep every fp16 value in this range as well


def _x(inputs: Inputs, name: str = "src0") -> np.ndarray:
    return np.asarray(inputs[name], np.float16)


def _binary(op: str) -> Callable[[Program, Inputs], np.ndarray]:
    return lambda p, i: R.elementwise(op, _bits(_x(i, "src0")), _bits(_x(i, "src1")))


def _leaky(p: Program, i: Inputs) -> np.ndarray:
    slope = _f16(int(table_words(p)[37]))  # the table's lower tail slope, as the program holds it
    x = R.values(_bits(_x(i)))
    return R.bits_of(np.where(x > 0, x, R.round16(slope * x)))


def _frac(p: Program, i: Inputs) -> np.ndarray:
    # the three tasks compute src1 - src0 * sign(src1): frac(src1) when src0 = floor(|src1|)
    a, b = R.values(_bits(_x(i, "src0"))), R.values(_bits(_x(i, "src1")))
    return R.bits_of(b - R.round16(a * np.sign(b)))


def _inverse(p: Program, i: Inputs) -> np.ndarray:
    eps = _f16(p.tasks[0].fields["NE.AccBias.AccBias"])  # the accumulator bias: Core ML's epsilon
    x = R.values(_bits(_x(i)))
    with np.errstate(divide="ignore"):
        return 1.0 / R.round16(x + eps)


def _rows(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Program, Inputs], np.ndarray]:
    return lambda p, i: fn(_x(i).astype(np.float64))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _logsoftmax(x: np.ndarray) -> np.ndarray:
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _l2norm(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).sum(axis=-1, keepdims=True))


def _table(fn: Callable[[np.ndarray], np.ndarray], name: str = "src0") -> Callable[[Program, Inputs], np.ndarray]:
    f = unary(fn)
    return lambda p, i: f(_x(i, name))


FINITE = (-65504.0, 65504.0)
POSITIVE = (2.0**-24, 65504.0)
EILN: dict[str, Case] = {
    # exact: planar engine, NE relu, tables made of tails only, int/frac modes
    "binary/add.bin": Case(uniform(-8, 8), _binary("add")),
    "binary/sub.bin": Case(uniform(-8, 8), _binary("sub")),
    "binary/mul.bin": Case(uniform(-8, 8), _binary("mul")),
    "binary/max.bin": Case(uniform(-8, 8), _binary("max")),
    "binary/min.bin": Case(uniform(-8, 8), _binary("min")),
    "binary/ave.bin": Case(uniform(-8, 8), _binary("ave")),
    "unary/abs.bin": Case(uniform(-8, 8), lambda p, i: R.elementwise("abs", _bits(_x(i)))),
    "unary/square.bin": Case(uniform(-200, 200), lambda p, i: R.elementwise("square", _bits(_x(i)))),
    "unary/sign.bin": Case(uniform(-4, 4), lambda p, i: _bits(np.sign(_x(i)))),
    "unary/ceil.bin": Case(uniform(-3000, 3000), lambda p, i: _bits(np.ceil(_x(i)))),
    "unary/frac.bin": Case(uniform(-64, 64), _frac),
    "activation/relu.bin": Case(uniform(-8, 8), lambda p, i: R.elementwise("relu", _bits(_x(i)))),
    "activation/relu6.bin": Case(uniform(-10, 10), lambda p, i: R.elementwise("relu6", _bits(_x(i)))),
    "activation/leakyrelu.bin": Case(uniform(-8, 8), _leaky),
    "activation/rrelu.bin": Case(uniform(-8, 8), _leaky),
    # lookup tables: tolerances from docs/numerics.md
    "activation/gelu.bin": Case(uniform(-8, 8), _table(lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
                                False, max_abs=0.0065, every=FINITE),
    "activation/silu.bin": Case(uniform(-12, 12), _table(lambda x: x * _sigmoid(x)), False, max_abs=0.0045,
                                every=FINITE),
    "unary/sigmoid.bin": Case(uniform(-12, 12), _table(_sigmoid), False, max_abs=0.0012, every=FINITE),
    "unary/tanh.bin": Case(uniform(-6, 6), _table(np.tanh), False, max_abs=0.0022, every=FINITE),
    "unary/exp.bin": Case(uniform(-15, 11), _table(np.exp), False, max_ulp=10, every=FINITE),
    "unary/exp2.bin": Case(uniform(-24, 15.9), _table(np.exp2), False, max_ulp=1, every=FINITE),
    "unary/log.bin": Case(log_uniform(-14, 15.9), _table(np.log), False, max_abs=0.016, every=POSITIVE),
    "unary/log2.bin": Case(log_uniform(-14, 15.9), _table(np.log2), False, max_abs=0.016, every=POSITIVE),
    "unary/sqrt.bin": Case(log_uniform(-24, 15.9), _table(np.sqrt), False, max_ulp=1, every=POSITIVE),
    "unary/inv.bin": Case(log_uniform(-8, 14, signed=True), _inverse, False, max_ulp=2, every=FINITE),
    "activation/softmax.bin": Case(uniform(-8, 8), _rows(_softmax), False, max_ulp=11),
    "activation/logsoftmax.bin": Case(uniform(-2, 2), _rows(_logsoftmax), False, max_abs=0.016),
    "unary/norm.bin": Case(uniform(-4, 4), _rows(_l2norm), False, max_ulp=6),
}


def load_eiln(eiln_dir: Path, rel: str) -> Program:
    return anesim.load(eiln_dir / rel, sidecar=SIDECARS / rel.replace(".bin", ".sidecar.json"))


def check(case: Case, program: Program, inputs: Inputs, got: np.ndarray) -> tuple[float, float]:
    """Assert one output meets its case; return the measured (abs, ulp) error of a table op."""
    want = case.reference(program, inputs)
    if case.exact:
        assert same_values(got, want)
        return 0.0, 0.0
    abs_err, ulp_err = errors(got, want)
    if case.max_abs is not None:
        assert abs_err <= case.max_abs, abs_err
    if case.max_ulp is not None:
        assert ulp_err <= case.max_ulp, ulp_err
    return abs_err, ulp_err


def test_every_eiln_kernel_has_a_case(eiln_dir: Path) -> None:
    assert sorted(str(p.relative_to(eiln_dir)) for p in eiln_dir.rglob("*.bin")) == sorted(EILN)


@pytest.mark.parametrize("rel", sorted(EILN))
def test_eiln_kernel_computes_its_operation(eiln_dir: Path, rel: str) -> None:
    program = load_eiln(eiln_dir, rel)
    assert not program.notes and not program.approximations
    case = EILN[rel]
    inputs = draw_inputs(program, 4, case.domain)
    if case.every is not None:
        inputs["src0"] = with_every_value(inputs["src0"], *case.every)
    got = anesim.execute(program, inputs)["dst0"]
    assert got.shape == (1, 1, 2560, 1600)
    check(case, program, inputs, got)


def test_frac_kernel_gives_the_fractional_part_given_the_floor(eiln_dir: Path) -> None:
    program = load_eiln(eiln_dir, "unary/frac.bin")
    x = np.random.default_rng(5).uniform(-64, 64, (1, 1, 2560, 1600)).astype(np.float16)
    got = anesim.execute(program, {"src0": np.floor(np.abs(x)), "src1": x})["dst0"]
    assert same_values(got, _bits(x - np.trunc(x)))


# ------------------------------------------------------------------------------ .hwx files


def _conv(p: Program, i: Inputs) -> np.ndarray:
    ne = p.tasks[0].ne
    x = _bits(i["image"])
    return R.conv2d(x, np.asarray(ne.kernel.weights, np.uint16), rules=mac_rules(p.generation))


def _matmul(p: Program, i: Inputs) -> np.ndarray:
    a, b = _bits(i["A"])[0, 0], _bits(i["B"])[0, 0]
    return R.matmul(a, b, rules=mac_rules(p.generation))[None, None]


HWX: dict[str, tuple[str, Callable[[Program, Inputs], np.ndarray]]] = {
    "tinygrad/conv.hwx": ("probs", _conv),
    "tinygrad/model.hwx.golden": ("probs", _conv),
    "tinygrad/gemm.hwx": ("probs", _conv),
    "tinygrad/relu.hwx": ("probs", lambda p, i: R.elementwise("relu", _bits(i["image"]))),
    "tinygrad/sum.hwx": ("probs", lambda p, i: R.elementwise("add", _bits(i["image"]), _bits(i["image2"]))),
    "tinygrad/concat.hwx": ("output", lambda p, i: _bits(np.concatenate([i["input_0"], i["input_1"]], axis=1))),
    "alexaltea/matmul_h11.hwx": ("matmul_0", _matmul),
    "alexaltea/matmul_h13.hwx": ("matmul_0", _matmul),
    "alexaltea/matmul_h14.hwx": ("matmul_0", _matmul),
    "alexaltea/matmul_h15.hwx": ("matmul_0", _matmul),
}
SIGMOID_MAX_ABS = 0.0035  # tinygrad/sigmoid.hwx, the only table among them (docs/numerics.md)


def test_every_hwx_program_has_a_case(shared_dir: Path) -> None:
    found = {str(p.relative_to(shared_dir / "hwx")) for p in (shared_dir / "hwx").glob("*/*.hwx*")}
    assert found == set(HWX) | {"tinygrad/sigmoid.hwx"}


@pytest.mark.parametrize("rel", sorted(HWX))
def test_hwx_program_matches_its_reference_bit_for_bit(shared_dir: Path, rel: str) -> None:
    program = anesim.load(shared_dir / "hwx" / rel)
    inputs = draw_inputs(program, 7, uniform(-4, 4))
    output, reference = HWX[rel]
    got = anesim.execute(program, inputs)[output]
    assert same_values(got, reference(program, inputs))


def test_weights_come_from_the_programs_bytes(shared_dir: Path) -> None:
    # conv.hwx keeps one 64-byte kernel buffer per output channel (command-stream.md §3.10)
    program = anesim.load(shared_dir / "hwx" / "tinygrad" / "conv.hwx")
    data = next(s.data for s in program.slots.values() if s.role == "constant" and s.data)
    rows = np.frombuffer(data[:0xC0], np.uint16).reshape(3, 32)[:, :3]
    assert np.array_equal(program.tasks[0].ne.kernel.weights.reshape(3, 3), rows)


def test_tinygrad_sigmoid_within_its_tolerance(shared_dir: Path) -> None:
    program = anesim.load(shared_dir / "hwx" / "tinygrad" / "sigmoid.hwx")
    x = np.random.default_rng(8).uniform(-16, 16, (1, 1, 1, 77)).astype(np.float16)
    got = anesim.execute(program, {"image": x})["probs"]
    assert errors(got, unary(_sigmoid)(x))[0] <= SIGMOID_MAX_ABS
    # every finite fp16 input through the program's one task (77 wide), as the docs measure it
    lut = table_to_lut(program.tasks[0].ne.table)
    every = np.asarray(apply_lut(EVERY_FP16.view(np.uint16), lut)).view(np.float16)
    assert errors(every, unary(_sigmoid)(EVERY_FP16))[0] <= SIGMOID_MAX_ABS
