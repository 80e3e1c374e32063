"""A model split into several dispatches is timed as consecutive commands."""

from __future__ import annotations

import multiprocessing
import os
import sys

import numpy as np
import pytest

import anesim
from anesim.chips import load_chip
from anesim.errors import InputError
from anesim.compiler import Builder
from anesim.functional import random_inputs
from anesim.timing import TaskTiming


def _split_model():
    b = Builder("split")
    x = b.input("x", (1, 4, 6, 8))
    y = b.conv2d(x, 4, kernel=1, bias=True)
    t = b.transpose(y, (0, 1, 3, 2))  # moves the width axis: the host does it between segments
    b.output(b.relu(b.conv2d(t, 4, kernel=1)))
    return anesim.compile(b, "m1")


def test_each_segment_pays_its_own_dispatch() -> None:
    compiled = _split_model()
    assert compiled.dispatches == 2
    whole = anesim.simulate(compiled, "m1")
    parts = [anesim.simulate(s.program, "m1") for s in compiled.segments]
    # the host's transpose between them is the CPU fallback: its time and two handoffs
    (host,) = whole.host_tasks
    assert host.op == "transpose" and whole.handoffs == 2
    assert whole.host_s == pytest.approx(host.end_s - host.start_s + 2 * load_chip("m1").cpu.handoff_s.value)
    assert whole.latency_s == pytest.approx(sum(p.latency_s for p in parts) + whole.host_s)
    assert whole.engine_cycles == sum(p.engine_cycles for p in parts)
    assert [t.index for t in whole.tasks] == list(range(len(compiled.program.tasks)))
    floor = parts[0].latency_s - parts[0].engine_s
    assert whole.latency_s > 2 * floor  # two dispatch sequences, not one
    assert whole.tasks[-1].start_s >= parts[0].latency_s + whole.host_s  # the second command starts after the host


def test_compiled_model_executes_with_host_work_between_segments() -> None:
    compiled = _split_model()
    drawn = random_inputs(compiled.program, 3)  # (the program's inputs include what host work makes)
    inputs = {k: v for k, v in drawn.items() if k in compiled.graph.inputs}
    with pytest.raises(InputError, match="unknown input 'transpose_0'"):  # (a value host work computes)
        anesim.execute(compiled, drawn, "m1")
    out = anesim.execute(compiled, inputs, "m1")
    again = anesim.execute(compiled, inputs, "m1")
    assert out.keys() == again.keys()
    for key in out:
        assert out[key].dtype == np.float16 and np.array_equal(out[key].view(np.uint16), again[key].view(np.uint16))


def _split_model_of(steps_per_segment: int):
    """Three dispatches (two host transposes between them) of wide elementwise tiles."""
    b = Builder("split3")
    x = b.input("x", (1, 16, steps_per_segment, 1024))
    y = b.relu(b.scale(x, 2.0))
    t = b.transpose(y, (0, 1, 3, 2))
    z = b.relu(b.scale(t, 0.5))
    u = b.transpose(z, (0, 1, 3, 2))
    b.output(b.relu(b.scale(u, 3.0)))
    return anesim.compile(b, "m1")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dispatches fork worker processes on Linux only")
def test_dispatches_simulated_in_parallel_give_the_same_result(monkeypatch) -> None:
    """Each dispatch's simulation is independent: side by side in forked processes, the result
    is the one-after-another result bit for bit (and the worker count follows the rules)."""
    from anesim.timing import parallel
    from anesim.timing.plan import plan_program

    compiled = _split_model_of(512)
    chip = load_chip("m1")
    plans = [plan_program(s.program, chip) for s in compiled.segments]
    assert len(plans) == 3 and sum(p.steps for p in plans) > 0
    monkeypatch.setattr(parallel, "MIN_PARALLEL_STEPS", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)  # (a test runner's own threads)
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")
    assert parallel.worker_count(plans) == 2
    forked = anesim.simulate(compiled, chip, trace=True)
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    assert parallel.worker_count(plans) == 1
    alone = anesim.simulate(compiled, chip, trace=True)
    assert forked.latency_s == alone.latency_s and forked.energy_j == alone.energy_j
    assert [(t.start_s, t.end_s, t.stall_input_cycles) for t in forked.tasks] == [
        (t.start_s, t.end_s, t.stall_input_cycles) for t in alone.tasks]
    assert forked.raw_trace() == alone.raw_trace()
    assert {k: u.busy_cycles for k, u in forked.units.items()} == {k: u.busy_cycles for k, u in alone.units.items()}
    # small models and a single dispatch stay in this process
    monkeypatch.setattr(parallel, "MIN_PARALLEL_STEPS", 10**9)
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")
    assert parallel.worker_count(plans) == 1
    monkeypatch.setattr(parallel, "MIN_PARALLEL_STEPS", 1)
    assert parallel.worker_count(plans[:1]) == 1
    # another Python thread running: no fork; a count that is not a number is refused
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 2)
    assert parallel.worker_count(plans) == 1
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    monkeypatch.setenv(parallel.WORKERS_ENV, "two")
    with pytest.raises(InputError, match="ANESIM_TIMING_WORKERS: not a process count"):
        parallel.worker_count(plans)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dispatches fork worker processes on Linux only")
