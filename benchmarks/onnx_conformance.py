"""The ONNX backend conformance counts: every node and simple-model case the installed onnx ships.

    python benchmarks/onnx_conformance.py                 # counts, and the import time of 500 cases
    python benchmarks/onnx_conformance.py --write-expected    # rewrite tests/onnx_expected_failures.yaml

Prints passed (on the engine alone, with host fallback ops, or wholly computed at compile time),
refused with a reason, and failing (wrong values or crashes), of all cases and of the cases that
use only the types the engine handles (fp16, fp32, int8, uint8, bool, int64 for shapes); then
the time to import and compile 500 cases (bar: under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import onnx_support  # noqa: E402

HEADER = """\
# ONNX backend conformance: the cases anesim does not pass, each with the reason.
# tests/test_onnx_backend.py applies them as expected failures (a listed case that starts to
# pass fails the suite until it is removed here); benchmarks/onnx_conformance.py counts them.
#   refused: anesim raises an AnesimError naming the node, op, attribute, type or opset
#   fp16:    the case runs, but its inputs cannot be held in fp16 (docs/onnx.md, Tolerances)
# Regenerate with: python benchmarks/onnx_conformance.py --write-expected
"""


def _reason(outcome: onnx_support.Outcome) -> str:
    detail = outcome.detail
    if detail.startswith(outcome.name + ": "):
        detail = detail[len(outcome.name) + 2:]
    return " ".join(detail.split()).replace('"', "'")[:240]


def write_expected(outcomes: list[onnx_support.Outcome]) -> None:
    """The expected-failure list from a run (fp16 entries keep their fixed reason)."""
    lines = [HEADER]
    for o in sorted(outcomes, key=lambda o: o.name):
        if o.status == "passed":
            continue
        if o.status == "refused":
            lines.append(f'{o.name}: "refused: {_reason(o)}"')
        elif o.name in onnx_support.FP16_LIMITED:
            lines.append(f'{o.name}: "fp16: {onnx_support.FP16_LIMITED[o.name]}"')
        else:
            lines.append(f'{o.name}: "FAILING ({o.status}): {_reason(o)}"')
    onnx_support.EXPECTED_FAILURES.write_text("\n".join(lines) + "\n")
    print(f"wrote {onnx_support.EXPECTED_FAILURES}")


def import_time(cases: list, count: int = 500) -> tuple[int, float]:
    """Seconds to import and compile the first ``count`` cases that import (refusals included)."""
    from anesim.errors import AnesimError
    from anesim.onnx_backend import AnesimBackend

    started = time.perf_counter()
    done = 0
    for case in cases[:count]:
        model, sets = onnx_support.case_model(case)
        try:
            rep = AnesimBackend.prepare(model, "CPU")
            if rep.bound_names and sets:
                feeds = dict(zip(rep.input_names, sets[0][0]))
                rep._prepare({n: feeds[n] for n in rep.bound_names})
        except AnesimError:
            pass
        done += 1
    return done, time.perf_counter() - started


def main() -> int:
    """Run every case and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-expected", action="store_true", help="rewrite the expected-failure list")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    args = parser.parse_args()
    started = time.perf_counter()
    cases = [c for c in onnx_support.load_cases() if args.k in c.name]
    print(f"loaded {len(cases)} cases in {time.perf_counter() - started:.1f} s")
    count, seconds = import_time(cases)
    print(f"import and compile of {count} cases: {seconds:.1f} s (bar: 60 s on 2 cores)")
    started = time.perf_counter()
    outcomes = [onnx_support.run_case(c) for c in cases]
    print(f"ran {len(outcomes)} cases in {time.perf_counter() - started:.1f} s")
    for label, group in (("all cases", outcomes), ("cases of engine types", [o for o in outcomes if o.ane_typed])):
        counts = collections.Counter(o.status for o in group)
        passed = [o for o in group if o.status == "passed"]
        engine = sum(1 for o in passed if not o.host_ops and not o.folded)
        host = sum(1 for o in passed if o.host_ops)
        folded = sum(1 for o in passed if o.folded)
        total = len(group) or 1
        print(f"{label}: {len(group)}")
        print(f"  passed   {counts['passed']:5d} ({100 * counts['passed'] / total:.1f} %): {engine} on the "
              f"engine alone, {host} with CPU-fallback host ops, {folded} computed at compile time")
        print(f"  refused  {counts['refused']:5d} ({100 * counts['refused'] / total:.1f} %) with a reason")
        print(f"  failing  {counts['wrong'] + counts['crashed']:5d} (wrong values {counts['wrong']}, "
              f"crashes {counts['crashed']})")
    failing = [o for o in outcomes if o.status in ("wrong", "crashed")]
    for o in failing:
        print(f"  {o.status}: {o.name}: {_reason(o)[:160]}")
    if args.write_expected:
        write_expected(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
