"""Lower a Program onto a chip: per task, runs of identical tile steps and kernel-DMA chunks.

A *step* is one (pass, tile) of a task: its tile-DMA source bytes, NE and planar cycles and
tile-DMA destination bytes. Passes are the outer loop (the array re-streams the input once per
OCG pass), tiles the inner one. Consecutive identical steps form a *run*, so a task with a
thousand equal tiles is one record. Steps are numbered globally across the program, because
the DMA engines and the NE walk them in one order. Consecutive passes whose steps cost the same
(every middle pass of a many-pass convolution) share one run too: a run spans whole passes of
``pass_steps`` steps each, so step ``i`` of a run belongs to pass ``pass_index + i // pass_steps``.
Tiles outermost (a source too large for the working set is loaded one tile at a time, and every
pass runs on the tile), a tile's passes at equal costs share one run of one step per pass.

Whole models repeat a few task shapes thousands of times (every attention tile of a UNet), so
each distinct shape is planned once: a later task whose ``_shape_key`` matches gets copies of
the earlier task's runs and chunks with their steps, chunk indices and task position shifted.
The key holds every field planning reads; what depends on where a task sits (its producers,
by byte range) is still worked out per task. ``plan_program(..., memo=False)`` plans every
task afresh and gives the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from operator import attrgetter

from anesim.chips.schema import ChipConfig
from anesim.limits import check_steps
from anesim.limits import current as current_limits
from anesim.program.model import Layout, Program, Task
from anesim.timing import costs
from anesim.timing.writers import LastWriter


NO_CHUNK_CHANGE = 1 << 62  # chunk_steps of a run whose steps all need the same chunk


# Run and Chunk are not frozen: a frozen dataclass sets each field through object.__setattr__,
# which made building them a large share of planning (hundreds of thousands per large model).
# Nothing changes them once planned.
@dataclass(slots=True)
class Run:
    """``count`` identical consecutive steps of one task."""

    task_pos: int
    pass_index: int
    first_step: int
    count: int
    out_rows: int
    src_dram_bytes: float
    src_pool_cycles: float
    ne_cycles: int
    planar_cycles: int
    dst_dram_bytes: float
    dst_pool_cycles: float
    chunk_first: int  # kernel chunk the first step needs; -1 for none
    chunk_stride: int  # 1 when the chunk needed changes within the run, else 0
    pass_steps: int = 0  # steps per pass within the run (0: the run lies within one pass)
    # step i needs chunk chunk_first + i // chunk_steps: 1 when every step streams its own
    # chunk, pass_steps for a run over several passes with one weight slice each
    chunk_steps: int = NO_CHUNK_CHANGE
    weights_streamed: bool = False  # every step streams its own chunk (never in a closed-form batch)
    # NE and planar stages stream into each other, so the slower one sets the pace (set from
    # the two above; a field rather than a property because the engine reads it every step).
    compute_cycles: int = field(init=False, compare=False)
    # The DRAM streams the source and the destination transfers move on (tile_streams).
    src_stream: str = "activation"
    dst_stream: str = "activation"

    def __post_init__(self) -> None:
        self.compute_cycles = max(self.ne_cycles, self.planar_cycles)
        if self.pass_steps <= 0:
            self.pass_steps = self.count

    def pass_of(self, i: int) -> int:
        """The pass step ``i`` of the run belongs to."""
        return self.pass_index + i // self.pass_steps

    def moved(self, task_pos: int, steps: int, chunks: int) -> Run:
        """This run for task ``task_pos``: ``steps`` steps later, its chunks ``chunks`` places on.

        Copied field by field: the dataclass ``__init__`` (keywords, ``__post_init__``) takes three
        times as long, and a whole model copies a hundred thousand runs.
        """
        run = object.__new__(Run)
        run.task_pos = task_pos
        run.pass_index = self.pass_index
        run.first_step = self.first_step + steps
        run.count = self.count
        run.out_rows = self.out_rows
        run.src_dram_bytes = self.src_dram_bytes
        run.src_pool_cycles = self.src_pool_cycles
        run.ne_cycles = self.ne_cycles
        run.planar_cycles = self.planar_cycles
        run.dst_dram_bytes = self.dst_dram_bytes
        run.dst_pool_cycles = self.dst_pool_cycles
        run.chunk_first = self.chunk_first + chunks if self.chunk_first >= 0 else self.chunk_first
        run.chunk_stride = self.chunk_stride
        run.pass_steps = self.pass_steps
        run.chunk_steps = self.chunk_steps
        run.weights_streamed = self.weights_streamed
        run.compute_cycles = self.compute_cycles
        run.src_stream = self.src_stream
        run.dst_stream = self.dst_stream
        return run


@dataclass(slots=True)
class Chunk:
    """One kernel-DMA fetch: weights and coefficients for a task, a pass or a single step."""

    task_pos: int
    nbytes: int
    first_step: int  # the first step that needs it
    last_step: int  # the last step that reads it; its buffer frees when that step computes
    streamed: bool  # streamed through a double buffer rather than held in the kernel cache
    cost: float = 1.0  # weight-stream bytes charged per byte moved (1 / refetch ratio for a refetch)

    def moved(self, task_pos: int, steps: int) -> Chunk:
        """This chunk for task ``task_pos``, ``steps`` steps later (copied as :meth:`Run.moved`)."""
        chunk = object.__new__(Chunk)
        chunk.task_pos = task_pos
        chunk.nbytes = self.nbytes
        chunk.first_step = self.first_step + steps
        chunk.last_step = self.last_step + steps
        chunk.streamed = self.streamed
        chunk.cost = self.cost
        return chunk


@dataclass
class TaskPlan:
    """Everything the engine needs to schedule one task."""

    pos: int
    task: Task
    kind: str
    cores: int
    passes: int
    tiles: int
    tile_rows: int
    runs: list[Run]
    first_step: int
    last_step: int
    kernel_bytes: int
    producers: tuple[int, ...]  # earlier tasks whose results this task reads
    spilled: tuple[str, ...] = ()  # operands in the pool space that exceed the working-set cap
    macs: int = 0


@dataclass
class ProgramPlan:
    """The lowered program: task plans and the global kernel-chunk list."""

    tasks: list[TaskPlan]
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def steps(self) -> int:
        """Total number of tile steps."""
        return self.tasks[-1].last_step + 1 if self.tasks else 0

    def engine_key(self) -> tuple:
        """Everything the event model reads of this plan: plans with equal keys simulate alike.

        The model reads a task's position, runs, steps, producers and kind and whether it has an
        NE stage, and every field of a run and of a chunk; a field it starts to read must be
        added here, or a dispatch would be handed another's simulation.
        """
        return (tuple([(tp.pos, tp.first_step, tp.last_step, tp.producers, tp.kind, tp.task.ne is not None,
                        tuple(map(_run_fields, tp.runs))) for tp in self.tasks]),
                tuple(map(_chunk_fields, self.chunks)))


_run_fields = attrgetter(*[f.name for f in fields(Run)])
_chunk_fields = attrgetter(*[f.name for f in fields(Chunk)])


def task_kind(task: Task) -> str:
    """A short label: the NE op and/or the planar op."""
    parts = []
    if task.ne is not None:
        parts.append(task.ne.op + ("+lut" if task.ne.activation == "lut" else ""))
    if task.planar is not None:
        parts.append(task.planar.op)
    return "+".join(parts) or "copy"


def tile_streams(program: Program, task: Task, cap: int) -> tuple[str, str]:
    """The DRAM streams of a task's source and result transfers: "scratch" or "activation".

    A buffer the program allocates for itself (an intermediate slot, or a pool operand over the
    working-set cap that spills) moves on the scratch stream; the host's input and output
    buffers on the measured activation stream (docs/timing.md, "Two activation streams"). A
    source transfer that reads any host buffer moves on the activation stream.
    """

    def own(layout: Layout) -> bool:  # (a slot the program does not declare counts as the host's)
        slot = program.slots.get(layout.slot) if layout.slot is not None else None
        return layout.space == "pool" or (slot is not None and slot.role == "intermediate")

    moved = [s for s in task.sources if s.space == "dram" or s.nbytes > cap]
    src = "scratch" if moved and all(own(s) for s in moved) else "activation"
    return src, "scratch" if own(task.result) else "activation"


def _source_rows(task: Task, src: Layout, out_rows: int) -> int:
    if src is task.sources[0]:
        return costs.input_rows_for(task, out_rows)
    h_out = max(1, task.result.height)
    return max(1, min(src.height, costs.ceil_div(out_rows * src.height, h_out)))


# The tiler keeps about 0.3 MB of the working set back as double-buffer and alignment margin
# before it splits an operand (guide ch.21, "2 MB working-set threshold": measured threshold
# 2.28-2.34 MB against the 2 MB table value).
_DOUBLE_BUFFER_MARGIN_BYTES = 300_000


def _tile_budget_bytes(chip: ChipConfig) -> float:
    """Bytes one streamed tensor's tile may occupy: the working set less the double-buffer margin.

    The working-set bound applies to one tensor, not the sum of the operands (guide ch.21).
    """
    cap = chip.memory.working_set_cap_bytes.value
    return float(max(1, cap // 2, cap - _DOUBLE_BUFFER_MARGIN_BYTES))  # (a 1-byte cap: still a budget)


def _auto_tile_rows(chip: ChipConfig, task: Task, streamed: list[tuple[Layout, float]], result_resident: bool) -> int:
    """Rows per tile when the program leaves it open: whole height, unless an operand streams.

    Each streamed operand's tile (checked one tensor at a time) must fit the tile budget.
    ``streamed`` holds the sources over the working-set cap with their bytes per row.
    """
    h_out = max(1, task.result.height)
    if task.tile_height > 0:
        return min(task.tile_height, h_out)
    budget = _tile_budget_bytes(chip)
    rows = h_out
    if not result_resident:
        rows = min(rows, max(1, int(budget // max(1.0, costs.layout_row_bytes(task.result)))))
    if streamed:
        lo, hi = 1, rows
        while lo < hi:  # the largest out-row count whose largest input slab fits the budget
            mid = (lo + hi + 1) // 2
            need = max(row_bytes * _source_rows(task, s, mid) for s, row_bytes in streamed)
            if need <= budget:
                lo = mid
            else:
                hi = mid - 1
        rows = lo
    return max(1, rows)


def runs_in_pass_start(runs: list[Run], p: int) -> bool:
    """True when no run of pass ``p`` has been emitted yet (its weight slice is still due)."""
    return not runs or runs[-1].pass_index != p


def _pass_groups(passes: int) -> list[tuple[int, int]]:
    """(first pass, passes) of the groups whose steps cost the same: first, middle, last."""
    if passes >= 3:
        return [(0, 1), (1, passes - 2), (passes - 1, 1)]
    return [(p, 1) for p in range(passes)]


def _column_parts(chip: ChipConfig, task: Task, rows: int, streamed: list[tuple[Layout, float]],
                  result_resident: bool) -> int:
    """Pieces each output row is cut into so each streamed tensor's tile fits the tile budget."""
    if rows > 1:
        return 1
    budget = _tile_budget_bytes(chip)
    need = max((row_bytes * _source_rows(task, s, 1) for s, row_bytes in streamed), default=0.0)
    if not result_resident:
        need = max(need, costs.layout_row_bytes(task.result))
    parts = costs.ceil_div(int(need), int(budget)) if need > budget else 1
    return max(1, min(parts, max(1, task.result.width)))


