"""Planning: runs that span passes, and the steps they stand for (tests/timing_support.py chip)."""

from __future__ import annotations

from timing_support import conv_task, make_chip, program

from anesim.timing import simulate
from anesim.timing.plan import plan_program


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
