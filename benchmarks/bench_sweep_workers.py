"""Speed-up of `anesim sweep` from one Dask worker to two, on the same points.

For each worker count it starts a LocalCluster of that many single-threaded worker processes,
warms every worker up (imports, chip files) with one point each, then times the whole sweep:
by default every shipped program (programs/*.yaml) on six chips, timing only. It prints the wall
time per worker count and the speed-up; on a machine with at least two free cores the ideal is 2.

    python benchmarks/bench_sweep_workers.py [--chips m1,m2,m3,m4,m5,a17-pro] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from distributed import Client, LocalCluster, wait

from anesim.sweep import expand, resolve_chips, run_point

ROOT = Path(__file__).resolve().parents[1]


def sweep_seconds(points: list, workers: int) -> float:  # type: ignore[type-arg]
    """Wall time of the sweep on a fresh, warmed-up LocalCluster of ``workers`` processes."""
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        warm = [client.submit(run_point, points[i % len(points)], workers=[addr], pure=False)
                for i, addr in enumerate(client.scheduler_info()["workers"])]
        wait(warm)
        start = time.perf_counter()
        futures = client.map(run_point, points, pure=False)
        rows = client.gather(futures)
        elapsed = time.perf_counter() - start
    failed = [r for r in rows if r.get("error")]
    if failed:
        print(f"# {len(failed)} points failed, e.g. {failed[0]['program']} on {failed[0]['chip']}: {failed[0]['error']}")
    return elapsed


def main() -> None:
    """Time the sweep at each worker count and print the speed-up over the first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", default="m1,m2,m3,m4,m5,a17-pro")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    programs = sorted(str(p) for p in (ROOT / "programs").glob("*.yaml"))
    points = expand(programs, resolve_chips(args.chips))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {len(points)} points ({len(programs)} programs x {len(points) // len(programs)} chips), timing only; "
          f"{os.cpu_count()} cpus, load average {load:.2f} at start")
    base = None
    for workers in args.workers:
        seconds = sweep_seconds(points, workers)
        base = base or seconds
        print(f"workers {workers}: {seconds:.2f} s, {len(points) / seconds:.2f} points/s, "
              f"speed-up {base / seconds:.2f}x over {args.workers[0]} worker(s)", flush=True)


if __name__ == "__main__":
    main()