def _double_buffer_parts(chip: ChipConfig, task: Task, kernel_bytes: int) -> int:
    """Steps a one-step task with a large DRAM operand is cut into, so its DMA double-buffers.

    A task the tiler leaves whole (every operand under the working-set bound) would read its
    DRAM source, compute and write its DRAM result one after the other. The tile DMA holds a
    tile being filled beside the one being used (guide ch.21: tiles are double-buffered so the
    fill of tile n + 1 overlaps compute on tile n), so a DRAM operand larger than half the
    tile budget is moved in pieces of at most that half. ANEForge's elementwise sweeps measure
    it: a 256 x 4096 relu stream (2 MiB in, 2 MiB out) runs at the per-byte rate of the
    2048- and 8192-row streams plus the call's fixed cost on the M5 and the M5 Pro. A kernel
    too large for the kernel cache is not split this way: every piece would fetch it again.
    """
    if kernel_bytes > chip.memory.kernel_cache_bytes.value:
        return 1
    dram = [s.nbytes for s in task.sources if s.space == "dram"]
    if task.result.space == "dram":
        dram.append(task.result.nbytes)
    half = _tile_budget_bytes(chip) / 2
    largest = max(dram, default=0)
    return costs.ceil_div(int(largest), int(half)) if largest > half else 1


