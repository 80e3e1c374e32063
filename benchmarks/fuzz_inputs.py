"""Fuzz every kind of input file anesim reads, in capped worker processes.

    python benchmarks/fuzz_inputs.py [--cases 10000] [--seed 1234] [--workers 2] [--kinds hwx,npy]
    python benchmarks/fuzz_inputs.py --replay npy:17 --seed 1234     # one case, in this process

Cases are spread over the eight kinds (anesim.fuzz.DEFAULT_SHARES); each is reproducible from
(seed, kind, index). Prints per kind how many cases were accepted, refused with an error naming
the file, and failed: escaped as another exception, hung past the time limit, hit the
address-space cap, crashed, produced NaN/inf/negative timing or energy, or raised an error that
names no file. Exit status 1 if any case failed. The .hwx and raw kinds need ../shared beside the
checkout (or ANESIM_SHARED); without it they are left out, with a note.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anesim.fuzz import KINDS, case_counts, sources  # noqa: E402
from anesim.fuzz.pool import CASE_SECONDS, plan, replay, run_cases  # noqa: E402


def main() -> int:
    """Run the cases (or replay one) and print the counts; exit status 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seconds", type=float, default=CASE_SECONDS, help="time limit of one case")
    parser.add_argument("--replay", metavar="KIND:INDEX", help="run one case here and print how it ended")
    parser.add_argument("--show", type=int, default=10, help="failures to print in full")
    args = parser.parse_args()
    src = sources(ROOT)
    if args.replay:
        kind, _, index = args.replay.partition(":")
        result = replay(kind, int(index), args.seed, src)
        print(f"{kind}:{index} (seed {args.seed}): {result.status} in {result.seconds:.2f} s\n{result.detail}")
        return 0 if result.status in ("accepted", "refused") else 1
    counts = case_counts(args.cases, [k for k in args.kinds.split(",") if k], src)
    report = run_cases(plan(counts), args.seed, src=src, workers=args.workers, case_seconds=args.seconds)
    print(f"{report.cases} cases, seed {args.seed}, {args.workers} workers, {report.wall_s:.1f} s")
    print(report.table())
    for failure in report.failures[:args.show]:
        print(f"\n{failure.kind}:{failure.index} {failure.status} ({failure.seconds:.2f} s)\n{failure.detail}")
    if len(report.failures) > args.show:
        print(f"\n... {len(report.failures) - args.show} more failures")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