def test_an_error_in_a_forked_dispatch_reaches_the_caller(monkeypatch) -> None:
    from anesim.timing import parallel
    from anesim.timing.plan import plan_program

    compiled = _split_model_of(64)
    chip = load_chip("m1")
    plans = [plan_program(s.program, chip) for s in compiled.segments]
    monkeypatch.setattr(parallel, "MIN_PARALLEL_STEPS", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")

    real = parallel.run_engine

    def broken(plan, chip_, **kw):  # fails in the forked processes only
        if multiprocessing.parent_process() is not None:
            raise RuntimeError(f"segment of {plan.steps} steps failed")
        return real(plan, chip_, **kw)

    monkeypatch.setattr(parallel, "run_engine", broken)
    with pytest.raises(RuntimeError, match="steps failed"):
        parallel.run_engines(plans, chip, trace=False, batch=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dispatches fork worker processes on Linux only")
def test_a_forked_dispatch_that_dies_is_simulated_here(monkeypatch) -> None:
    from anesim.timing import parallel
    from anesim.timing.plan import plan_program

    compiled = _split_model_of(64)
    chip = load_chip("m1")
    plans = [plan_program(s.program, chip) for s in compiled.segments]
    want = parallel.run_engines(plans, chip, trace=False, batch=True)  # (in this process: few steps)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_STEPS", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")
    real = parallel.run_engine

    def dying(plan, chip_, **kw):  # the forked process exits at once, as if killed
        if multiprocessing.parent_process() is not None:
            os._exit(9)
        return real(plan, chip_, **kw)

    monkeypatch.setattr(parallel, "run_engine", dying)
    got = parallel.run_engines(plans, chip, trace=False, batch=True)
    assert [o.end_cycles for o in got] == [o.end_cycles for o in want]


def _fork_two(monkeypatch, parallel) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)  # (a test runner's own threads)
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dispatches fork worker processes on Linux only")
def test_a_model_of_many_tasks_is_planned_where_it_is_simulated(monkeypatch) -> None:
    """Past LAZY_PLAN_TASKS each process plans the dispatches it takes: this process plans fewer
    than all of them, and the result is the one planned here first, bit for bit."""
    from anesim.timing import parallel

    compiled = _split_model_of(512)
    chip = load_chip("m1")
    alone = anesim.simulate(compiled, chip, trace=True)
    _fork_two(monkeypatch, parallel)
    monkeypatch.setattr(parallel, "LAZY_PLAN_TASKS", 1)
    planned_here = []
    real = parallel.plan_checked

    def counted(program, chip_, memo=None):
        if multiprocessing.parent_process() is None:
            planned_here.append(program.name)
        return real(program, chip_, memo)

    monkeypatch.setattr(parallel, "plan_checked", counted)
    forked = anesim.simulate(compiled, chip, trace=True)
    assert 0 < len(planned_here) < len(compiled.segments)
    assert forked.latency_s == alone.latency_s and forked.energy_j == alone.energy_j
    assert forked.tasks == alone.tasks
    assert forked.raw_trace() == alone.raw_trace()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dispatches fork worker processes on Linux only")
def test_a_refusal_while_planning_in_processes_is_the_first_in_order(monkeypatch) -> None:
    """Two refused dispatches planned side by side: the error is the first one's, whichever
    process found its own first, as when every dispatch is planned here in order."""
    from anesim.timing import parallel

    compiled = _split_model_of(512)
    chip = load_chip("m1")
    names = [s.program.name for s in compiled.segments]
    _fork_two(monkeypatch, parallel)
    monkeypatch.setattr(parallel, "LAZY_PLAN_TASKS", 1)

    def refuse(steps, *, file, field, chip):
        if field != f"program '{names[0]}': tile steps":
            raise InputError(field, expected="fewer steps", found=steps)

    monkeypatch.setattr(parallel, "check_steps", refuse)
    for _ in range(3):
        with pytest.raises(InputError, match=f"program '{names[1]}'"):
            anesim.simulate(compiled, chip, trace=False)


def test_a_dispatch_identical_to_an_earlier_one_reuses_its_simulation(monkeypatch) -> None:
    """The first and last dispatches of the split model plan alike: the event model runs for
    the first only, and the call's rows are those of each dispatch simulated alone."""
    from anesim.timing import parallel
    from anesim.timing.plan import plan_program

    compiled = _split_model_of(64)
    chip = load_chip("m1")
    plans = [plan_program(s.program, chip) for s in compiled.segments]
    assert plans[0].engine_key() == plans[2].engine_key() != plans[1].engine_key()
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    simulated = []
    real = parallel.run_engine

    def counted(plan, chip_, **kw):
        simulated.append(plan)
        return real(plan, chip_, **kw)

    monkeypatch.setattr(parallel, "run_engine", counted)
    whole = anesim.simulate(compiled, chip, trace=True)
    assert len(simulated) == 2 and simulated[1].engine_key() == plans[1].engine_key()
    alone = [anesim.simulate(s.program, chip, trace=True) for s in compiled.segments]
    rows = iter(whole.tasks)
    for part in alone:
        for row in part.tasks:
            mine = next(rows)
            assert mine.cycles == row.cycles and mine.stall_input_cycles == row.stall_input_cycles
    assert whole.engine_cycles == sum(p.engine_cycles for p in alone)
    # a plan that differs in a field the event model reads is not taken for the other
    other = plan_program(compiled.segments[2].program, chip)
    other.tasks[-1].runs[-1].dst_pool_cycles += 1.0
    assert other.engine_key() != plans[2].engine_key()


def test_each_dispatch_is_packaged_in_place_on_the_call_timeline() -> None:
    """The call's rows and slices are each dispatch's own, renumbered and moved to where the
    dispatch starts, every field set (rows are built without the dataclass's __init__)."""
    import dataclasses

    from anesim.timing.cpu import host_blocks
    from anesim.timing.segments import timeline

    compiled = _split_model_of(64)
    chip = load_chip("m1")
    whole = anesim.simulate(compiled, chip, trace=True)
    parts = [anesim.simulate(s.program, chip, trace=True) for s in compiled.segments]
    line = timeline([p.latency_s for p in parts], host_blocks(compiled, chip), chip.cpu.handoff_s.value)
    assert line.end_s == whole.latency_s and line.handoffs == whole.handoffs == 4
    assert [h for block in line.host for h in block] == whole.host_tasks
    names = {f.name for f in dataclasses.fields(TaskTiming)}
    rows = iter(whole.tasks)
    cpu = whole.trace_units.index("cpu")
    slices = iter(s for s in whole.raw_trace() if s[0] != cpu)
    base = 0
    for part, start_s in zip(parts, line.dispatch_start_s):
        assert (start_s > 0) == (base > 0)  # (the first dispatch opens the call)
        for alone in part.tasks:
            row = next(rows)
            assert set(vars(row)) == set(vars(alone)) == names
            assert row == dataclasses.replace(alone, index=base + alone.index, start_s=alone.start_s + start_s,
                                              end_s=alone.end_s + start_s)
        for unit, name, start, end, task in part.raw_trace():
            shift = start_s * chip.ne.clock_hz.value
            assert next(slices) == (unit, name, start + shift, end + shift, task + base if task >= 0 else task)
        base += len(part.tasks)
    assert next(rows, None) is None and next(slices, None) is None