def plan_program(program: Program, chip: ChipConfig, *, memo: bool = True) -> ProgramPlan:
    """Lower every task of ``program`` to runs and chunks for ``chip``.

    ``memo`` plans each distinct task shape (:func:`_shape_key`) once and shifts that plan to
    every later task of the shape; ``memo=False`` plans every task afresh (the same plan).
    """
    return next(plan_programs([program], chip, memo=memo))


def plan_programs(programs: Iterable[Program], chip: ChipConfig, *, memo: bool = True) -> Iterator[ProgramPlan]:
    """:func:`plan_program` for each of ``programs`` in turn, with one memo of task shapes.

    The dispatches of a split model repeat the same blocks, so a shape planned for one
    dispatch serves the later ones too (the key holds what the program contributes).
    """
    planned: dict[tuple, tuple[TaskPlan, list[Chunk], int]] | None = {} if memo else None
    for program in programs:
        yield _plan(program, chip, planned)


def plan_with_memo(program: Program, chip: ChipConfig, memo: dict | None) -> ProgramPlan:
    """:func:`plan_program` with a memo of task shapes kept by the caller across programs
    (an empty dict to start; None: no memo)."""
    return _plan(program, chip, memo)


def _plan(program: Program, chip: ChipConfig, planned: dict[tuple, tuple[TaskPlan, list[Chunk], int]] | None
          ) -> ProgramPlan:
    """Plan ``program``; ``planned`` (None: no memo) maps shape keys to a plan, its chunks and
    the index of the first of them in its program's chunk list."""
    plan = ProgramPlan(tasks=[])
    chunks = plan.chunks
    max_steps = current_limits(chip).steps
    writers = LastWriter()
    step = 0
    cap = chip.memory.working_set_cap_bytes.value
    for pos, task in enumerate(program.tasks):
        written = [w for src in task.sources if (w := writers.last(src)) is not None]
        producers = (max(written),) if written else ()
        key = _shape_key(program, chip, task, cap) if planned is not None else None
        earlier = planned.get(key) if planned is not None else None
        if earlier is not None:
            tp = _shifted(earlier, chunks, pos, task, step, producers)
        else:
            chunk_start = len(chunks)
            tp = _plan_task(program, chip, pos, task, step, producers, chunks, max_steps)
            # (a run whose chunk lies before the task's own could not be shifted: never memoised)
            if planned is not None and all(r.chunk_first < 0 or r.chunk_first >= chunk_start for r in tp.runs):
                planned[key] = (tp, chunks[chunk_start:], chunk_start)
        writers.record(task.result, pos)
        plan.tasks.append(tp)
        step = tp.last_step + 1
        if step > max_steps:  # (a planned task checked its own steps first; a copied one is checked here)
            check_steps(step, file=program.source or None, field=f"program '{program.name}': tile steps", chip=chip)
    return plan


