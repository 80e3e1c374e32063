"""``anesim validate``: simulate measured workloads and report the error.

Without ``--measurements`` it validates the shipped M1/M5 traces (validation/*.yaml); with it,
any CSV in the shared calibration table's columns, curated by the same rules (plus any
``--rules`` files): rows it cannot use are excluded with a reason and counted in the coverage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from anesim.chips import load_chip
from anesim.cli.output import print_json, print_table
from anesim.errors import InputError
from anesim.validate.report import (
    POINT_HEADERS, SUMMARY_HEADERS, point_rows, summary_rows, write_report,
)
from anesim.validate.runner import ChipValidation, chip_families, coverage, to_json, validate
from anesim.validate.traces import ACCURACY_FILE, TraceRow, load_traces, trace_dir


def add_measurement_args(p: argparse.ArgumentParser) -> None:
    """--measurements and --rules, shared with ``anesim calibrate``."""
    p.add_argument("--measurements", metavar="FILE.csv", type=Path,
                   help="a measurement CSV in the columns of the shared calibration table (default: the "
                        "shipped M1/M5 traces)")
    p.add_argument("--rules", metavar="FILE.yaml", type=Path, action="append", default=[],
                   help="an extra curation rules file (sources of your own); repeatable")


def measured_rows(args: argparse.Namespace) -> list[TraceRow]:
    """The rows to validate: the --measurements file curated by the table, or the shipped traces."""
    if args.measurements is None:
        if args.rules:
            raise InputError("--rules applies to a --measurements file", found=str(args.rules[0]))
        return load_traces()
    from anesim.validate.curation import Curator, load_table
    from anesim.validate.measurements import load_measurements

    return load_measurements(args.measurements, Curator(load_table(*args.rules)))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    p = subparsers.add_parser("validate", help="compare simulated latency with measured traces")
    p.add_argument("--chip", default="all", help="a chip with traces (M1, 'M1 Max', M5, 'M5 Pro') or 'all'")
    add_measurement_args(p)
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


def coverage_lines(cov: dict[str, Any]) -> list[str]:
    """The coverage report: rows used, and rows excluded per reason."""
    lines = [f"coverage: {cov['used']} of {cov['rows']} rows used, {cov['rows'] - cov['used']} excluded"]
    lines += [f"  excluded {n:4d}  {reason}" for reason, n in cov["excluded"].items()]
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate, then print, report and record as asked."""
    if args.record and args.measurements is not None:
        raise InputError("--record keeps the shipped traces' accuracy; it does not take --measurements")
    rows = measured_rows(args)
    results = validate(args.chip, rows=rows, progress=_progress)
    source = str(args.measurements) if args.measurements is not None else None
    if args.json:
        print_json(to_json(results, rows, source))
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
        print()
        print("\n".join(coverage_lines(coverage(results, rows))))
    if args.report:
        chips = {name: load_chip(name) for name in results}
        files = write_report(results, chips, args.report, rows, source)
        if not args.json:
            print(f"\nwrote {len(files)} files to {args.report}")
    if args.record:
        path = trace_dir() / ACCURACY_FILE if args.record is True else args.record
        path.write_text(json.dumps(accuracy_record(results), indent=1) + "\n", encoding="utf-8")
        if not args.json:
            print(f"recorded accuracy in {path}")
    return 0
