"""How far the fast numerics mode lands from the exact mode, op by op, over >= 10^6 random cases.

Every row runs one op (a matmul, an inner product or a convolution shaped like the layers of the
shipped programs) on seeded random operands in both modes and compares the fp16 results output
by output. A case is one output element; each row draws at least ``--cases`` of them.

Columns:

* ``max ulp`` / ``p99.9 ulp``: the distance between the exact and the fast result in fp16 ulps,
  counted as the number of fp16 values between them (+0 and -0 are the same point; an infinity
  one step beyond 65504);
* ``p99.9 / RMS``: the 99.9th percentile of |exact - fast| over the RMS of the outputs, a
  scale-free figure that does not blow up near zero;
* ``identical``: the share of outputs with the same bits in both modes;
* ``inf mismatch``: outputs that are infinite in one mode only (the sticky interior overflow,
  which the fast mode does not track);
* ``exact p99.9`` / ``fast p99.9``: each mode's distance, in the same ulps, from the float64
  sum rounded once to fp16: which of the two is nearer the mathematical result.

Large ulp distances sit on outputs near zero, where cancellation leaves a result far smaller
than the products that formed it and one ulp of the result is tiny.

    python benchmarks/numerics_deviation.py [--cases 1000000] [--markdown]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import anesim.numerics as N
from anesim.numerics.rules import IEEE_PORT_RULES, M1_RULES, MacRules


@dataclass(frozen=True)
class Case:
    """One op: a name, how many outputs one draw gives, and the op in both modes."""

    name: str
    rules: MacRules
    draw: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray]]


def ordered(bits: np.ndarray) -> np.ndarray:
    """fp16 bit patterns as integers in value order (+0 and -0 both 0; inf one past 65504)."""
    b = bits.astype(np.int32)
    mag = b & 0x7FFF
    return np.where(b & 0x8000, -mag, mag)


def _fp16(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return N.to_bits(values.astype(np.float16))


def _matmul_case(m: int, k: int, n: int, scale: float = 1.0) -> Callable:  # type: ignore[type-arg]
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = _fp16(rng.standard_normal((m, k)) * scale)
        b = _fp16(rng.standard_normal((k, n)) / math.sqrt(k) * scale)
        return a, b, np.asarray(0)
    return draw


def _conv_case(c: int, o: int, side: int, kernel: int, stride: int = 1, groups: int = 1) -> Callable:  # type: ignore[type-arg]
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = _fp16(rng.standard_normal((1, c, side, side)))
        fan_in = (c // groups) * kernel * kernel
        w = _fp16(rng.standard_normal((o, c // groups, kernel, kernel)) / math.sqrt(fan_in))
        return x, w, np.asarray([stride, kernel // 2, groups])
    return draw


CASES = [
    Case("matmul K=64", M1_RULES, _matmul_case(256, 64, 1024)),
    Case("matmul K=256", M1_RULES, _matmul_case(256, 256, 1024)),
    Case("matmul K=1024", M1_RULES, _matmul_case(256, 1024, 1024)),
    Case("matmul K=4096", M1_RULES, _matmul_case(256, 4096, 1024)),
    Case("matmul K=256, M5 port (IEEE)", IEEE_PORT_RULES, _matmul_case(256, 256, 1024)),
    Case("matmul K=256, results near the 2^15 port limit", M1_RULES, _matmul_case(256, 256, 1024, 90.0)),
    Case("inner product 2048 -> 1000", M1_RULES, _matmul_case(256, 2048, 1000)),
    Case("conv 3x3, 64 -> 64, 56x56", M1_RULES, _conv_case(64, 64, 56, 3)),
    Case("conv 1x1, 256 -> 64, 56x56", M1_RULES, _conv_case(256, 64, 56, 1)),
    Case("conv 7x7 stride 2, 3 -> 64, 224x224", M1_RULES, _conv_case(3, 64, 224, 7, 2)),
    Case("conv 3x3, 512 -> 512, 7x7", M1_RULES, _conv_case(512, 512, 7, 3)),
    Case("depthwise 3x3, 256 ch, 56x56", M1_RULES, _conv_case(256, 256, 56, 3, 1, 256)),
]


def _run(case: Case, operands: tuple[np.ndarray, np.ndarray, np.ndarray], mode: str) -> np.ndarray:
    a, b, conv = operands
    if conv.ndim == 0:
        return N.matmul(a, b, rules=case.rules, mode=mode)
    stride, pad, groups = (int(v) for v in conv)
    return N.conv2d(a, b, stride=stride, padding=pad, groups=groups, rules=case.rules, mode=mode)


def _reference(case: Case, operands: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """The float64 result rounded once to fp16, with the port limit and subnormal flush of the rules."""
    a, b, conv = operands
    af = N.from_bits(a).astype(np.float64)
    bf = N.from_bits(b).astype(np.float64)
    if case.rules.flush_subnormals:
        af[np.abs(af) < 2.0**-14] = 0.0
        bf[np.abs(bf) < 2.0**-14] = 0.0
    if conv.ndim == 0:
        y = af @ bf
    else:
        y = _conv64(af, bf, *(int(v) for v in conv))
    limit = case.rules.overflow_threshold
    y = np.where(np.abs(y) >= limit, np.copysign(np.inf, y), y)
    with np.errstate(over="ignore"):
        out = N.to_bits(y.astype(np.float16))
    if case.rules.flush_subnormals:
        out[(out & 0x7C00) == 0] = 0
    out[out == 0x8000] = 0
    return out


def _conv64(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """A float64 grouped convolution by shifted windows."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    og = o // groups
    out = np.zeros((n, o, ho, wo))
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * og:(g + 1) * og]
        for ky in range(kh):
            for kx in range(kw):
                win = xs[:, :, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", win, wg[:, :, ky, kx])
    return out


def measure(case: Case, cases: int, seed: int) -> dict[str, float]:
    """Deviation figures of one op over at least ``cases`` outputs."""
    rng = np.random.default_rng(seed)
    dist, err_exact, err_fast, rel = [], [], [], []
    inf_mismatch = 0
    total = 0
    while total < cases:
        operands = case.draw(rng)
        exact = _run(case, operands, "exact")
        fast = _run(case, operands, "fast")
        ref = _reference(case, operands)
        e, f, r = ordered(exact).ravel(), ordered(fast).ravel(), ordered(ref).ravel()
        dist.append(np.abs(e - f))
        err_exact.append(np.abs(e - r))
        err_fast.append(np.abs(f - r))
        ev, fv = N.from_bits(exact).astype(np.float64).ravel(), N.from_bits(fast).astype(np.float64).ravel()
        finite = np.isfinite(ev) & np.isfinite(fv)
        rel.append(np.abs(ev[finite] - fv[finite]) / max(float(np.sqrt(np.mean(ev[finite] ** 2))), 1e-30))
        inf_mismatch += int(np.sum(np.isinf(N.from_bits(exact)) != np.isinf(N.from_bits(fast))))
        total += e.size
    d = np.concatenate(dist)
    ex = np.concatenate(err_exact)
    fa = np.concatenate(err_fast)
    return {
        "cases": float(d.size), "max": float(d.max()), "p999": float(np.percentile(d, 99.9)),
        "identical": float(np.mean(d == 0)), "rel": float(np.percentile(np.concatenate(rel), 99.9)), "inf_mismatch": float(inf_mismatch),
        "exact_p999": float(np.percentile(ex, 99.9)), "fast_p999": float(np.percentile(fa, 99.9)),
    }


def main() -> None:
    """Print one row per op."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="outputs per op (at least)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="run the ops whose name contains this text")
    args = parser.parse_args()
    print(f"# fast vs exact numerics, >= {args.cases:,} outputs per op, seed {args.seed}, "
          f"fp16 path {N.FP16_PATH}")
    print("| op | outputs | max ulp | p99.9 ulp | p99.9 / RMS | identical | inf mismatch | "
          "exact p99.9 vs f64 | fast p99.9 vs f64 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        r = measure(case, args.cases, args.seed)
        print(f"| {case.name} | {int(r['cases']):,} | {r['max']:.0f} | {r['p999']:.0f} | {r['rel']:.1e} | "
              f"{100 * r['identical']:.1f} % | {int(r['inf_mismatch'])} | {r['exact_p999']:.0f} | "
              f"{r['fast_p999']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