def _layout_key(layout: Layout) -> tuple:
    """The fields of an operand's layout that planning reads (nbytes covers dtype and strides)."""
    return (layout.space, layout.nbytes, layout.dtype, layout.groups, layout.depth, layout.channels,
            layout.height, layout.width)


def _shape_key(program: Program, chip: ChipConfig, task: Task, cap: int) -> tuple:
    """Everything the plan of ``task`` depends on besides its position (and the chip).

    Two tasks with equal keys get the same runs and chunks up to their first step, first chunk
    and ``pos``, and the same kind, MACs and spilled operands. Any field of a task, its stages or
    its layouts that planning starts to read (in ``_plan_task`` or the cost functions it calls)
    must be added here, or the memo will hand a task another task's plan. Offsets and slots are
    left out: only ``tile_streams`` reads slots (their roles), and its result is part of the key.
    """
    ne, pl = task.ne, task.planar
    ne_key = None
    if ne is not None:
        k = ne.kernel
        ne_key = (ne.op, ne.activation == "lut", ne.kernel_hw, ne.stride_hw, ne.dilation_hw, ne.groups,
                  None if k is None else (k.format, k.sparse_mask is None))
    pl_key = None if pl is None else (pl.op, pl.pool_hw, pl.pool_stride_hw)
    sources = task.sources
    return (
        task.cores_used, task.ocg_size, task.tile_height, task.winograd, ne_key, pl_key,
        costs.kernel_stream_bytes(chip, task),  # (all that is read of the kernel's contents)
        tuple([_layout_key(s) for s in sources]),
        tuple([s is sources[0] for s in sources]),  # _source_rows tells the first source by identity
        _layout_key(task.result),
        tile_streams(program, task, cap),
    )


