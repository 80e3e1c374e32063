"""Simulate a model's dispatches side by side: each segment's event model is independent.

A model the compiler split into several dispatches (host work between them) is timed one
dispatch after another (:mod:`~anesim.timing.segments`), but each dispatch's simulation starts
from an idle engine and reads nothing from the others, so the simulations themselves can run
in parallel processes. The outputs are the same, bit for bit, as one after another.

Forked worker processes inherit the plans (or, for a model of many tasks, the programs, which
each process plans as it takes them), so nothing but a shared count (the next dispatch to take,
costliest first, as each process becomes free), the raw outputs and what packaging reads of the
plans crosses between processes. Forking is used only where it is the platform's safe default (Linux)
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
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.errors import AnesimError, InputError
from anesim.limits import check_steps
from anesim.program.model import Program
from anesim.timing.engine import EngineOutput, run_engine
from anesim.timing.output import PlanSummary, summarize
from anesim.timing.plan import ProgramPlan, plan_with_memo

# Tile steps below which forking costs more than it saves (a process start and the transfer of
# the outputs take some 20-50 ms; the event model runs about 100-200 thousand steps a second).
MIN_PARALLEL_STEPS = 20_000
# Tasks from which a model is planned in the processes that simulate it (smaller models are
# planned first, here, in a few tens of milliseconds).
LAZY_PLAN_TASKS = 2_000
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


def _fork_count(dispatches: int) -> int:
    """How many processes may share ``dispatches`` dispatches here (1: this process alone)."""
    if dispatches < 2:
        return 1
    if not sys.platform.startswith("linux") or multiprocessing.parent_process() is not None:
        return 1
    if threading.active_count() > 1:  # another Python thread may hold a lock the child would need
        return 1
    cap = _worker_cap()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, dispatches)
    return min(workers, cap) if cap > 0 else workers


def worker_count(plans: list[ProgramPlan]) -> int:
    """How many processes to simulate ``plans`` on (1: in this process)."""
    big = [p for p in plans if p.steps > 0]
    if len(big) < 2 or sum(p.steps for p in big) < MIN_PARALLEL_STEPS:
        return 1
    return _fork_count(len(big))


def _cost(plan: ProgramPlan) -> int:
    """A plan's simulation cost in rough events: a step that moves DRAM or weights takes several
    (transfers, their starts and wake-ups), a DRAM-free step about one, a task about ten."""
    cost = 10 * len(plan.tasks)
    for tp in plan.tasks:
        for run in tp.runs:
            moves = run.src_dram_bytes or run.dst_dram_bytes or run.weights_streamed or run.chunk_stride
            cost += run.count * (5 if moves else 1)
    return cost


def _order(costs: list[int]) -> list[int]:
    """Dispatch indices, costliest first: the order the processes take them in."""
    return sorted(range(len(costs)), key=lambda i: (-costs[i], i))


def _take(order: list[int], first: int, counter: Any) -> Iterator[int]:
    """The dispatches one process handles: ``order[first]``, then whichever is next when it is free.

    Handing out dispatches as processes become free, rather than in shares fixed up front, keeps
    the processes busy to the end even where the cost estimate is off by a factor of two.
    """
    n = first
    while n < len(order):
        yield order[n]
        with counter.get_lock():
            n = counter.value
            counter.value = n + 1


def _child(job: Callable[[int], Any], order: list[int], first: int, counter: Any, send: Connection) -> None:
    try:  # (sent once at the end: a send could wait on the parent while work is left)
        send.send(("ok", [(i, job(i)) for i in _take(order, first, counter)]))
    except BaseException as exc:  # handed to the parent, which raises it
        send.send(("error", exc))
    finally:
        send.close()


def _forked(job: Callable[[int], Any], costs: list[int], workers: int) -> list[Any]:
    """``job(i)`` for every dispatch ``i``, shared by ``workers`` processes; results in order.

    A process that reports an error stops the others and the error is raised here; the dispatches
    of a process that died without a word are done here.
    """
    ctx = multiprocessing.get_context("fork")
    order = _order(costs)
    counter = ctx.Value("i", workers)  # the next place in ``order`` to hand out; the first
    children = []                      # ``workers`` go one to each process
    outs: dict[int, Any] = {}

    def collect(recv: Connection) -> None:
        try:
            status, payload = recv.recv()
        except EOFError:  # the process died without a word (killed, out of memory): see below
            return
        if status == "error":
            raise payload
        outs.update(payload)

    try:
        for w in range(1, workers):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(job, order, w, counter, send), daemon=True)
            with warnings.catch_warnings():
                # (Python 3.12+ warns on forking with any other thread, the idle BLAS pool's
                # included; the child runs only the planner and the event model, which take no
                # lock of theirs)
                warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks",
                                        category=DeprecationWarning)
                proc.start()
            send.close()
            children.append((recv, proc))
        pending = [recv for recv, _ in children]
        for i in _take(order, 0, counter):
            for recv in [r for r in pending if r.poll()]:  # (a process done, or failed, early)
                pending.remove(recv)
                collect(recv)
            outs[i] = job(i)
        for recv in pending:
            collect(recv)
        for i in range(len(costs)):  # what a dead process had taken is done here
            if i not in outs:
                outs[i] = job(i)
        return [outs[i] for i in range(len(costs))]
    finally:
        for recv, proc in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
            proc.join()


class _Simulated:
    """The outputs of the plans simulated in this process, for a later identical plan to reuse.

    A split model repeats whole blocks dispatch for dispatch, and the event model of a plan equal
    to one simulated before (:meth:`~anesim.timing.plan.ProgramPlan.engine_key`) gives the same
    output; it is handed out again with no simulation time of its own. Plans are compared in
    full only when their sizes match.
    """

    def __init__(self, chip: ChipConfig, trace: bool, batch: bool) -> None:
        self.chip, self.trace, self.batch = chip, trace, batch
        # (tasks, steps, chunks) -> [plan, its key once worked out, output]
        self.seen: dict[tuple[int, int, int], list[list[Any]]] = {}

    def run(self, plan: ProgramPlan) -> EngineOutput:
        """The raw output of ``plan``: simulated, or an identical plan's."""
        alike = self.seen.setdefault((len(plan.tasks), plan.steps, len(plan.chunks)), [])
        key = plan.engine_key() if alike else None
        for entry in alike:
            if entry[1] is None:
                entry[1] = entry[0].engine_key()
            if entry[1] == key:
                return replace(entry[2], wall_s=0.0)
        out = run_engine(plan, self.chip, record_trace=self.trace, batch=self.batch)
        alike.append([plan, key, out])
        return out


