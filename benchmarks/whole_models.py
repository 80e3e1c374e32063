"""Whole-model predictions: every whole-model program on a list of chips, timing only.

Prints, per program, the predicted latency (ms) on each chip, then the wall time of the
compile and of the timing simulation on each chip (the process start and imports left out;
the bar for ``anesim run PROGRAM --timing-only`` is 2 s per program and chip). The figures
are predictions, not fits: docs/whole-models.md sets them beside the published ones.

    python benchmarks/whole_models.py [--chips m1,m1-max,m5,m5-pro,a17-pro,a16]
                                      [--programs resnet18,bert_base] [--markdown]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The whole networks under programs/ (the rest are single blocks and kernels).
WHOLE_MODELS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2", "mobilenet_v3_small",
    "mobilenet_v3_large", "efficientnet_b0", "mobileone_s0", "fastvit_t8", "vit_b16",
    "distilbert", "bert_base", "whisper_tiny_encoder", "whisper_base_encoder",
    "whisper_small_encoder", "sd_unet", "llama_decode_step", "llama_decode_step_int8",
]
CHIPS = ["m1", "m1-max", "m5", "m5-pro", "a17-pro", "a16"]
WALL_BAR_S = 2.0


def run_one(path: Path, chip_name: str) -> dict[str, float]:
    """Compile and time one program on one chip as ``anesim run --timing-only`` does."""
    import anesim
    from anesim.chips import load_chip
    from anesim.timing import simulate

    chip = load_chip(chip_name)
    t0 = time.perf_counter()
    target = anesim.compile(str(path), chip)
    t1 = time.perf_counter()
    result = simulate(target, chip, trace=False)  # as the CLI runs it without --trace
    t2 = time.perf_counter()
    return {"latency_s": result.latency_s, "energy_j": result.energy_j, "compile_s": t1 - t0,
            "timing_s": t2 - t1, "tasks": float(len(target.program.tasks)),
            "segments": float(len(target.segments)), "gmac": result.macs / 1e9}


def main() -> int:
    """Print the prediction table and the wall times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default=",".join(CHIPS), help="comma-separated chip names")
    parser.add_argument("--programs", default=",".join(WHOLE_MODELS), help="comma-separated program names")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args()
    chips = [c for c in args.chips.split(",") if c]
    names = [p for p in args.programs.split(",") if p]

    import anesim  # noqa: F401 - import (and numba's cache load) before the clocks start

    rows = {}
    for name in names:
        path = REPO / "programs" / f"{name}.yaml"
        rows[name] = {chip: run_one(path, chip) for chip in chips}

    sep = " | " if args.markdown else "  "
    head = ["program", "GMAC", "tasks"] + [f"{c} ms" for c in chips]
    print(("| " if args.markdown else "") + sep.join(head) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|" + "|".join("---" for _ in head) + "|")
    for name, per_chip in rows.items():
        first = next(iter(per_chip.values()))
        cells = [name, f"{first['gmac']:.3f}", f"{first['tasks']:.0f}"]
        cells += [f"{per_chip[c]['latency_s'] * 1e3:.3f}" for c in chips]
        print(("| " if args.markdown else "") + sep.join(cells) + (" |" if args.markdown else ""))

    print()
    head = ["program"] + [f"{c} compile+timing s" for c in chips]
    print(("| " if args.markdown else "") + sep.join(head) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|" + "|".join("---" for _ in head) + "|")
    slow = []
    for name, per_chip in rows.items():
        cells = [name]
        for c in chips:
            r = per_chip[c]
            total = r["compile_s"] + r["timing_s"]
            cells.append(f"{r['compile_s']:.2f}+{r['timing_s']:.2f}")
            if total > WALL_BAR_S:
                slow.append(f"{name} on {c}: {total:.2f} s")
        print(("| " if args.markdown else "") + sep.join(cells) + (" |" if args.markdown else ""))
    if slow:
        print(f"\nover the {WALL_BAR_S:g} s bar: " + "; ".join(slow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
