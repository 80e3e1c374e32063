"""``anesim calibrate``: fit a chip's ``fitted`` parameters to its measured traces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anesim.cli.output import print_json, print_table
from anesim.datafiles import in_checkout
from anesim.errors import InputError
from anesim.cli.validate import add_measurement_args, measured_rows
from anesim.validate.calibrate import Calibration, calibrate, write_back
from anesim.validate.report import fmt
from anesim.validate.runner import resolve_chips


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` subcommand."""
    p = subparsers.add_parser("calibrate", help="fit a chip's 'fitted' parameters to the measured traces")
    p.add_argument("--shared", action="store_true",
                   help="fit the cross-generation model's shared constants (chips/model/scaling.yaml) on every "
                        "calibration chip of the shipped traces")
    p.add_argument("--chip", help="a chip with measurements: M1, 'M1 Max', M5 or 'M5 Pro' in "
                   "the shipped traces, or any chip of a --measurements file")
    add_measurement_args(p)
    p.add_argument("--holdout", type=float, help=f"fraction of measurements held back ({DEFAULT_HOLDOUT})")
    p.add_argument("--seed", type=int, help=f"seed of the split hash ({DEFAULT_SEED})")
    p.add_argument("--param", action="append", default=[], metavar="KEY",
                   help="also fit a parameter other generations share (e.g. dispatch.per_task_overhead_s)")
    p.add_argument("--only", metavar="PREFIX",
                   help="fit only the parameters whose key starts with PREFIX (e.g. power, ne.)")
    p.add_argument("--no-cv", action="store_true", help="skip leave-one-family-out cross-validation")
    p.add_argument("--dry-run", action="store_true", help="report the fit, write nothing")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write the calibrated chip as edited copies of its files in DIR (DIR/<chip>.yaml, with "
                        f"the generations it inherits in DIR/generations/); default: ./{DEFAULT_OUT} for an "
                        "installed anesim, whose own chip files are never edited; in a source checkout, the "
                        "checkout's chips/ files themselves")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


DEFAULT_OUT = "calibrated-chips"
DEFAULT_HOLDOUT = 0.25
DEFAULT_SEED = 7


def out_dir(args: argparse.Namespace) -> Path | None:
    """Where the fitted chip files go: --out, else the chip files themselves in a checkout (how the
    shipped values are made), else ./calibrated-chips (an installed package is left alone)."""
    if args.out is not None:
        return args.out
    return None if in_checkout("chips") else Path(DEFAULT_OUT)


