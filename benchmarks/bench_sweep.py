"""Speed of a whole-model sweep: every shipped program on every shipped chip, timing only.

The work a design-space sweep does: compile each ``programs/*.yaml`` for each chip that
``anesim chips`` lists and time it (no numerics, no trace). Prints the wall time of the sweep
with compilation included (what a user waits for) and excluded (the timing model alone),
the number of simulated tasks and tile events, and a checksum of the simulated latencies so
two runs or two versions can be compared. Run against a version whose ``simulate`` still takes
``loop=`` (before the custom event loop was removed), it times each loop named by ``--loops``
in the same run and prints the ratio; that measurement chose simpy (docs/timing.md).

``--save FILE`` writes a fingerprint of every pair's simulated result (latency, engine cycles,
DRAM bytes and contention, every task's times and stalls, a hash of the trace; with
closed-form batching and without); ``--check FILE`` compares against one saved before and fails
on any difference, so a change to the engine can show that it leaves every figure unchanged.

    python benchmarks/bench_sweep.py [--repeat 3] [--programs resnet50,vit_b16] [--chips m1,m5]
    python benchmarks/bench_sweep.py --save before.json   # then, after a change:
    python benchmarks/bench_sweep.py --check before.json
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _loops(simulate: Any, wanted: str) -> list[str | None]:
    """The event loops to compare, if ``simulate`` still offers a choice; else the one it has."""
    if "loop" not in inspect.signature(simulate).parameters:
        return [None]
    return [name for name in wanted.split(",") if name]


def _sweep(jobs: list[tuple[Any, Any, Any]], simulate: Any, loop: str | None) -> tuple[float, int, int, str]:
    """Time every (chip, program) pair; return wall seconds, tasks, tile events, latency digest."""
    options = {"trace": False} if loop is None else {"trace": False, "loop": loop}
    digest = hashlib.sha256()
    tasks = events = 0
    t0 = time.perf_counter()
    for _chip_name, chip, target in jobs:
        r = simulate(target, chip, **options)
        tasks += len(r.tasks)
        events += r.sim.tile_events
        digest.update(f"{r.latency_s!r} {r.engine_cycles} {sorted(r.dram_bytes.items())}".encode())
    return time.perf_counter() - t0, tasks, events, digest.hexdigest()[:12]


def _fingerprint(result: Any) -> dict[str, Any]:
    """Every simulated figure of one result, exactly (floats as repr)."""
    trace = hashlib.sha256(repr(sorted(result.raw_trace())).encode()).hexdigest()[:16]  # order aside
    return {
        "latency_s": repr(result.latency_s),
        "engine_cycles": result.engine_cycles,
        "dram_bytes": result.dram_bytes,
        "dram_contention_s": repr(result.dram_contention_s),
        "busy_cycles": {u: repr(s.busy_cycles) for u, s in result.units.items()},
        "tasks": hashlib.sha256(repr([
            (t.start_s, t.end_s, t.ne_cycles, t.planar_cycles, t.stall_input_cycles, t.stall_weight_cycles,
             t.stall_output_cycles, t.dram_activation_bytes, t.dram_weight_bytes, t.bound) for t in result.tasks
        ]).encode()).hexdigest()[:16],
        "trace": trace,
    }


def _fingerprints(jobs: list[tuple[Any, Any, Any]], simulate: Any) -> dict[str, Any]:
    """Fingerprints of every (chip, program) pair, with closed-form batching and without."""
    return {
        f"{chip_name} | {target.program.name}": {
            "batched": _fingerprint(simulate(target, chip, trace=True)),
            "unbatched": _fingerprint(simulate(target, chip, trace=True, batch=False)),
        }
        for chip_name, chip, target in jobs
    }


def main() -> int:
    """Compile and time the sweep with each loop; print a table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    ap.add_argument("--programs", help="comma-separated program names (default: all programs/*.yaml)")
    ap.add_argument("--chips", help="comma-separated chip names (default: every shipped chip)")
    ap.add_argument("--loops", default="heap,simpy", help="event loops to compare, where a choice exists")
    ap.add_argument("--save", metavar="FILE", help="write the fingerprint of every simulated result")
    ap.add_argument("--check", metavar="FILE", help="compare every simulated result with a saved fingerprint")
    args = ap.parse_args()

    from anesim import compile as compile_model
    from anesim.chips import all_chips, load_chip
    from anesim.timing import simulate

    chips = [load_chip(c) for c in args.chips.split(",")] if args.chips else all_chips()
    paths = sorted((REPO / "programs").glob("*.yaml"))
    if args.programs:
        wanted = set(args.programs.split(","))
        paths = [p for p in paths if p.stem in wanted]
    loops = _loops(simulate, args.loops)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{len(paths)} programs x {len(chips)} chips; best of {args.repeat}")

    best_compile = float("inf")
    jobs: list[tuple[Any, Any, Any]] = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        jobs = [(chip.name, chip, compile_model(p, chip)) for chip in chips for p in paths]
        best_compile = min(best_compile, time.perf_counter() - t0)

    if args.save or args.check:
        prints = _fingerprints(jobs, simulate)
        if args.save:
            Path(args.save).write_text(json.dumps(prints, indent=1, sort_keys=True))
            print(f"wrote fingerprints of {len(prints)} results to {args.save}")
        if args.check:
            saved = json.loads(Path(args.check).read_text())
            bad = sorted(k for k in saved.keys() | prints.keys() if saved.get(k) != prints.get(k))
            for k in bad[:20]:
                print(f"  ! {k}: saved {saved.get(k)}, now {prints.get(k)}")
            print(f"{len(prints) - len(bad)} of {len(saved)} results identical to {args.check}")
            if bad:
                return 1
        return 0

    rows: dict[str | None, tuple[float, int, int, str]] = {}
    for _ in range(args.repeat):  # loops interleaved, so a change in machine load hits both alike
        for loop in loops:
            r = _sweep(jobs, simulate, loop)
            if loop not in rows or r[0] < rows[loop][0]:
                rows[loop] = r
    header = (f"{'loop':<8} {'compile s':>10} {'timing s':>9} {'total s':>8} {'tasks':>8} "
              f"{'tile events':>12} {'latency digest':>15}")
    print(header)
    print("-" * len(header))
    for loop, (wall, tasks, events, digest) in rows.items():
        print(f"{loop or 'default':<8} {best_compile:>10.2f} {wall:>9.2f} {best_compile + wall:>8.2f} "
              f"{tasks:>8,} {events:>12,} {digest:>15}")
    if len(rows) == 2:
        (a, ra), (b, rb) = rows.items()
        print(f"{b} / {a}: timing only {rb[0] / ra[0]:.2f}x, compile included "
              f"{(best_compile + rb[0]) / (best_compile + ra[0]):.2f}x")
        if ra[3] != rb[3]:
            print(f"  ! loops disagree: latency digests {ra[3]} and {rb[3]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
