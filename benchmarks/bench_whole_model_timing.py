"""Time of ``anesim run PROGRAM --chip CHIP --timing-only`` for every whole-model program on every chip.

For each whole-model program (the list in ``whole_models.py``) and each chip it compiles the
program and times it as the CLI does without ``--trace``, in this process (imports and the
process start left out), and prints one row per program: the worst chip's compile + timing
time (wall, and CPU of this process and of the processes it forked to simulate dispatches side
by side, ``anesim.timing.parallel``), the tile steps simulated there, and the median over the
chips. The bar is 2 s of wall time per program and chip; rows over it are marked. The wall time
grows when other processes share the cores.

With ``--baseline DIR`` (another checkout of the project, e.g. ``git worktree add DIR main``),
the timing alone (planning, event loop and packaging, compile left out) is also measured with
that checkout's ``anesim`` in a child process, one program and chip after another in the same
order, and each row gets the baseline's CPU seconds on the same chip and the speed-up.

    python benchmarks/bench_whole_model_timing.py [--chips all|m1,a16] [--programs sd_unet,...]
                                                  [--markdown] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from whole_models import REPO, WALL_BAR_S, WHOLE_MODELS  # noqa: E402


def _children_cpu_s() -> float:
    """CPU seconds of the finished processes this one forked (the side-by-side dispatches)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_one(path: Path, chip_name: str) -> dict[str, float]:
    """Compile and time one program on one chip; wall and CPU seconds of each part."""
    import anesim
    from anesim.chips import load_chip
    from anesim.collector import collector_paused
    from anesim.errors import AnesimError
    from anesim.timing import simulate

    chip = load_chip(chip_name)
    gc.collect()  # (the points before: their garbage is not this one's time)
    with collector_paused():  # (as the anesim program runs a model: no cyclic collector)
        t0, c0 = time.perf_counter(), time.process_time()
        target = anesim.compile(str(path), chip)
        t1, c1 = time.perf_counter(), time.process_time()
        k1 = _children_cpu_s()
        try:
            result = simulate(target, chip, trace=False)
        except AnesimError as exc:  # a point the limits refuse: reported, not timed
            return {"error": str(exc), "wall_s": -1.0}
        t2, c2 = time.perf_counter(), time.process_time()
    forked = _children_cpu_s() - k1
    return {"compile_s": t1 - t0, "timing_s": t2 - t1, "wall_s": t2 - t0, "cpu_s": c2 - c0 + forked,
            "timing_cpu_s": c2 - c1 + forked,
            "steps": float(result.sim.steps), "tasks": float(len(target.program.tasks)), "error": ""}


# Run in a child process with the baseline checkout first on the path: for each program and
# chip, compile, then print the CPU seconds of timing it, the processes it forked included (as
# time_one, without the trace).
_BASELINE_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import anesim
from anesim.chips import load_chip
from anesim.timing import simulate
programs, names, chips = sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
def forked():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
def one(name, chip_name):
    chip = load_chip(chip_name)
    target = anesim.compile(programs + "/" + name + ".yaml", chip)
    c0, k0 = time.process_time(), forked()
    try:
        simulate(target, chip, trace=False)
    except anesim.errors.AnesimError:
        return -1.0
    return time.process_time() - c0 + forked() - k0  # (its forked dispatches' CPU too, as time_one)
one("conv3x3", chips[0])  # imports and first-call set-up before the clocks
for name in names:
    for chip_name in chips:
        print(json.dumps([name, chip_name, one(name, chip_name)]), flush=True)
"""


def baseline_timing(baseline: Path, names: list[str], chips: list[str]) -> dict[tuple[str, str], float]:
    """CPU seconds of timing each program on each chip with the checkout at ``baseline``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", _BASELINE_CHILD, str(baseline), str(REPO / "programs"), ",".join(names), ",".join(chips)],
        capture_output=True, text=True, env=env, check=True,
    )
    out = {}
    for line in proc.stdout.splitlines():
        name, chip, cpu_s = json.loads(line)
        out[(name, chip)] = cpu_s
    return out


def main() -> int:
    """Print the worst case per program over the chips."""
    from anesim.sweep import resolve_chips

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default="all", help="'all' or comma-separated chip names")
    parser.add_argument("--programs", default=",".join(WHOLE_MODELS), help="comma-separated program names")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare the timing CPU time with")
    args = parser.parse_args()
    chips = resolve_chips(args.chips)
    names = [p for p in args.programs.split(",") if p]

    time_one(REPO / "programs" / "conv3x3.yaml", chips[0])  # imports and first-call set-up before the clocks

    md = args.markdown
    sep = " | " if md else "  "
    head = ["program", "tasks", "worst chip", "steps there", "compile s", "timing s", "wall s", "CPU s",
            f"median wall s ({len(chips)} chips)"]  # (over the chips it ran on)
    base: dict[tuple[str, str], float] = {}
    if args.baseline:
        base = baseline_timing(args.baseline, names, chips)
        head += ["timing CPU s", "baseline timing CPU s", "speed-up"]
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
        chip, worst = max(rows.items(), key=lambda kv: kv[1]["wall_s"])
        median = statistics.median(r["wall_s"] for r in rows.values())
        cells = [name, f"{worst['tasks']:.0f}", chip, f"{worst['steps']:.0f}", f"{worst['compile_s']:.2f}",
                 f"{worst['timing_s']:.2f}", f"{worst['wall_s']:.2f}", f"{worst['cpu_s']:.2f}", f"{median:.2f}"]
        if args.baseline:
            b = base.get((name, chip), -1.0)
            cells += [f"{worst['timing_cpu_s']:.2f}", f"{b:.2f}",
                      f"{b / worst['timing_cpu_s']:.2f}x" if b > 0 and worst["timing_cpu_s"] > 0 else "-"]
        if worst["wall_s"] > WALL_BAR_S:
            over.append(f"{name} ({chip}, {worst['wall_s']:.2f} s)")
        print(("| " if md else "") + sep.join(cells) + (" |" if md else ""), flush=True)
    print(f"\n{len(names)} programs x {len(chips)} chips in {time.perf_counter() - start:.0f} s")
    for line in errors:
        print(f"not timed: {line}")
    if over:
        print(f"over the {WALL_BAR_S:g} s bar on the worst chip: " + "; ".join(over))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