def _progress(n: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{n} parameter vectors evaluated ")
        sys.stderr.flush()


def _as_dict(r: Calibration) -> dict[str, object]:
    return {
        "chip": r.chip, "split": r.split, "evaluations": r.evaluations,
        "params": [{"key": p.key, "file": p.file.name, "fitted": free, "held": held or None, "before": s, "after": a}
                   for p, free, held, s, a in zip(r.params, r.free, r.held, r.start, r.fitted)],
        "calibration": r.calibration, "held_back": r.held_back,
        "held_back_before": r.before_held_back, "family_cv": r.family_cv,
    }


def run_shared(args: argparse.Namespace) -> int:
    """--shared: fit the shared constants on every calibration chip, verify by full simulation, write."""
    from anesim.validate.crossval import fit_constants, predict, surfaces_for, write_constants
    from anesim.validate.stats import summarize

    per_chip = [flag for flag, given in (("--chip", bool(args.chip)), ("--measurements", args.measurements is not None),
                                         ("--rules", bool(args.rules)), ("--holdout", args.holdout is not None),
                                         ("--seed", args.seed is not None), ("--param", bool(args.param)),
                                         ("--only", args.only is not None), ("--no-cv", args.no_cv)) if given]
    if per_chip:  # (options of one chip's fit: the shared fit takes none of them)
        raise InputError("--shared fits on the shipped traces of every calibration chip",
                         expected="no --chip, --measurements, --rules, --holdout, --seed, --param, --only or --no-cv",
                         found=" ".join(per_chip))
    if not args.dry_run and (args.out is not None or not in_checkout("chips")):
        # (the constants are read from the package's own chips/model/scaling.yaml, and only there)
        raise InputError("--shared refits the constants shipped in chips/model/scaling.yaml, which only a source "
                         "checkout of anesim edits", expected="--dry-run, or a source checkout without --out",
                         found="an --out folder" if args.out is not None else "an installed anesim")
    surfaces, timer, rows = surfaces_for()
    constants = fit_constants(surfaces)
    figures = {s.name: summarize(predict(s, constants, rows, timer)) for s in surfaces}
    if args.json:
        print_json({"constants": constants, "chips": figures})
    else:
        print("shared constants: " + ", ".join(f"{k} = {v:.4g}" for k, v in constants.items()))
        print_table(["chip", "points", "median |err| %", "log r"],
                    [[n, f["n_points"], fmt(f["median_abs_pct_error"]), f"{f['log_pearson_r']:.3f}"]
                     for n, f in figures.items()], right=(1, 2, 3))
    if not args.dry_run:
        chips = ", ".join(figures)
        path = write_constants(constants, f"anesim calibrate --shared: fitted on every mapped row of "
                                          f"validation/m1.yaml and validation/m5.yaml ({chips})")
        if not args.json:
            print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Fit, report and (unless --dry-run) write the values back."""
    if args.dry_run and args.out is not None:
        raise InputError("--dry-run writes nothing, and --out names where to write", expected="one of the two",
                         found=f"--dry-run --out {args.out}")
    if args.shared:
        return run_shared(args)
    if not args.chip:
        raise InputError("calibrate needs --chip NAME or --shared")
    rows = measured_rows(args)
    (name,) = resolve_chips(args.chip, rows)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    holdout = DEFAULT_HOLDOUT if args.holdout is None else args.holdout
    result = calibrate(name, rows=rows, seed=seed, holdout=holdout, include=args.param,
                       cv=not args.no_cv, progress=_progress, only=args.only,
                       derived=args.measurements is not None, chip_file=args.chip)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if args.measurements is not None:
        measured_in = str(args.measurements)
    else:
        measured_in = "validation/" + ("m5.yaml" if name.startswith("M5") else "m1.yaml")
    before, after = result.before_held_back.get("median_abs_pct_error"), result.held_back.get("median_abs_pct_error")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and after > before:
        print(f"anesim: warning: the fit predicts the held-back split worse than the values it started from "
              f"(median |err| {before:.1f} % -> {after:.1f} %); --dry-run reports a fit without writing it",
              file=sys.stderr)
    copies_in = out_dir(args)
    edited = [] if args.dry_run else write_back(result, measured_in, copies_in)
    if args.json:
        out = _as_dict(result)
        out["written"] = [str(p) for p in edited]
        print_json(out)
        return 0
    rows_out = [[p.key, p.file.name, f"{s:.4g}", f"{a:.4g}", held or "fitted"]
                for p, held, s, a in zip(result.params, result.held, result.start, result.fitted)]
    print_table(["parameter", "file", "before", "after", ""], rows_out)
    print()
    table = [["calibration split", result.calibration], ["held-back split (before)", result.before_held_back],
             ["held-back split (after)", result.held_back]]
    if result.family_cv:
        table.append(["leave-one-family-out", result.family_cv])
    print_table(["split", "points", "median |err| %", "mean |err| %", "max |err| %", "log r"],
                [[label, str(s["n_points"]), fmt(s["median_abs_pct_error"]), fmt(s["mean_abs_pct_error"]),
                  fmt(s["max_abs_pct_error"]), fmt(s["log_pearson_r"], 3)] for label, s in table],
                right=(1, 2, 3, 4, 5))
    print(f"\n{result.evaluations} parameter vectors evaluated; split: {result.split}")
    for path in edited:
        print(f"wrote {path}")
    if edited and copies_in is not None:
        print(f"the calibrated chip: --chip {edited[0]}")
    return 0
