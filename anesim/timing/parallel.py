"""Simulate a model's dispatches side by side: each segment's event model is independent.

A model the compiler split into several dispatches (host work between them) is timed one
dispatch after another (:mod:`~anesim.timing.segments`), but each dispatch's simulation starts
from an idle engine and reads nothing from the others, so the simulations themselves can run
in parallel processes. The outputs are the same, bit for bit, as one after another.

Forked worker processes inherit the plans, so nothing but a shared count (the next dispatch to
take, costliest first, as each process becomes free) and the raw outputs crosses between
processes. Forking is used only where it is the platform's safe default (Linux)
and this process runs no other Python thread; elsewhere, inside a worker process (a sweep's
Dask worker, a fuzzing pool), and for models too small to repay the start-up, the dispatches run
in this process. The environment variable ``ANESIM_TIMING_WORKERS`` caps the processes (``1``:
never fork; unset or ``0``: one per core).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.errors import InputError
from anesim.timing.engine import EngineOutput, run_engine
from anesim.timing.plan import ProgramPlan

# Tile steps below which forking costs more than it saves (a process start and the transfer of
# the outputs take some 20-50 ms; the event model runs about 100-200 thousand steps a second).
MIN_PARALLEL_STEPS = 20_000
WORKERS_ENV = "ANESIM_TIMING_WORKERS"


def _worker_cap() -> int:
    """``ANESIM_TIMING_WORKERS`` as a number (0: no cap)."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise InputError(f"environment variable {WORKERS_ENV}: not a process count",
                         expected="a whole number (1: one process; 0: one per core)", found=text)
    return int(text)


def worker_count(plans: list[ProgramPlan]) -> int:
    """How many processes to simulate ``plans`` on (1: in this process)."""
    big = [p for p in plans if p.steps > 0]
    if len(big) < 2 or sum(p.steps for p in big) < MIN_PARALLEL_STEPS:
        return 1
    if not sys.platform.startswith("linux") or multiprocessing.parent_process() is not None:
        return 1
    if threading.active_count() > 1:  # another Python thread may hold a lock the child would need
        return 1
    cap = _worker_cap()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, len(big))
    return min(workers, cap) if cap > 0 else workers


def _cost(plan: ProgramPlan) -> int:
    """A plan's simulation cost in rough events: a step that moves DRAM or weights takes several
    (transfers, their starts and wake-ups), a DRAM-free step about one, a task about ten."""
    cost = 10 * len(plan.tasks)
    for tp in plan.tasks:
        for run in tp.runs:
            moves = run.src_dram_bytes or run.dst_dram_bytes or run.weights_streamed or run.chunk_stride
            cost += run.count * (5 if moves else 1)
    return cost


def _order(plans: list[ProgramPlan]) -> list[int]:
    """Plan indices, costliest first: the order the processes take them in."""
    costs = [_cost(p) for p in plans]
    return sorted(range(len(plans)), key=lambda i: (-costs[i], i))


def _take(order: list[int], first: int, counter: Any) -> Iterator[int]:
    """The plans one process simulates: ``order[first]``, then whichever is next when it is free.

    Handing out plans as processes become free, rather than in shares fixed up front, keeps the
    processes busy to the end even where the cost estimate is off by a factor of two.
    """
    n = first
    while n < len(order):
        yield order[n]
        with counter.get_lock():
            n = counter.value
            counter.value = n + 1


def _child(plans: list[ProgramPlan], order: list[int], first: int, counter: Any, chip: ChipConfig,
           trace: bool, batch: bool, send: Connection) -> None:
    try:  # (sent once at the end: a send could wait on the parent while work is left)
        outs: Any = [(i, run_engine(plans[i], chip, record_trace=trace, batch=batch))
                     for i in _take(order, first, counter)]
        send.send(("ok", outs))
    except BaseException as exc:  # handed to the parent, which raises it
        send.send(("error", exc))
    finally:
        send.close()


def run_engines(plans: list[ProgramPlan], chip: ChipConfig, *, trace: bool, batch: bool) -> list[EngineOutput]:
    """Simulate every plan, in parallel processes where that pays; outputs in plan order."""
    workers = worker_count(plans)
    if workers <= 1:
        return [run_engine(p, chip, record_trace=trace, batch=batch) for p in plans]
    ctx = multiprocessing.get_context("fork")
    order = _order(plans)
    counter = ctx.Value("i", workers)  # the next place in ``order`` to hand out; the first
    children = []                      # ``workers`` go one to each process
    try:
        for w in range(1, workers):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(plans, order, w, counter, chip, trace, batch, send),
                               daemon=True)
            with warnings.catch_warnings():
                # (Python 3.12+ warns on forking with any other thread, the idle BLAS pool's
                # included; the child runs only the event model, which takes no lock of theirs)
                warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks",
                                        category=DeprecationWarning)
                proc.start()
            send.close()
            children.append((recv, proc))
        outs = {i: run_engine(plans[i], chip, record_trace=trace, batch=batch) for i in _take(order, 0, counter)}
        for recv, proc in children:
            try:
                status, payload = recv.recv()
            except EOFError:  # the process died without a word (killed, out of memory): see below
                continue
            if status == "error":
                raise payload
            outs.update(payload)
        for i in range(len(plans)):  # what a dead process had taken is simulated here
            if i not in outs:
                outs[i] = run_engine(plans[i], chip, record_trace=trace, batch=batch)
        return [outs[i] for i in range(len(plans))]
    finally:
        for recv, proc in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
            proc.join()
