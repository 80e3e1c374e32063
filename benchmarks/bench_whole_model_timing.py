"""Time of ``anesim run PROGRAM --chip CHIP --timing-only`` for every whole-model program on every chip.

For each whole-model program (the list in ``whole_models.py``) and each chip it compiles the
program and times it as the CLI does without ``--trace``, in this process (imports and the
process start left out), and prints one row per program: the worst chip's compile + timing
time (wall and CPU of this process), the tile steps simulated there, and the median over the
chips. The bar is 2 s per program and chip; rows over it are marked. The wall time grows when
other processes share the cores; the CPU column is the steadier figure.

    python benchmarks/bench_whole_model_timing.py [--chips all|m1,a16] [--programs sd_unet,...]
                                                  [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from whole_models import REPO, WALL_BAR_S, WHOLE_MODELS  # noqa: E402


def time_one(path: Path, chip_name: str) -> dict[str, float]:
    """Compile and time one program on one chip; wall and CPU seconds of each part."""
    import anesim
    from anesim.chips import load_chip
    from anesim.timing import simulate

    from anesim.errors import AnesimError

    chip = load_chip(chip_name)
    t0, c0 = time.perf_counter(), time.process_time()
    target = anesim.compile(str(path), chip)
    t1, c1 = time.perf_counter(), time.process_time()
    try:
        result = simulate(target, chip, trace=False)
    except AnesimError as exc:  # a point the limits refuse: reported, not timed
        return {"error": str(exc), "cpu_s": -1.0}
    t2, c2 = time.perf_counter(), time.process_time()
    return {"compile_s": t1 - t0, "timing_s": t2 - t1, "wall_s": t2 - t0, "cpu_s": c2 - c0,
            "steps": float(result.sim.steps), "tasks": float(len(target.program.tasks)), "error": ""}


def main() -> int:
    """Print the worst case per program over the chips."""
    from anesim.sweep import resolve_chips

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default="all", help="'all' or comma-separated chip names")
    parser.add_argument("--programs", default=",".join(WHOLE_MODELS), help="comma-separated program names")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    chips = resolve_chips(args.chips)
    names = [p for p in args.programs.split(",") if p]

    time_one(REPO / "programs" / "conv3x3.yaml", chips[0])  # imports and first-call set-up before the clocks

    md = args.markdown
    sep = " | " if md else "  "
    head = ["program", "tasks", "worst chip", "steps there", "compile s", "timing s", "wall s", "CPU s",
            f"median wall s ({len(chips)} chips)"]  # (over the chips it ran on)
    print(("| " if md else "") + sep.join(head) + (" |" if md else ""), flush=True)
    if md:
        print("|" + "|".join("---" for _ in head) + "|")
    over: list[str] = []
    errors: list[str] = []
    start = time.perf_counter()
    for name in names:
        path = REPO / "programs" / f"{name}.yaml"
        timed = {chip: time_one(path, chip) for chip in chips}
        errors.extend(f"{name} on {chip}: {r['error']}" for chip, r in timed.items() if r["error"])
        rows = {chip: r for chip, r in timed.items() if not r["error"]}
        if not rows:
            continue
        chip, worst = max(rows.items(), key=lambda kv: kv[1]["cpu_s"])
        median = statistics.median(r["wall_s"] for r in rows.values())
        cells = [name, f"{worst['tasks']:.0f}", chip, f"{worst['steps']:.0f}", f"{worst['compile_s']:.2f}",
                 f"{worst['timing_s']:.2f}", f"{worst['wall_s']:.2f}", f"{worst['cpu_s']:.2f}", f"{median:.2f}"]
        if worst["cpu_s"] > WALL_BAR_S:
            over.append(f"{name} ({chip}, {worst['cpu_s']:.2f} s CPU)")
        print(("| " if md else "") + sep.join(cells) + (" |" if md else ""), flush=True)
    print(f"\n{len(names)} programs x {len(chips)} chips in {time.perf_counter() - start:.0f} s")
    for line in errors:
        print(f"not timed: {line}")
    if over:
        print(f"over the {WALL_BAR_S:g} s bar on the worst chip: " + "; ".join(over))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
