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
    p.add_argument("--cross-validate", action="store_true",
                   help="fit the shared constants with one chip (and one family) left out and predict it")
    p.add_argument("--write", action="store_true",
                   help="with --cross-validate: write the prediction intervals (chips/model/uncertainty.yaml)")
    p.add_argument("--whole-models", action="store_true",
                   help="the whole-model figures published for Apple chips beside anesim's predictions "
                        "(external checks, validation/published_whole_models.yaml); --chip picks one chip's")
    p.add_argument("--programs", metavar="DIR", type=Path,
                   help="with --whole-models: the folder of the programs they name (default: the shipped programs)")
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


def _stage(message: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{message:<60}")
        sys.stderr.flush()


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def _r(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def cross_validation_rows(data: dict[str, Any]) -> list[list[str]]:
    """The --cross-validate table: per chip and pooled, in-sample against out-of-sample."""
    rows = []
    for name, c in data["chips"].items():
        rows.append([name, c["points"], _pct(c["in_sample_median_abs_error_pct"]),
                     _pct(c["leave_one_chip_out_median_abs_error_pct"]),
                     _pct(c["leave_one_family_out_median_abs_error_pct"]),
                     _r(c["in_sample_log_r"]), _r(c["leave_one_chip_out_log_r"]), _r(c["leave_one_family_out_log_r"])])
    p = data["pooled"]
    rows.append(["(pooled)", p["in_sample"]["points"], _pct(p["in_sample"]["median_abs_error_pct"]),
                 _pct(p["leave_one_chip_out"]["median_abs_error_pct"]),
                 _pct(p["leave_one_family_out"]["median_abs_error_pct"]), _r(p["in_sample"]["log_r"]),
                 _r(p["leave_one_chip_out"]["log_r"]), _r(p["leave_one_family_out"]["log_r"])])
    return rows


CV_HEADERS = ["chip", "points", "in-sample median |err| %", "leave-one-chip-out %", "leave-one-family-out %",
              "log r in", "log r LOCO", "log r LOFO"]


def run_cross_validation(args: argparse.Namespace) -> int:
    """--cross-validate: the table (or JSON), and the intervals file with --write."""
    from anesim.validate.crossval import cross_validate, uncertainty_data, write_uncertainty

    if (args.measurements is not None or args.rules or args.record or args.report or args.summary
            or args.chip.strip().lower() != "all"):
        raise InputError("--cross-validate runs on the shipped traces of every calibration chip, with the "
                         "shipped curation, and prints one table",
                         expected="no --measurements, --rules, --record, --report, --summary or --chip")
    cv = cross_validate(progress=_stage)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    data = cv.to_json()
    data["uncertainty"] = uncertainty_data(cv)
    if args.json:
        print_json(data)
    else:
        print_table(CV_HEADERS, cross_validation_rows(data), right=(1, 2, 3, 4, 5, 6, 7))
        print()
        print("shared constants fitted on every chip: "
              + ", ".join(f"{k} = {v:.4g}" for k, v in cv.constants.items()))
        for f in data["folds"]:
            print(f"{f['kind'].replace('_', '-')}: fitted on {', '.join(f['fitted_on'])}; predicted "
                  f"{', '.join(f['predicted'])}: median |err| {_pct(f['median_abs_error_pct'])} %")
    if args.write:
        path = write_uncertainty(cv)
        if not args.json:
            print(f"wrote the prediction intervals to {path}")
    return 0


WHOLE_MODEL_HEADERS = ["program", "chip", "published", "source", "anesim", "anesim / published", "band"]


def run_whole_models(args: argparse.Namespace) -> int:
    """--whole-models: every published whole-model figure (of --chip) beside the prediction."""
    from anesim.validate.whole_models import compare, load_published, program_predictor, programs_dir

    if (args.measurements is not None or args.rules or args.record or args.report or args.summary
            or args.cross_validate or args.write):
        raise InputError("--whole-models compares the published whole-model figures with the shipped programs",
                         expected="no --measurements, --rules, --record, --report, --summary, --cross-validate "
                                  "or --write")
    figures = load_published()
    if args.chip.strip().lower() != "all":
        name = load_chip(args.chip).name
        figures = [f for f in figures if load_chip(f.chip).name == name]
        if not figures:
            raise InputError(f"no whole-model figure for chip '{args.chip}'",
                             expected="a chip of validation/published_whole_models.yaml, or all")
    rows = compare(figures, program_predictor(args.programs or programs_dir()),
                   progress=lambda i, n: _stage(f"whole-model figure {i + 1} of {n}"))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if args.json:
        print_json({"figures": rows})
        return 0
    table = []
    for r in rows:
        band = "-" if r["band"] is None else f"{r['band'][0]:g}-{r['band'][1]:g}" + ("" if r["in_band"] else " OUT")
        table.append([r["label"], r["chip"], r["published_shown"], r["source"], r["anesim_shown"], f"{r['ratio']:.3g}",
                      band])
    print_table(WHOLE_MODEL_HEADERS, table, right=(5,))
    print("external checks, never fitted; a band is the range of anesim / published a comparison is held to "
          "(docs/whole-models.md §3), the others are reported only")
    return 0


def run(args: argparse.Namespace) -> int:
    """Validate, then print, report and record as asked."""
    if args.whole_models:
        return run_whole_models(args)
    if args.programs is not None:
        raise InputError("--programs goes with --whole-models", found=str(args.programs))
    if args.cross_validate:
        return run_cross_validation(args)
    if args.write:
        raise InputError("--write goes with --cross-validate")
    if args.record and args.measurements is not None:
        raise InputError("--record keeps the shipped traces' accuracy; it does not take --measurements")
    if args.summary and args.json:
        raise InputError("--summary leaves the per-point tables out of the printed report; --json prints "
                         "every point", expected="one of the two", found="--summary --json")
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
