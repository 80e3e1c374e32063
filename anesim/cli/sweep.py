"""``anesim sweep``: programs × chips × parameters, timing only, on Dask; a table and figures."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from anesim.cli.options import whole_number
from anesim.cli.output import print_table



def _check_program_params(programs: list[str], names: list[str]) -> None:
    """Every program declares every program parameter the sweep sets (else one error naming both)."""
    if not names:
        return
    from anesim.compiler.frontends.program_file import declared_params
    from anesim.errors import InputError

    for program in programs:
        declared = declared_params(program) if Path(program).suffix.lower() in (".yaml", ".yml") else {}
        missing = [n for n in names if n not in declared]
        if missing:
            raise InputError(f"'{missing[0]}' is neither a chip-file key nor a parameter of this program", file=program,
                             expected="a dotted chip key (ne.cores, memory.pool_bytes), clock, cores, or one of the "
                                      f"program's params: {', '.join(declared) or 'none declared'}",
                             found=missing[0])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand."""
    p = subparsers.add_parser(
        "sweep", help="time programs on many chips and parameters (Dask), write a table and plots",
        description="Simulate every PROGRAM on every chip for every combination of --param values (timing only), "
                    "on a Dask LocalCluster or an existing scheduler, and write DIR/sweep.csv (and sweep.parquet "
                    "if pyarrow is installed) with latency_by_chip.png, roofline.png and scaling.png.")
    p.add_argument("programs", nargs="+", metavar="PROGRAM", help="model files (program YAML, ONNX, Core ML)")
    p.add_argument("--chips", default="all", help="'all' or a comma-separated list of chip names or files (default all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a chip-file override on every point: a dotted key (ne.cores, memory.pool_bytes, "
                        "dram.peak_bytes_per_s) or clock (repeatable)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept key, one point per value (repeatable; the sweep is their product): a chip-file key, "
                        "or a parameter the program files declare under params: (batch, seq, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the table and figures")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (default: a new LocalCluster)")
    p.add_argument("--workers", type=whole_number,
                   help="LocalCluster worker processes (default 2; 0 runs in this process without Dask)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Expand, run, write, summarise."""
    from anesim.chips import load_chip
    from anesim.errors import InputError
    from anesim.sweep import expand, parse_assignments, resolve_chips
    from anesim.sweep.overrides import apply_overrides
    from anesim.sweep.plots import write_figures
    from anesim.sweep.runner import run_points
    from anesim.sweep.table import write_tables

    if args.scheduler is not None and args.workers is not None:
        raise InputError("--workers sizes the LocalCluster anesim starts; an existing --scheduler has its own "
                         "workers", expected="one of the two", found=f"--scheduler {args.scheduler} --workers {args.workers}")
    workers = 2 if args.workers is None else args.workers
    for program in args.programs:
        if not Path(program).is_file() and not Path(program).is_dir():
            raise InputError("no such program file", file=program)
    chips = resolve_chips(args.chips)
    fixed = parse_assignments(args.set, "--set", multi=False)
    swept = parse_assignments(args.param, "--param", multi=True)
    points = expand(list(args.programs), chips, fixed, swept)
    if points:  # an unknown key or a bad value fails here, once, rather than on every point
        apply_overrides(load_chip(points[0].chip), dict(points[0].overrides))
        _check_program_params(list(args.programs), [k for k, _ in points[0].params])
    print(f"anesim sweep: {len(args.programs)} program(s) x {len(chips)} chip(s) x "
          f"{len(points) // max(len(args.programs) * len(chips), 1)} parameter combination(s) = {len(points)} points, "
          f"timing only", file=sys.stderr)
    rows = run_points(points, scheduler=args.scheduler, workers=workers, progress=not args.no_progress,
                      warn=lambda m: print(f"anesim: warning: {m}", file=sys.stderr))
    out = Path(args.out)
    written = write_tables(rows, out)
    errors = [r for r in rows if r.get("error")]
    ok = [r for r in rows if not r.get("error")]
    written += write_figures(rows, list(points[0].swept) if points else [], out)
    if ok:
        fastest = min(ok, key=lambda r: r["latency_s"])
        slowest = max(ok, key=lambda r: r["latency_s"])
        print_table(["points", "ok", "errors", "fastest", "slowest"],
                    [[len(rows), len(ok), len(errors), f"{fastest['program']} on {fastest['chip']} "
                      f"{fastest['latency_s'] * 1e3:.4g} ms", f"{slowest['program']} on {slowest['chip']} "
                      f"{slowest['latency_s'] * 1e3:.4g} ms"]])
    for message, count in Counter(r["error"] for r in errors).most_common(5):
        print(f"anesim: {count} point(s) failed: {message}", file=sys.stderr)
    if "parquet" not in " ".join(p.suffix for p in written):
        print("note: sweep.parquet not written (pyarrow is not installed; the CSV holds the same table)")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if ok else 2
