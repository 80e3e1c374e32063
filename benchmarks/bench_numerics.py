"""Throughput of the exact-numerics fp16 kernels beside numpy float32 matmul, in one run.

For each size n it times, best of ``--reps``:

* numpy float32 ``a @ b`` (BLAS, all cores) on n×n matrices — the yardstick;
* ``anesim.numerics.matmul`` on n×n fp16 matrices with the engine's full reduction rule
  (conversion, the radix-4 tile rounding, the output port), bit-exact with the reference;
* ``anesim.numerics.conv2d``: a 3×3 convolution, stride 1, padding 1, n → n channels on a
  16×16 image (2·9·n²·256 flops), through im2col onto the same kernel.

The two phases of each round are separated by a short sleep, because BLAS and numba's OpenMP
threads keep spinning for a while after a call and would slow whichever runs next.

    python benchmarks/bench_numerics.py [--sizes 256 512 1024 2048] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

import anesim.numerics as N

CONV_SIDE = 16  # image height and width of the convolution case
SETTLE_S = 0.3  # pause between timed phases


def _best_seconds(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``reps`` calls."""
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_size(n: int, reps: int, rng: np.random.Generator) -> dict[str, float]:
    """GFLOP/s of float32 BLAS matmul, exact fp16 matmul and exact fp16 3×3 conv at size n."""
    a32 = rng.standard_normal((n, n)).astype(np.float32)
    b32 = rng.standard_normal((n, n)).astype(np.float32)
    a16 = N.to_bits(a32.astype(np.float16))
    b16 = N.to_bits(b32.astype(np.float16))
    x16 = N.to_bits(rng.standard_normal((1, n, CONV_SIDE, CONV_SIDE)).astype(np.float16))
    w16 = N.to_bits((rng.standard_normal((n, n, 3, 3)) / np.sqrt(9 * n)).astype(np.float16))

    mm_flops = 2.0 * n**3
    conv_flops = 2.0 * 9 * n * n * CONV_SIDE * CONV_SIDE

    # warm up (numba compile or cache load, BLAS thread start)
    _ = a32 @ b32
    N.matmul(a16[:8, :8], b16[:8, :8])
    N.conv2d(x16[:, :4, :4, :4], w16[:4, :4], padding=1)

    t_blas = t_mm = t_conv = float("inf")
    for _ in range(reps):
        t_blas = min(t_blas, _best_seconds(lambda: a32 @ b32, 3))
        time.sleep(SETTLE_S)
        t_mm = min(t_mm, _best_seconds(lambda: N.matmul(a16, b16), 1))
        t_conv = min(t_conv, _best_seconds(lambda: N.conv2d(x16, w16, padding=1), 1))
        time.sleep(SETTLE_S)
    return {
        "blas_f32": mm_flops / t_blas / 1e9,
        "exact_matmul": mm_flops / t_mm / 1e9,
        "exact_conv3x3": conv_flops / t_conv / 1e9,
    }


def main() -> None:
    """Run the benchmark and print one row per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
          f"fp16 path {N.FP16_PATH}, load average {load:.2f} at start")
    print(f"# conv: 3x3, stride 1, pad 1, n->n channels, {CONV_SIDE}x{CONV_SIDE} image; "
          "GFLOP/s = 2 flops per multiply-accumulate / best wall time")
    header = (f"{'n':>6} {'numpy f32':>10} {'exact mm':>10} {'ratio':>7} "
              f"{'exact conv':>11} {'ratio':>7}")
    print(header)
    for n in args.sizes:
        r = bench_size(n, args.reps, rng)
        print(f"{n:>6} {r['blas_f32']:>10.1f} {r['exact_matmul']:>10.1f} "
              f"{r['exact_matmul'] / r['blas_f32']:>7.3f} {r['exact_conv3x3']:>11.1f} "
              f"{r['exact_conv3x3'] / r['blas_f32']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
