"""Compile and timing speed of the big example programs (ResNet-50 and ViT-B/16).

Prints, per program: compile time, timing-simulation time, their sum, the task count and the
simulated latency on the chip; then the wall time of the command a user runs,
``anesim run programs/resnet50.yaml --chip m1 --timing-only`` (process start included), which
must stay under 10 s on a 2-core machine.

    python benchmarks/bench_compile.py [--chip m1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ["resnet50", "vit_b16"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default="m1")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    args = parser.parse_args()

    from anesim.chips import load_chip
    from anesim.compiler import compile_file
    from anesim.timing import simulate

    chip = load_chip(args.chip)
    print(f"chip {chip.name}; best of {args.repeat}")
    print(f"{'program':<12} {'tasks':>6} {'compile s':>10} {'timing s':>9} {'total s':>8} {'latency ms':>11}")
    for name in PROGRAMS:
        path = REPO / "programs" / f"{name}.yaml"
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = compile_file(path, chip)
            t1 = time.perf_counter()
            timing = simulate(result.program, chip)
            t2 = time.perf_counter()
            if best is None or (t2 - t0) < best[0] + best[1]:
                best = (t1 - t0, t2 - t1, len(result.program.tasks), timing.latency_s)
        c, s, tasks, latency = best  # type: ignore[misc]
        print(f"{name:<12} {tasks:>6} {c:>10.3f} {s:>9.3f} {c + s:>8.3f} {latency * 1e3:>11.3f}")

    command = [sys.executable, "-m", "anesim", "run", str(REPO / "programs" / "resnet50.yaml"),
               "--chip", args.chip, "--timing-only"]
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    shown = "anesim run programs/resnet50.yaml --chip " + args.chip + " --timing-only"
    if proc.returncode == 0:
        print(f"{shown}: {wall:.2f} s wall (bar: 10 s)")
    else:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{shown}: failed in {wall:.2f} s ({last})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
