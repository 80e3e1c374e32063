"""Run the slow validation-accuracy regression test and print the accuracy table.

    python benchmarks/validate_accuracy.py [--record]

It simulates every mapped row of validation/m1.yaml and validation/m5.yaml, prints the per-family
table with the wall time, then runs tests/test_validation_accuracy.py (which compares with
validation/accuracy.json). --record rewrites validation/accuracy.json first.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Print the table, optionally record, then run the slow regression test."""
    from anesim.cli import main as anesim

    t0 = time.perf_counter()
    args = ["validate", "--chip", "all", "--summary"] + (["--record"] if "--record" in sys.argv else [])
    rc = anesim(args)
    print(f"\nvalidation wall time: {time.perf_counter() - t0:.1f} s")
    if rc:
        return rc
    test = ROOT / "tests" / "test_validation_accuracy.py"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "slow", str(test)], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