def _shifted(earlier: tuple[TaskPlan, list[Chunk], int], chunks: list[Chunk], pos: int, task: Task, step: int,
             producers: tuple[int, ...]) -> TaskPlan:
    """An earlier task's plan (with its chunks and the index of the first) moved to task ``pos``
    at ``step``. The copies of its chunks are appended to ``chunks``; every Run is a new object.
    """
    tp, own_chunks, chunk_start = earlier
    ds = step - tp.first_step
    dc = len(chunks) - chunk_start
    chunks += [c.moved(pos, ds) for c in own_chunks]
    # (the kind, the MACs and the operands that spill follow from fields in the key)
    return TaskPlan(pos, task, tp.kind, tp.cores, tp.passes, tp.tiles, tp.tile_rows,
                    [r.moved(pos, ds, dc) for r in tp.runs], step, tp.last_step + ds, tp.kernel_bytes, producers,
                    tp.spilled, tp.macs)


def _spilled(task: Task, cap: int) -> tuple[str, ...]:
    """The operands in the pool space over the working-set cap: they spill to DRAM."""
    spilled = tuple(f"source{i}" for i, src in enumerate(task.sources) if src.space == "pool" and src.nbytes > cap)
    if task.result.space == "pool" and task.result.nbytes > cap:
        spilled += ("result",)
    return spilled


