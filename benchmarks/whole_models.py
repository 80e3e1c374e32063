"""Whole-model predictions: every whole-model program on a list of chips, timing only.

Prints, per program, the predicted latency (ms) on each chip, then the time of the compile
and of the timing simulation on each chip (the process start and imports left out; the bar
for ``anesim run PROGRAM --timing-only`` is 2 s per program and chip), as wall and as CPU
time of this process (the wall time grows when other processes share the cores). With
``--published``, instead, every whole-model figure published for an Apple chip in the shared
reference folder (validation/published_whole_models.yaml) beside its prediction. The figures
are tests, not fits: nothing here feeds calibration (docs/whole-models.md).

    python benchmarks/whole_models.py [--chips m1,m1-max,m5,m5-pro,a17-pro,a16]
                                      [--programs resnet18,bert_base] [--markdown] [--published]
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


def run_one(path: Path, chip_name: str, params: dict[str, float] | None = None) -> dict[str, float]:
    """Compile and time one program on one chip as ``anesim run --timing-only`` does."""
    from anesim.chips import load_chip
    from anesim.compiler import compile_file
    from anesim.timing import simulate

    chip = load_chip(chip_name)
    t0, c0 = time.perf_counter(), time.process_time()
    target = compile_file(path, chip, params=params or None)
    t1, c1 = time.perf_counter(), time.process_time()
    result = simulate(target, chip, trace=False)  # as the CLI runs it without --trace
    t2, c2 = time.perf_counter(), time.process_time()
    return {"latency_s": result.latency_s, "energy_j": result.energy_j, "compile_s": t1 - t0,
            "timing_s": t2 - t1, "compile_cpu_s": c1 - c0, "timing_cpu_s": c2 - c1,
            "tasks": float(len(target.program.tasks)), "segments": float(len(target.segments)),
            "gmac": result.macs / 1e9}


def published_table(markdown: bool) -> None:
    """Every published whole-model figure beside anesim's prediction and their ratio."""
    cache: dict[tuple, dict[str, float]] = {}

    def pred(program: str, chip: str, params: tuple[tuple[str, float], ...]) -> dict[str, float]:
        if (program, chip, params) not in cache:
            cache[program, chip, params] = run_one(REPO / "programs" / f"{program}.yaml", chip, dict(params))
        return cache[program, chip, params]

    head = ["program", "chip", "published", "source", "anesim", "anesim / published", "band"]
    sep = " | " if markdown else "  "
    print(("| " if markdown else "") + sep.join(head) + (" |" if markdown else ""))
    if markdown:
        print("|" + "|".join("---" for _ in head) + "|")
    from anesim.validate.whole_models import load_published, published_ratio

    for p in load_published():
        ratio, _, shown = published_ratio(p, pred)
        band = f"{p.band[0]:g}-{p.band[1]:g}" if p.band else "-"
        cells = [p.label(), p.chip, p.shown, p.source, shown, f"{ratio:.3g}", band]
        print(("| " if markdown else "") + sep.join(cells) + (" |" if markdown else ""))


def main() -> int:
    """Print the prediction table and the wall times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default=",".join(CHIPS), help="comma-separated chip names")
    parser.add_argument("--programs", default=",".join(WHOLE_MODELS), help="comma-separated program names")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--published", action="store_true",
                        help="the published whole-model figures beside the predictions instead")
    args = parser.parse_args()
    if args.published:
        published_table(args.markdown)
        return 0
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
    head = ["program"] + [f"{c} compile+timing s (CPU)" for c in chips]
    print(("| " if args.markdown else "") + sep.join(head) + (" |" if args.markdown else ""))
    if args.markdown:
        print("|" + "|".join("---" for _ in head) + "|")
    slow = []
    for name, per_chip in rows.items():
        cells = [name]
        for c in chips:
            r = per_chip[c]
            total = r["compile_s"] + r["timing_s"]
            cells.append(f"{r['compile_s']:.2f}+{r['timing_s']:.2f} ({r['compile_cpu_s'] + r['timing_cpu_s']:.2f})")
            if total > WALL_BAR_S:
                slow.append(f"{name} on {c}: {total:.2f} s")
        print(("| " if args.markdown else "") + sep.join(cells) + (" |" if args.markdown else ""))
    if slow:
        print(f"\nover the {WALL_BAR_S:g} s bar: " + "; ".join(slow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
