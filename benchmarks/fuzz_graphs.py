"""Differential fuzzing of the compiler: random small graphs, engine against numpy reference.

    python benchmarks/fuzz_graphs.py [--cases 3000] [--seed 1] [--workers 2] [--chip m1]
    python benchmarks/fuzz_graphs.py --replay 17 --seed 1      # one case, with its operations
    python benchmarks/fuzz_graphs.py --onnx --cases 2000       # single ONNX operators against ONNX Runtime

Each case (anesim.fuzz.graphs) is a chain of one to four random operations on a random input,
compiled for the M1 (or --chip) and executed with the engine's fp16 numerics, then compared with the
float32 reference. Prints how many cases computed their graph, were refused by the compiler, or
drew an invalid graph, and every failure (wrong values or shape, another exception) with its
operations. With --onnx, each case is one ONNX operator with random attributes, run by anesim
and by ONNX Runtime (anesim.fuzz.onnx_ops). Exit status 1 if any case failed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anesim.fuzz.graphs import GraphCase, run_graph_case  # noqa: E402


def _chunk(seed: int, indices: list[int], chip: str = "m1", onnx: bool = False) -> list[GraphCase]:
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # (fp16 overflow to inf is the engine's value)
    if onnx:
        from anesim.fuzz.onnx_ops import run_onnx_case

        return [run_onnx_case(seed, i, chip) for i in indices]
    return [run_graph_case(seed, i, chip) for i in indices]


def main() -> int:
    """Run the cases (or replay one) and print the counts; exit status 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chip", default="m1", help="the chip to compile for and execute on")
    parser.add_argument("--onnx", action="store_true",
                        help="single ONNX operators against ONNX Runtime (anesim.fuzz.onnx_ops) instead")
    parser.add_argument("--replay", type=int, metavar="INDEX", help="run one case and print it")
    args = parser.parse_args()
    if args.replay is not None:
        case = _chunk(args.seed, [args.replay], args.chip, args.onnx)[0]
        print(f"case {case.index} (seed {args.seed}): {case.status} {case.detail}")
        for op in case.ops:
            print(f"  {op}")
        return 0 if case.status in ("ok", "refused", "invalid") else 1
    shares = [list(range(w, args.cases, args.workers)) for w in range(args.workers)]
    with ProcessPoolExecutor(args.workers) as pool:
        cases = [c for part in pool.map(_chunk, [args.seed] * args.workers, shares, [args.chip] * args.workers,
                                        [args.onnx] * args.workers) for c in part]
    counts = Counter(c.status for c in cases)
    print(f"{args.cases} cases, seed {args.seed}, {args.chip}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    failures = [c for c in cases if c.status not in ("ok", "refused", "invalid")]
    for case in sorted(failures, key=lambda c: c.index):
        print(f"case {case.index}: {case.status} {case.detail}: {'; '.join(case.ops)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
