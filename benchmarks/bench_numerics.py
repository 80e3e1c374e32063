"""Throughput of the fp16 kernels (exact and fast modes) beside numpy float32 matmul, in one run.

For each size n it times, best of ``--reps``:

* numpy float32 ``a @ b`` (BLAS, all cores) on n×n matrices — the yardstick;
* ``anesim.numerics.matmul`` on n×n fp16 matrices with the engine's full reduction rule
  (conversion, the radix-4 tile rounding, the output port), bit-exact with the reference;
* ``anesim.numerics.conv2d``: a 3×3 convolution, stride 1, padding 1, n → n channels on a
  16×16 image (2·9·n²·256 flops), through im2col onto the same kernel;
* the same matmul and convolution with ``mode="fast"`` (float32 BLAS sums, rounded once per
  output; docs/numerics.md), whose bar is 0.8× numpy float32 at n = 1024.

Then it times whole ResNet-50 runs, numerics and timing, as a user types them (a fresh process,
imports and chip loading included): ``anesim run programs/resnet50.yaml --chip m1 --numerics
fast`` (bar: under 3 s) and the same in exact mode. ``--no-resnet`` skips them.

The two phases of each round are separated by a short sleep, because BLAS and numba's OpenMP
threads keep spinning for a while after a call and would slow whichever runs next.

    python benchmarks/bench_numerics.py [--sizes 256 512 1024 2048] [--reps 3] [--no-resnet]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

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

    N.matmul(a16[:8, :8], b16[:8, :8], mode="fast")

    t_blas = t_mm = t_conv = t_fmm = t_fconv = float("inf")
    for _ in range(reps):
        t_blas = min(t_blas, _best_seconds(lambda: a32 @ b32, 3))
        t_fmm = min(t_fmm, _best_seconds(lambda: N.matmul(a16, b16, mode="fast"), 3))
        t_fconv = min(t_fconv, _best_seconds(lambda: N.conv2d(x16, w16, padding=1, mode="fast"), 3))
        time.sleep(SETTLE_S)
        t_mm = min(t_mm, _best_seconds(lambda: N.matmul(a16, b16), 1))
        t_conv = min(t_conv, _best_seconds(lambda: N.conv2d(x16, w16, padding=1), 1))
        time.sleep(SETTLE_S)
    return {
        "blas_f32": mm_flops / t_blas / 1e9,
        "exact_matmul": mm_flops / t_mm / 1e9,
        "exact_conv3x3": conv_flops / t_conv / 1e9,
        "fast_matmul": mm_flops / t_fmm / 1e9,
        "fast_conv3x3": conv_flops / t_fconv / 1e9,
    }


def resnet50_seconds(numerics: str, reps: int, blas_threads: int | None = None) -> float:
    """Best wall time of `anesim run programs/resnet50.yaml --chip m1 --numerics MODE` in a fresh process
    (with ``blas_threads``, OpenBLAS limited to that many threads)."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    cmd = [sys.executable, "-m", "anesim", "run", str(root / "programs" / "resnet50.yaml"), "--chip", "m1",
           "--numerics", numerics]
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=root, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Run the benchmark and print one row per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-resnet", action="store_true", help="skip the whole-model runs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
          f"fp16 path {N.FP16_PATH}, load average {load:.2f} at start")
    print(f"# conv: 3x3, stride 1, pad 1, n->n channels, {CONV_SIDE}x{CONV_SIDE} image; "
          "GFLOP/s = 2 flops per multiply-accumulate / best wall time")
    header = (f"{'n':>6} {'numpy f32':>10} {'exact mm':>10} {'ratio':>7} "
              f"{'exact conv':>11} {'ratio':>7} {'fast mm':>9} {'ratio':>7} {'fast conv':>10} {'ratio':>7}")
    print(header)
    for n in args.sizes:
        r = bench_size(n, args.reps, rng)
        blas = r["blas_f32"]
        print(f"{n:>6} {blas:>10.1f} {r['exact_matmul']:>10.1f} "
              f"{r['exact_matmul'] / blas:>7.3f} {r['exact_conv3x3']:>11.1f} "
              f"{r['exact_conv3x3'] / blas:>7.3f} {r['fast_matmul']:>9.1f} {r['fast_matmul'] / blas:>7.3f} "
              f"{r['fast_conv3x3']:>10.1f} {r['fast_conv3x3'] / blas:>7.3f}", flush=True)
    if not args.no_resnet:
        # one BLAS thread as well: on a machine shared with other jobs, a two-thread BLAS waits
        # for its descheduled helper at every barrier and the fast mode loses its edge
        for mode, threads in (("fast", None), ("fast", 1), ("exact", None)):
            seconds = resnet50_seconds(mode, max(1, args.reps - 1), threads)
            note = "" if threads is None else f", OPENBLAS_NUM_THREADS={threads}"
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"# anesim run programs/resnet50.yaml --chip m1 --numerics {mode}: {seconds:.2f} s wall "
                  f"(fresh process, numerics and timing{note}; load average {load:.2f})", flush=True)


if __name__ == "__main__":
    main()