def _plan_task(program: Program, chip: ChipConfig, pos: int, task: Task, step: int,
               producers: tuple[int, ...], chunks: list[Chunk], max_steps: int) -> TaskPlan:
    """Plan one task from its first step ``step``, appending its kernel chunks to ``chunks``."""
    cache = chip.memory.kernel_cache_bytes.value
    cap = chip.memory.working_set_cap_bytes.value  # as costs.resident
    pool_rate = chip.pool_bytes_per_cycle  # as costs.pool_cycles: bytes / this
    refetch_cost = 1.0 / chip.dram.weight_refetch_ratio.value
    sources = task.sources
    result = task.result
    shape = costs.pass_shape(chip, task)
    h_out = max(1, result.height)
    # Per operand, once: bytes, bytes per row, whether it fits the working set (as
    # costs.resident and costs.layout_row_bytes).
    src_nbytes = [src.nbytes for src in sources]
    src_resident = [nb <= cap for nb in src_nbytes]
    src_row_bytes = [nb / max(1, src.height) for nb, src in zip(src_nbytes, sources)]
    result_resident = result.nbytes <= cap
    streamed = [(src, rb) for src, rb, res in zip(sources, src_row_bytes, src_resident) if not res]
    rows = _auto_tile_rows(chip, task, streamed, result_resident)
    n_full, rem = divmod(h_out, rows)
    tile_sizes = [(rows, n_full)] + ([(rem, 1)] if rem else [])
    tiles = n_full + (1 if rem else 0)
    kb = costs.kernel_stream_bytes(chip, task)
    c_out = max(1, result.channels)
    first_step = step
    runs: list[Run] = []
    # Kernel chunks: whole kernel if it fits the kernel cache, else one per pass, else
    # streamed afresh for every step (weights re-fetched per tile).
    group = shape.ocg * shape.cores
    # (per pass p, computed only for the passes planned one by one: a task may have hundreds)
    def pass_channels(p: int) -> int:
        return min(c_out, (p + 1) * group) - p * group

    def per_pass_bytes(p: int) -> int:
        return kb * pass_channels(p) // c_out
    if kb == 0:
        mode = "none"
    elif kb <= cache:
        mode = "task"
    elif per_pass_bytes(0) <= cache:  # (the first pass has the most channels)
        mode = "pass"
    else:
        mode = "step"
    # Column split: when even one output row's streamed input exceeds the budget (a matrix
    # laid out as one long row), each row is cut into `parts` pieces of equal width.
    parts = _column_parts(chip, task, rows, streamed, result_resident)
    if rows >= h_out and parts == 1:  # one step: let a large DRAM operand double-buffer
        split = _double_buffer_parts(chip, task, kb)
        if split > 1 and h_out > 1:
            rows = costs.ceil_div(h_out, min(split, h_out))
            n_full, rem = divmod(h_out, rows)
            tile_sizes = [(rows, n_full)] + ([(rem, 1)] if rem else [])
            tiles = n_full + (1 if rem else 0)
        elif split > 1:
            parts = min(split, max(1, result.width))
    if parts > 1:
        tile_sizes = [(1, h_out * parts)]
        tiles = h_out * parts
    if step + shape.passes * tiles > max_steps:  # (before a Run or Chunk exists: a task may ask for millions)
        check_steps(step + shape.passes * tiles, file=program.source or None,
                    field=f"program '{program.name}': tile steps", chip=chip)
    if mode == "task":  # (after the splits: the kernel is read until the task's last step)
        chunks.append(Chunk(pos, kb, first_step, first_step + shape.passes * tiles - 1, False))
    src_stream, dst_stream = tile_streams(program, task, cap)
    # Loop order. Passes outermost re-streams an over-cap source once per pass; tiles
    # outermost loads each source tile once but re-fetches the weights per tile when they do
    # not fit the kernel cache. Take whichever moves DRAM for less time.
    tile_outer = False
    if streamed and shape.passes > 1 and tiles > 1:
        d = chip.dram
        src_b = sum(nb for nb, res in zip(src_nbytes, src_resident) if not res)
        w_pass_outer = kb if mode in ("task", "pass") else kb * tiles  # "step": per tile anyway
        w_tile_outer = kb if mode == "task" else kb * tiles
        once_rate = d.weight_bytes_per_s.value
        refetch_rate = once_rate * d.weight_refetch_ratio.value
        w_pass_rate = refetch_rate if mode == "step" else once_rate
        w_tile_rate = once_rate if mode == "task" else refetch_rate
        src_rate = d.scratch_bytes_per_s.value if src_stream == "scratch" else d.activation_bytes_per_s.value
        a_s = shape.passes * src_b / src_rate + w_pass_outer / w_pass_rate
        b_s = src_b / src_rate + w_tile_outer / w_tile_rate
        tile_outer = b_s < a_s
        if tile_outer and mode == "pass":
            mode = "step"
    # Pass-outer with one tile size: consecutive passes with equal step costs extend one run
    # (see the module docstring).
    merge = not tile_outer and len(tile_sizes) == 1
    if tile_outer:
        order = [(p, r, 1, True) for r, c in tile_sizes for _ in range(c) for p in range(shape.passes)]
    elif merge:
        # (pass, rows, steps, loaded once, passes): the middle passes 1 .. P-2 all have the
        # full OCG on the busiest core and a full channel group, so they share one entry.
        order = [(p, rows_, c * n, False, n) for p, n in _pass_groups(shape.passes) for rows_, c in tile_sizes]
    else:
        order = [(p, r, c, False) for p in range(shape.passes) for r, c in tile_sizes]
    src_ops = [(src, rb, res, src.space == "dram" or not res)
               for src, rb, res in zip(sources, src_row_bytes, src_resident)]
    dst_row_bytes = costs.layout_row_bytes(result)
    dst_in_dram = result.space == "dram" or not result_resident
    step_costs: dict[tuple[int, int, int, bool, bool], tuple[float, float, float, float, int, int]] = {}
    # per pass: channels on the busiest core, channels, kernel bytes (a tile-outer order visits
    # every pass once per tile)
    pass_facts: dict[int, tuple[int, int, int]] = {}
    last_costs = None
    for p, out_rows, count, tile_loaded_once, *n_passes in order:
        facts = pass_facts.get(p)
        if facts is None:
            facts = pass_facts[p] = (shape.channels_in_pass(p), pass_channels(p), per_pass_bytes(p))
        ch_core, ch_pass, pass_kb = facts
        if mode == "pass" and not merge and out_rows == tile_sizes[0][0] and runs_in_pass_start(runs, p):
            chunks.append(Chunk(pos, pass_kb, step, step + tiles - 1, False))
        # Passes of a task repeat the same few step shapes: cost each shape once.
        key = (out_rows, ch_core, ch_pass, p > 0, tile_loaded_once)
        shape_costs = step_costs.get(key)
        if shape_costs is None:
            src_dram = 0.0
            src_pool = 0.0
            for src, row_bytes, res, in_dram in src_ops:
                b = row_bytes * _source_rows(task, src, out_rows) / parts
                if in_dram and not (p > 0 and (res or tile_loaded_once)):
                    src_dram += b
                else:
                    src_pool += b  # chained in the pool, or re-read of a copy already on chip
            dst_b = dst_row_bytes * out_rows * (ch_pass / c_out) / parts
            dst_dram = dst_b if dst_in_dram else 0.0
            dst_pool = 0.0 if dst_dram else dst_b
            ne = costs.ceil_div(costs.ne_tile_cycles(chip, task, out_rows, ch_core), parts)
            planar = costs.ceil_div(costs.planar_tile_cycles(chip, task, out_rows) * ch_pass,
                                    c_out * parts)
            shape_costs = step_costs[key] = (src_dram, src_pool, dst_dram, dst_pool, ne, planar)
        src_dram, src_pool, dst_dram, dst_pool, ne, planar = shape_costs
        chunk_steps = NO_CHUNK_CHANGE
        stride = 0
        weights_streamed = False
        if mode == "step":
            chunk_first, stride, chunk_steps = len(chunks), 1, 1
            weights_streamed = True
            cost = refetch_cost if tiles > 1 else 1.0
            chunks.extend([Chunk(pos, pass_kb, k, k, True, cost) for k in range(step, step + count)])
        elif mode == "none":
            chunk_first = -1
        elif mode == "pass" and merge:  # one weight slice per pass of the group
            chunk_first = len(chunks)
            chunks.extend([Chunk(pos, pass_kb, k, k + tiles - 1, False) for k in range(step, step + count, tiles)])
            if n_passes[0] > 1:
                stride, chunk_steps = 1, tiles
        else:
            chunk_first = len(chunks) - 1
        if merge and shape_costs == last_costs:
            # Same costs and, within a task of this mode, the same weights or the next ones.
            last = runs[-1]
            last.count += count
            if mode == "pass":
                last.chunk_stride, last.chunk_steps = 1, tiles
        elif tile_outer and shape_costs == last_costs and p == runs[-1].pass_index + runs[-1].count:
            # The next pass of the same tile at the same costs: one step per pass, and the same
            # weights (the task's) or the next slice (streamed per step, appended just now).
            runs[-1].count += count
        else:
            runs.append(
                Run(pos, p, step, count, out_rows, src_dram, src_pool / pool_rate,
                    ne, planar, dst_dram, dst_pool / pool_rate, chunk_first, stride,
                    tiles if merge else (1 if tile_outer else 0), chunk_steps, weights_streamed,
                    src_stream=src_stream, dst_stream=dst_stream)
            )
            last_costs = shape_costs
        step += count
    return TaskPlan(pos, task, task_kind(task), shape.cores, shape.passes, tiles, rows, runs,
                    first_step, step - 1, kb, producers, _spilled(task, cap), task.macs)
