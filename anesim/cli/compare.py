"""``anesim compare``: one model across chips, predicted figures marked as such."""

from __future__ import annotations

import argparse
from pathlib import Path

from anesim.cli.options import add_param_option, program_params
from anesim.cli.output import print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand."""
    p = subparsers.add_parser(
        "compare", help="time one model on several chips, print and plot them side by side",
        description="Compile MODEL for each chip, simulate it (timing only), print latency, throughput and power "
                    "per chip and plot them. Chips without measurements are marked predicted, with the 80 % "
                    "range of their latency from the cross-validation error (docs/validation.md).")
    p.add_argument("model", help="a model file (program YAML, ONNX, Core ML)")
    p.add_argument("--chips", default="a14,a15,a16,a17-pro,a18-pro",
                   help="comma-separated chip names or files, or 'all' (default: a14,a15,a16,a17-pro,a18-pro)")
    add_param_option(p)
    p.add_argument("-o", "--output", metavar="PNG", help="the figure (default: MODEL-compare.png beside the model "
                                                       "is not written; give a path to plot)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate, print, plot."""
    from anesim.chips import load_chip
    from anesim.errors import InputError
    from anesim.sweep import expand, resolve_chips, run_point
    from anesim.sweep.overrides import canonical_key, is_chip_key
    from anesim.sweep.status import chip_status

    if not Path(args.model).is_file() and not Path(args.model).is_dir():
        raise InputError("no such model file", file=args.model)
    params = program_params(args.param, args.model) or {}
    chip_keys = [k for k in params if is_chip_key(canonical_key(k))]
    if chip_keys:  # (expand would take them as chip-file overrides)
        raise InputError("--param sets the program's params, not chip-file keys", file=args.model,
                         expected="a name under the program's params:; chip-file overrides: anesim sweep --set",
                         found=", ".join(chip_keys))
    chips = resolve_chips(args.chips)
    rows = [run_point(point) for point in expand([args.model], chips, {k: [v] for k, v in params.items()})]
    statuses = [chip_status(load_chip(c)) for c in chips]
    table = []
    for row, status in zip(rows, statuses):
        mark = "" if status.validated else " *"
        if row.get("error"):
            table.append([row["chip"], "-", "-", "-", "-", "-", f"error: {row['error']}"])
            continue
        table.append([row["chip"] + mark, row["generation"], f"{row['latency_s'] * 1e3:.4g}", _range_ms(row),
                      f"{row['flops_per_s'] / 1e12:.3g}", f"{row['power_w']:.3g}", status.describe()])
    print(f"{args.model}: timing only, one dispatch per segment")
    print_table(["chip", "generation", "latency ms", "80 % range ms", "TFLOP/s", "power W", "status"], table,
                right=(2, 3, 4, 5))
    if any(not s.validated for s in statuses):
        print("* predicted: no measurement backs this chip's figures; the range is where the measured latency "
              "lies for 80 % of the held-out points of the cross-validation (docs/validation.md)")
    if args.output:
        _plot(rows, statuses, Path(args.output), Path(args.model).stem)
        print(f"wrote {args.output}")
    return 0 if any(not r.get("error") for r in rows) else 2


def _range_ms(row: dict) -> str:  # type: ignore[type-arg]
    """'1.02-1.87' for a predicted chip, '-' for a calibrated one (its figures are in-sample)."""
    low, high = row.get("latency_low_s"), row.get("latency_high_s")
    if low is None or high is None:
        return "-"
    return f"{low * 1e3:.3g}-{high * 1e3:.3g}"


def _plot(rows: list[dict], statuses: list, path: Path, model: str) -> None:  # type: ignore[type-arg]
    """Latency bars per chip; predicted (uncalibrated) chips hatched and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows)), 4))
    for i, (row, status) in enumerate(zip(rows, statuses)):
        if row.get("error"):
            continue
        latency = row["latency_s"] * 1e3
        ax.bar(i, latency, color="#4c72b0" if status.validated else "#c0c8d8",
               hatch="" if status.validated else "//", edgecolor="#334")
        low, high = row.get("latency_low_s"), row.get("latency_high_s")
        top = latency
        if low is not None and high is not None:  # (the 80 % range of a predicted chip)
            ax.errorbar(i, latency, yerr=[[latency - low * 1e3], [high * 1e3 - latency]], color="#334", capsize=4)
            top = high * 1e3
        ax.annotate("validated" if status.validated else "predicted", (i, top), ha="center", va="bottom",
                    fontsize=7)
    ax.set_xticks(range(len(rows)), [r["chip"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{model}: hatched predicted, whiskers its 80 % range", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
