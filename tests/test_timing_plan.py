"""Planning: runs that span passes, and the steps they stand for (tests/timing_support.py chip)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from timing_support import conv_task, make_chip, program

import anesim
from anesim.chips import load_chip
from anesim.program.model import Kernel, Layout, NeStage, PlanarStage, Program, Slot, Task
from anesim.timing import simulate
from anesim.timing.engine import Engine, run_engine
from anesim.timing import plan as plan_module
from anesim.timing.plan import _shape_key, plan_program, plan_programs


def _steps(plan):
    """Every step as (task, pass, kernel chunk it needs, source DRAM bytes, NE cycles)."""
    out = []
    for tp in plan.tasks:
        for run in tp.runs:
            for i in range(run.count):
                chunk = run.chunk_first + i // run.chunk_steps if run.chunk_first >= 0 else -1
                out.append((tp.pos, run.pass_of(i), chunk, run.src_dram_bytes, run.ne_cycles))
    return out


def test_middle_passes_share_one_run():
    # 4 cores x 8 channels a pass: 256 output channels are 8 passes of one tile. The first pass
    # reads the source from DRAM, the others from the pool copy: two runs, the second of 7 passes.
    chip = make_chip()
    plan = plan_program(program(conv_task(0, 64, 256, 8, 8, ocg=8)), chip)
    (tp,) = plan.tasks
    assert tp.passes == 8 and tp.tiles == 1
    assert [(r.pass_index, r.count, r.pass_steps) for r in tp.runs] == [(0, 1, 1), (1, 7, 1)]
    steps = _steps(plan)
    assert [s[1] for s in steps] == list(range(8))
    assert steps[0][3] > 0 and all(s[3] == 0 for s in steps[1:])


def test_per_pass_weight_slices_in_one_run():
    # 512 x 256 x 2 B of weights exceed the 64 KiB kernel cache; one pass's slice (32 channels)
    # fits, so each pass fetches its own slice: 8 tiles a pass, step i needs chunk i // 8.
    chip = make_chip()
    task = conv_task(0, 512, 256, 64, 4, src_space="pool", dst_space="pool", ocg=8, tile_height=8,
                     dst_offset=1 << 20)
    plan = plan_program(program(task), chip)
    (tp,) = plan.tasks
    assert tp.passes == 8 and tp.tiles == 8 and len(plan.chunks) == 8
    assert len(tp.runs) == 1 and tp.runs[0].pass_steps == 8
    steps = _steps(plan)
    assert [s[1] for s in steps] == [s[2] for s in steps] == [i // 8 for i in range(64)]
    assert [(c.first_step, c.last_step) for c in plan.chunks] == [(8 * p, 8 * p + 7) for p in range(8)]
    # Batching (which opens only on a pass whose slice has landed) times it as step by step.
    batched = simulate(program(task), chip)
    step_by_step = simulate(program(task), chip, batch=False)
    assert batched.latency_s == step_by_step.latency_s
    assert batched.tasks == step_by_step.tasks
    labels = sorted((e.start_s, e.name) for e in batched.trace if e.unit == "ne")
    assert [name for _, name in labels] == [f"pass {i // 8}" for i in range(64)]
    assert len([e for e in batched.trace if e.unit == "kernel_dma"]) == 8


def _one_run_per_step(plan):
    """``plan`` with every run cut into runs of one step each (as tile-outer tasks were planned)."""
    for tp in plan.tasks:
        tp.runs = [dataclasses.replace(r, first_step=r.first_step + i, count=1, pass_index=r.pass_of(i),
                                       pass_steps=1,
                                       chunk_first=r.chunk_first + i // r.chunk_steps if r.chunk_first >= 0 else -1)
                   for r in tp.runs for i in range(r.count)]
    return plan


@pytest.mark.parametrize("c_in, c_out, h, w, streamed", [
    (64, 256, 128, 256, False),  # the kernel fits the cache: one chunk for the task
    (512, 256, 64, 64, True),  # a slice per pass, fetched again for every tile
])
def test_tile_outer_passes_share_a_run(c_in, c_out, h, w, streamed):
    # The 4 MiB (or 512 KiB x 8 passes) source is over the 2 MiB working set: each source tile is
    # loaded once and every pass runs on it before the next tile. The first pass of a tile reads
    # it from DRAM, the other seven from the pool copy: two runs a tile, the second over passes
    # 1-7, one step each.
    chip = make_chip()
    task = conv_task(0, c_in, c_out, h, w, ocg=8)
    plan = plan_program(program(task), chip)
    (tp,) = plan.tasks
    assert tp.passes == 8 and tp.tiles > 1 and len(tp.runs) == 2 * tp.tiles
    assert all(r.pass_steps == 1 and r.weights_streamed == streamed for r in tp.runs)
    assert [(r.pass_index, r.count) for r in tp.runs[:2]] == [(0, 1), (1, 7)]
    steps = _steps(plan)
    assert [s[1] for s in steps] == list(range(8)) * tp.tiles
    assert [s[2] for s in steps] == (list(range(8 * tp.tiles)) if streamed else [0] * (8 * tp.tiles))
    # The engine times the merged runs as it timed one run per step, trace and all.
    for batch in (True, False):
        merged = run_engine(plan, chip, batch=batch)
        single = run_engine(_one_run_per_step(plan_program(program(task), chip)), chip, batch=batch)
        assert merged.end_cycles == single.end_cycles and merged.trace == single.trace
        assert merged.task_stats == single.task_stats and merged.dram_bytes == single.dram_bytes


def test_tile_outer_stretches_between_first_passes_are_replayed():
    # 20 passes a tile, weights streamed per step: each tile's first pass reads the source from
    # DRAM, and the 19 passes after it (a pool source, a DRAM write and a weight slice each) are a
    # stretch the DRAM batches replay, as the step-by-step model times it.
    chip = make_chip()
    task = conv_task(0, 512, 640, 64, 64, ocg=8)
    plan = plan_program(program(task), chip)
    (tp,) = plan.tasks
    assert tp.passes == 20 and tp.tiles == 4
    assert [(r.count, r.src_dram_bytes > 0) for r in tp.runs[:2]] == [(1, True), (19, False)]
    batched = Engine(plan, chip)
    out = batched.run()
    step_by_step = run_engine(plan_program(program(task), chip), chip, batch=False)
    assert batched.dram_covered >= 3 * 16
    assert out.end_cycles == step_by_step.end_cycles and out.task_stats == step_by_step.task_stats
    assert sorted(out.trace) == sorted(step_by_step.trace)


# --------------------------------------------------------------------------- the shape memo


def _plan_fields(plan):
    """Every field of every TaskPlan, Run and Chunk (compute_cycles included; tasks by identity)."""
    def values(obj, skip=()):
        return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip)

    tasks = [(id(tp.task), values(tp, ("task", "runs")), [values(r) for r in tp.runs]) for tp in plan.tasks]
    return tasks, [values(c) for c in plan.chunks]


def _variants_program() -> Program:
    """Tasks that each differ from another one in one thing planning reads, every one twice.

    The second copy sits at other offsets, so it reuses the first one's plan; a shape key that
    missed the difference would hand a variant the base's plan.
    """
    def conv(c_in=64, c_out=128, h=32, w=32, *, src_space="dram", src_slot=0, dst_space="dram", dtype="fp16",
             **ne_kw):
        src = Layout.packed(src_space, src_slot if src_space == "dram" else None, c_in, h, w, dtype)
        dst = Layout.packed(dst_space, 2 if dst_space == "dram" else None, c_out, h, w)
        return Task(0, (src,), dst, ne=NeStage(**ne_kw), cores_used=4, ocg_size=16, tile_height=8)

    base = conv()
    k3 = conv(kernel_hw=(3, 3))
    big_source = conv(512, 128, 64, 64)  # 4 MiB: over every cap, so it streams
    src = Layout.packed("dram", 0, 64, 32, 32)
    same, twin = src, dataclasses.replace(src)
    broadcast = dataclasses.replace(src, row_stride_bytes=0)  # one row read for every row
    pool = Task(0, (same, same), Layout.packed("dram", 2, 64, 32, 32), tile_height=8,
                planar=PlanarStage(op="maxpool", pool_hw=(3, 3)))
    reduce = Task(0, (src,), Layout.packed("dram", 2, 64, 32, 1), planar=PlanarStage(op="reduce_sum"))
    kernel = Kernel("fp16", None, dram_bytes=9 * 64 * 128 * 2)
    int8 = conv(kernel=Kernel("int8", None, dram_bytes=64 * 128), dtype="int8")

    def plane(c: int, w: int = 32, slot: int = 0) -> Layout:
        return dataclasses.replace(Layout.packed("dram", slot, c, 32, w), plane_stride_bytes=0)

    tasks = [
        base,
        dataclasses.replace(base, tile_height=4),
        dataclasses.replace(base, tile_height=0),
        dataclasses.replace(base, ocg_size=4),
        dataclasses.replace(base, cores_used=1),
        conv(src_slot=3),  # an intermediate slot: the scratch stream
        conv(src_space="pool"),
        conv(dst_space="pool"),
        conv(32),
        conv(h=16),
        conv(w=64),
        conv(op="elementwise"),
        k3,
        conv(kernel_hw=(3, 3), stride_hw=(2, 2)),
        conv(kernel_hw=(3, 3), dilation_hw=(2, 2)),
        conv(kernel_hw=(3, 3), groups=2),
        dataclasses.replace(k3, winograd=True),
        dataclasses.replace(conv(kernel_hw=(3, 3), kernel=Kernel("fp16", None, sparse_mask=np.ones((128, 64, 3, 3), bool))),
                            winograd=True),  # the same bytes as k3, but a sparse kernel is never Winograd
        conv(kernel_hw=(3, 3), kernel=kernel),  # (the same kernel bytes below: only the NE fields differ)
        conv(kernel=kernel),
        conv(kernel=kernel, activation="lut"),  # (the same kernel bytes: only the task's kind differs)
        conv(kernel_hw=(3, 3), kernel=kernel, groups=2),
        conv(op="transconv", kernel_hw=(3, 3), kernel=kernel),
        dataclasses.replace(conv(kernel_hw=(3, 3), kernel=Kernel("fp16", None)), winograd=True),
        conv(kernel=Kernel("int8", None, dram_bytes=64 * 128)),
        int8,
        conv(kernel=Kernel("fp16", None, dram_bytes=2 * 64 * 128), dtype="int8"),  # (as int8 ones on the M5 Pro)
        conv(kernel=Kernel("fp16", None, dram_bytes=8 << 20)),  # over the kernel cache
        big_source,
        dataclasses.replace(big_source, ocg_size=4),
        conv(512, 128, 64, 64, src_space="pool"),  # a pool operand over the cap spills
        pool,
        dataclasses.replace(pool, sources=(same, twin)),  # only the first source has the pool's halo
        dataclasses.replace(pool, planar=PlanarStage(op="max", pool_hw=(3, 3))),  # (no window outside pooling)
        dataclasses.replace(pool, planar=PlanarStage(op="maxpool", pool_hw=(2, 2))),
        dataclasses.replace(pool, planar=PlanarStage(op="maxpool", pool_hw=(3, 3), pool_stride_hw=(2, 2))),
        dataclasses.replace(pool, sources=(broadcast, broadcast)),
        dataclasses.replace(pool, sources=(dataclasses.replace(broadcast, height=16),) * 2),
        reduce,
        dataclasses.replace(reduce, sources=(Layout.packed("dram", 0, 64, 32, 64),)),
        dataclasses.replace(reduce, result=dataclasses.replace(reduce.result, groups=2)),
        Task(0, (src, Layout.packed("dram", 1, 64, 32, 32)), Layout.packed("dram", 2, 64, 32, 32),
             planar=PlanarStage(op="add")),
        # Layouts of equal bytes that differ in one more field: one plane read for every channel
        # (plane stride 0) against a full tensor.
        dataclasses.replace(reduce, sources=(plane(64, w=64),)),
        dataclasses.replace(reduce, sources=(Layout.packed("dram", 0, 64, 32, 1),)),
        dataclasses.replace(conv(kernel=kernel), sources=(plane(256),)),
        dataclasses.replace(conv(kernel=kernel), sources=(plane(32),)),
        dataclasses.replace(int8, sources=(plane(2, w=64),)),
        dataclasses.replace(int8, sources=(Layout.packed("dram", 0, 2, 32, 64, "int8"),)),
        dataclasses.replace(reduce, result=Layout.packed("dram", 2, 2, 32, 1)),
        dataclasses.replace(reduce, result=dataclasses.replace(plane(2, w=1, slot=2), groups=2)),
        dataclasses.replace(reduce, result=dataclasses.replace(plane(2, w=1, slot=2), depth=2)),
    ]

    def moved(task: Task, offset: int) -> Task:  # (a source given twice stays one object)
        new = {id(s): dataclasses.replace(s, offset_bytes=s.offset_bytes + offset) for s in task.sources}
        return dataclasses.replace(task, sources=tuple(new[id(s)] for s in task.sources),
                                   result=dataclasses.replace(task.result, offset_bytes=task.result.offset_bytes + offset))

    program_tasks = [t for task in tasks for t in (task, moved(task, 1 << 24))]
    program_tasks = [dataclasses.replace(t, index=i) for i, t in enumerate(program_tasks)]
    slots = {0: Slot(0, 1 << 26, "input"), 1: Slot(1, 1 << 26, "input"), 2: Slot(2, 1 << 26, "output"),
             3: Slot(3, 1 << 26, "intermediate")}
    return Program(name="variants", generation="H13", tasks=program_tasks, tensors={}, slots=slots)


@pytest.mark.parametrize("chip_name", ["m1", "m5-pro", "a11"])
def test_shape_memo_plans_the_same(repo_root, chip_name):
    # Planning each distinct task shape once and shifting it gives every field of the plan as
    # planning every task afresh: shipped models, and variants that differ in one planned field.
    chip = load_chip(chip_name)
    programs = [_variants_program()]
    for name in ("transformer_block", "resnet50", "whisper_tiny_encoder", "distilbert"):
        compiled = anesim.compile(str(repo_root / "programs" / f"{name}.yaml"), chip)
        programs += [segment.program for segment in compiled.segments] or [compiled.program]
    afresh = [_plan_fields(plan_program(prog, chip, memo=False)) for prog in programs]
    for prog, want in zip(programs, afresh):
        assert _plan_fields(plan_program(prog, chip)) == want, prog.name
    # one memo across programs (a split model's dispatches): still the same plans
    assert [_plan_fields(p) for p in plan_programs(programs, chip)] == afresh
    # The memo is used: the variants are planned once each, their copies reuse that.
    cap = chip.memory.working_set_cap_bytes.value
    variants = programs[0]
    assert len({_shape_key(variants, chip, t, cap) for t in variants.tasks}) <= len(variants.tasks) // 2


def test_one_memo_serves_every_dispatch_of_a_call(monkeypatch):
    """A shape planned for one program is not planned again for a later one."""
    chip = load_chip("m1")
    variants = _variants_program()
    fresh = []
    real = plan_module._plan_task
    monkeypatch.setattr(plan_module, "_plan_task", lambda *a: fresh.append(a[3]) or real(*a))
    list(plan_programs([variants], chip))
    once = len(fresh)
    assert 0 < once < len(variants.tasks)
    fresh.clear()
    list(plan_programs([variants, variants], chip))
    assert len(fresh) == once