def run_engines(plans: list[ProgramPlan], chip: ChipConfig, *, trace: bool, batch: bool) -> list[EngineOutput]:
    """Simulate every plan, in parallel processes where that pays; outputs in plan order."""
    workers = worker_count(plans)
    sim = _Simulated(chip, trace, batch)  # (each forked process has its own copy)
    if workers <= 1:
        return [sim.run(p) for p in plans]
    return _forked(lambda i: sim.run(plans[i]), [_cost(p) for p in plans], workers)


def plan_checked(program: Program, chip: ChipConfig, memo: dict | None = None) -> ProgramPlan:
    """Plan one dispatch and check its tile steps against the limit (``memo``: shapes planned)."""
    plan = plan_with_memo(program, chip, memo)
    check_steps(plan.steps, file=program.source or None, field=f"program '{program.name}': tile steps", chip=chip)
    return plan


def simulate_dispatches(programs: list[Program], chip: ChipConfig, *, trace: bool,
                        batch: bool) -> list[tuple[PlanSummary, EngineOutput]]:
    """Plan and simulate every dispatch; (what packaging reads of its plan, raw output) in order.

    A model of many tasks is planned by the processes that simulate it, each dispatch where it
    is simulated (planning a whole model takes about a tenth of its simulation, which the
    processes then share). Otherwise every dispatch is planned and checked here first, so a
    refused one fails before any is simulated, and forked only if its steps repay it. A
    refusal is the same either way: that of the first refused dispatch in order.
    """
    if sum(len(p.tasks) for p in programs) >= LAZY_PLAN_TASKS:
        workers = _fork_count(sum(1 for p in programs if p.tasks))
        if workers > 1:
            memo: dict = {}  # (each process has its own copies of these once forked)
            sim = _Simulated(chip, trace, batch)

            def job(i: int) -> tuple[PlanSummary, EngineOutput]:
                plan = plan_checked(programs[i], chip, memo)
                return summarize(plan), sim.run(plan)

            try:
                return _forked(job, [len(p.tasks) for p in programs], workers)
            except AnesimError:
                _plan_all(programs, chip)  # (raises the first refusal in order)
                raise
    plans = _plan_all(programs, chip)
    return [(summarize(p), out) for p, out in zip(plans, run_engines(plans, chip, trace=trace, batch=batch))]


def _plan_all(programs: list[Program], chip: ChipConfig) -> list[ProgramPlan]:
    """Every dispatch planned and checked in order, one memo of shapes for all."""
    memo: dict = {}
    return [plan_checked(p, chip, memo) for p in programs]
