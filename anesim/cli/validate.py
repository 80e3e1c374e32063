"""``anesim validate``: simulate the measured M1/M5 workloads and report the error."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anesim.chips import load_chip
from anesim.cli.output import print_json, print_table
from anesim.validate.report import (
    POINT_HEADERS, SUMMARY_HEADERS, point_rows, summary_rows, write_report,
)
from anesim.validate.runner import ChipValidation, chip_families, to_json, validate
from anesim.validate.traces import ACCURACY_FILE, trace_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    p = subparsers.add_parser("validate", help="compare simulated latency with the measured M1/M5 traces")
    p.add_argument("--chip", default="all", help="a chip with traces (M1, 'M1 Max', M5, 'M5 Pro') or 'all'")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--report", metavar="DIR", type=Path, help="write plots and tables to DIR")
    p.add_argument("--summary", action="store_true", help="print the per-family table only, not every point")
    p.add_argument("--record", metavar="FILE", nargs="?", type=Path, const=True,
                   help=f"write the accuracy figures the regression test holds (default validation/{ACCURACY_FILE})")
    p.set_defaults(func=run)


def _progress(chip: str, i: int, n: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{chip}: {i + 1}/{n} rows ")
        sys.stderr.flush()
        if i + 1 == n:
            sys.stderr.write("\n")


def accuracy_record(results: dict[str, ChipValidation]) -> dict[str, Any]:
    """The figures the regression test compares against: per chip and family, without points."""
    chips = {}
    for name, v in results.items():
        s = v.summary()
        s.pop("points")
        chips[name] = s
    return {"generated_by": "anesim validate --chip all --record", "chip_families": chip_families(results),
            "chips": chips}


def run(args: argparse.Namespace) -> int:
    """Validate, then print, report and record as asked."""
    results = validate(args.chip, progress=_progress)
    if args.json:
        print_json(to_json(results))
    else:
        if not args.summary:
            for name, v in results.items():
                print(f"\n{name}: measured against simulated, per point (errors in latency space)")
                print_table(POINT_HEADERS, point_rows(v.points), right=(4, 5, 6))
        print()
        print_table(SUMMARY_HEADERS, summary_rows(results), right=(2, 3, 4, 5, 6, 7))
        for name, v in results.items():
            for rid, msg in v.failures:
                print(f"{name} {rid}: not simulated: {msg}")
    if args.report:
        chips = {name: load_chip(name) for name in results}
        files = write_report(results, chips, args.report)
        if not args.json:
            print(f"\nwrote {len(files)} files to {args.report}")
    if args.record:
        path = trace_dir() / ACCURACY_FILE if args.record is True else args.record
        path.write_text(json.dumps(accuracy_record(results), indent=1) + "\n", encoding="utf-8")
        if not args.json:
            print(f"recorded accuracy in {path}")
    return 0
