"""``anesim roofline``: a chip's roofline with its measured and simulated points."""

from __future__ import annotations

import argparse
from pathlib import Path

from anesim.chips import load_chip
from anesim.errors import InputError
from anesim.validate.report import roofline_plot
from anesim.validate.runner import resolve_chips, validate_chip
from anesim.validate.traces import load_traces


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``roofline`` subcommand."""
    p = subparsers.add_parser("roofline", help="plot a chip's roofline with measured and simulated points")
    p.add_argument("--chip", required=True, help="a chip name, alias or chip YAML path")
    p.add_argument("-o", "--output", "--plot", required=True, type=Path, help="the image to write (.png, .svg, .pdf)")
    p.add_argument("--roofs-only", action="store_true", help="draw the roofs without simulating any point")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate the chip's traced workloads (if it has any) and draw the plot."""
    chip = load_chip(args.chip)
    points = []
    rows = load_traces()
    if not args.roofs_only:
        try:
            (name,) = resolve_chips(chip, rows)  # (the chip loaded, not its name: a file's need not be a chip's)
        except InputError:  # no traces for this chip: roofs only
            name = None
        if name:
            points = validate_chip(name, rows, chip=chip).points
    roofline_plot(chip, points, args.output)
    print(f"wrote {args.output} ({len(points)} points)")
    return 0
