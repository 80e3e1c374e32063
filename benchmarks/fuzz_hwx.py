"""Fuzz the program decoder: seeded mutations and truncations of every public sample.

    python benchmarks/fuzz_hwx.py [--cases 10000] [--seed 1234]

Every case damages one sample (the .hwx files and the eiln raw kernels, with and without their
sidecars) and runs decode, listing, program model, JSON form and re-encode. It prints how many
cases decoded, how many ended in each AnesimError subclass, the mean and slowest case, and per
sample. Any other exception, a case over one second, or a decodable input that does not
re-encode to its own bytes makes the run fail (exit status 1). Needs ../shared beside the checkout
(or ANESIM_SHARED).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anesim.hwx.fuzzing import Tally, load_samples, mutate, run_case  # noqa: E402

CASE_LIMIT_SECONDS = 1.0


def shared_dir() -> Path | None:
    """$ANESIM_SHARED, else ../shared beside the checkout, if it holds hwx/."""
    env = os.environ.get("ANESIM_SHARED")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared"]:
        if (candidate / "hwx").is_dir():
            return candidate
    return None


def main() -> int:
    """Run the cases and print the tally; exit status 1 if any case was too slow."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        print("fuzz_hwx: ../shared is not beside this checkout; nothing to fuzz", file=sys.stderr)
        return 2
    samples = load_samples(shared, ROOT / "programs" / "eiln")
    rng = random.Random(args.seed)
    total = Tally()
    per_sample: dict[str, Tally] = {}
    slow = []
    start = time.perf_counter()
    for i in range(args.cases):
        sample = samples[i % len(samples)]
        outcome = run_case(sample, mutate(sample, rng))  # anything but AnesimError propagates
        total.add(outcome)
        per_sample.setdefault(sample.name, Tally()).add(outcome)
        if outcome.seconds > CASE_LIMIT_SECONDS:
            slow.append((i, sample.name, outcome.seconds))
    wall = time.perf_counter() - start
    print(f"{total.cases} cases over {len(samples)} samples in {wall:.1f} s (seed {args.seed})")
    print(f"  decoded and re-encoded byte-exact: {total.decoded}")
    for name, count in sorted(total.errors.items()):
        print(f"  {name}: {count}")
    print(f"  mean case {1000 * total.total_seconds / max(total.cases, 1):.2f} ms, slowest {1000 * total.slowest:.1f} ms")
    print("  per sample (cases / decoded / slowest ms):")
    for name, t in sorted(per_sample.items()):
        print(f"    {name:<40} {t.cases:5d} {t.decoded:5d} {1000 * t.slowest:7.1f}")
    if slow:
        print(f"FAIL: {len(slow)} cases took over {CASE_LIMIT_SECONDS} s: {slow[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
