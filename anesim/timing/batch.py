"""Closed-form batches: runs of tile steps advanced by arithmetic instead of one event per stage.

A batch covers consecutive runs of one task that no other process can disturb while it lasts.
With stage times a (source), b (compute), c (destination) and two buffers between stages, step j
obeys: src_j starts at max(src_{j-1} end, cmp_{j-2} end); cmp_j at max(src_j end, cmp_{j-1} end,
dst_{j-2} end, weights resident); dst_j at max(cmp_j end, dst_{j-1} end). The batch evaluates
this recurrence, then schedules the gate increments the stages would have made at the times it
found, so every waiter resumes when it would have step by step.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from anesim.timing.events import Timer
from anesim.timing.plan import Run, TaskPlan
from anesim.timing.units import DST_ID, SRC_ID


# Where a batch opens: the compute end of the step before it, the destination ends of the two
# before, the compute and destination gate increments still due, and the kernel DMA's state
# when the batch replays it (``_kernel_state``).
BatchStart = tuple[float, float, float, list[float], list[float], "tuple[int, float, int] | None"]
# A batch of one step schedules as many events as the step would take on its own.
MIN_BATCH_STEPS = 2
# A batch that replays the kernel DMA leaves a run's last step out; shorter runs are not worth it.
MIN_KERNEL_BATCH_STEPS = 3
# Steps of one run from which a batch tries the steady state (:func:`_steady_compute`): its numpy
# calls (some 25 µs) cost about as much as 50 steps of the recurrence.
STEADY_MIN_STEPS = 64


def _dram_or_streamed(run: Run) -> bool:
    """True for a run a batch cannot cover: it moves DRAM bytes, or streams its weights per step."""
    return bool(run.src_dram_bytes or run.dst_dram_bytes or run.weights_streamed)


def _step_run(tp: TaskPlan, r: int, i: int, back: int) -> Run | None:
    """The run of the step ``back`` steps before step ``i`` of run ``r``, or None before the task."""
    runs = tp.runs
    i -= back
    while i < 0:
        r -= 1
        if r < 0:
            return None
        i += runs[r].count
    return runs[r]


def _steady_compute(src_1: float, cmp_2: float, cmp_1: float, dst_2: float, dst_1: float, a: float, b: int,
                    c: float, m: int) -> tuple[int, list[float], list[float], list[float], tuple[float, ...]] | None:
    """The next ``m`` steps of a batch's recurrence (look-backs and stage times as in
    :meth:`ClosedFormBatches._run_batch`, no layer overhead) while its pipeline is compute-bound.

    Compute-bound, each compute starts as the one before ends: its source read (which starts as
    the compute two back ends) and the write two back are done by then, and each write starts as
    its compute ends. The compute ends are then added one after another (``np.add.accumulate``
    adds in order, as the recurrence does) and every other time is one addition to one of them,
    the same the recurrence makes; the comparisons the recurrence would make are checked on
    those values for every step. Returns how many steps from the first hold (n), their source,
    compute and destination ends, and the look-backs after them (src_1, cmp_2, cmp_1, dst_2,
    dst_1); None when the first does not. The stalls the recurrence adds are all zero there.
    """
    seq = np.full(m + 1, float(b))
    seq[0] = cmp_1
    ends = np.add.accumulate(seq)
    cm1, c1 = ends[:m], ends[1:]  # a step's compute end one back, and its own
    cm2 = np.empty(m)  # two back
    cm2[0] = cmp_2
    cm2[1:] = ends[:m - 1]
    s1 = cm2 + a
    d1 = c1 + c
    s_prev = np.empty(m)
    s_prev[0] = src_1
    s_prev[1:] = s1[:m - 1]
    dm1 = np.empty(m)  # the write one back
    dm1[0] = dst_1
    dm1[1:] = d1[:m - 1]
    dm2 = np.empty(m)
    dm2[0] = dst_2
    dm2[1:] = dm1[:m - 1]
    holds = (s_prev <= cm2) & (s1 <= cm1) & (dm2 <= cm1) & (dm1 <= c1)
    n = m if holds.all() else int(holds.argmin())
    if n == 0:
        return None
    k = n - 1
    return (n, s1[:n].tolist(), c1[:n].tolist(), d1[:n].tolist(),
            (float(s1[k]), float(cm1[k]), float(c1[k]), float(dm1[k]), float(d1[k])))


def _add_n(total: float, step: float, n: int) -> float:
    """``total`` with ``step`` added ``n`` times, one addition after another (as a loop rounds)."""
    if not step:
        return total
    seq = np.full(n + 1, float(step))
    seq[0] = total
    return float(np.add.accumulate(seq)[-1])


def chunk_of(run: Run, i: int) -> int:
    """The kernel chunk step ``i`` of ``run`` needs, or -1 for none."""
    return run.chunk_first + i // run.chunk_steps if run.chunk_first >= 0 else -1


class ClosedFormBatches:
    """The engine's closed-form batch methods (mixed into :class:`~anesim.timing.engine.Engine`)."""

    def _skip_batched(self, k: int, stage: int, timer: Timer) -> Generator[Any, Any, int]:
        """Wait until stage ``stage`` (0 compute, 1 destination) of the batch opened at ``k`` ends."""
        end_step, ends, _start = self.batches[k]
        delay = ends[stage] - self.env._now
        if delay > 0:
            yield timer.after(delay)
        return end_step

    def _batchable(self, tp: TaskPlan, r: int, i: int) -> BatchStart | None:
        """Where a batch from step ``i`` of run ``r`` (a pass's first) starts, or None when it cannot open now.

        A run opens a batch when its tile DMA moves no DRAM bytes, its weights are resident or
        the batch can move them itself (:meth:`_kernel_state`), and the times the steps before
        it leave the compute and destination stages are known: the pipeline is empty, or the
        previous step computes (or is about to start, :meth:`_compute_starting_now`) with a known
        end and the destination writes of the two steps before it end at known times (pool
        writes, finished, or about to start). Returns the compute end of the previous step, the
        destination ends of the two before, the gate increments of those steps still due
        (compute, destination), which the batch schedules in their stages' place, and the kernel
        replay when the batch moves weights.
        """
        run = tp.runs[r]
        if _dram_or_streamed(run):
            return None
        if run.count - i < MIN_BATCH_STEPS and (r + 1 == len(tp.runs) or _dram_or_streamed(tp.runs[r + 1])):
            return None  # a batch of one step costs more events than the step
        k = run.first_step + i
        kernel = None
        if run.chunk_first >= 0 and self.kernel_gate.current() <= chunk_of(run, i):
            # Weights still loading: the batch replays the kernel DMA too, when it can (a batch
            # that only waited for them would hold the source stage, where step by step the
            # source DMA of the next steps goes ahead).
            if run.count - i < MIN_KERNEL_BATCH_STEPS or i == 0:
                return None
            prev = chunk_of(run, i - 1)  # (the chunk step k-1 needs, which may still be loading)
            state = self._kernel_state(prev if self.kernel_gate.current() <= prev else chunk_of(run, i))
            if state is None:
                return None
            kernel = _KernelReplay(self, k, self.env._now, state)
        ne_now = self.ne_gate.current()
        dst_now = self.dst_gate.current()
        t = self.env._now
        if ne_now == k and dst_now == k:
            return (t, t, t, [], [], kernel)
        if r == 0 and i == 0:
            return None  # the previous step is another task's
        if self.done_gate.current() + self.done_gate.scheduled() < tp.pos:
            return None  # an earlier task's last write is still to come: its end goes first
        if self.cmp_step == k - 1:
            cmp_1 = self.cmp_end
        elif self.cmp_step == k - 2 and (cmp_1 := self._compute_starting_now(tp, r, i, ne_now, dst_now, kernel)) >= 0.0:
            pass  # (the compute stage is about to start step k-1: its end is known)
        else:
            return None  # the previous step's compute waits on something still in flight
        # Increments counted or already scheduled (by an earlier batch that covered those steps).
        ne_known = ne_now + self.ne_gate.scheduled()
        dst_known = dst_now + self.dst_gate.scheduled()
        ne_due = [cmp_1] if ne_known < k else []
        if self.dst_end < 0.0:
            return None  # a DRAM write in flight: its end is not known yet
        if self.dst_step == k - 1:
            dst_2, dst_1 = self.dst_prev_end, self.dst_end
            dst_due = [dst_1] if dst_known < k else []
        elif self.dst_step == k - 2 or (self.dst_step == k - 3 and dst_now >= k - 2 and ne_now >= k - 1):
            prev = _step_run(tp, r, i, 1)  # step k-1's run: its write starts when both are done
            if prev is None or prev.dst_dram_bytes:
                return None
            if self.dst_step == k - 2:
                dst_2 = self.dst_end
            else:  # step k-2 has computed and k-3 is written: k-2's write starts now
                prev2 = _step_run(tp, r, i, 2)
                if prev2 is None or prev2.dst_dram_bytes:
                    return None
                dst_2 = t + prev2.dst_pool_cycles if prev2.dst_pool_cycles > 0 else t
            d0 = cmp_1 if cmp_1 >= dst_2 else dst_2
            dst_1 = d0 + prev.dst_pool_cycles if prev.dst_pool_cycles > 0 else d0
            dst_due = ([dst_2] if dst_known < k - 1 else []) + ([dst_1] if dst_known < k else [])
        else:
            return None
        if kernel is not None:
            kernel.cmp_1 = cmp_1 if cmp_1 >= t else t
        return (cmp_1 if cmp_1 >= t else t, dst_2, dst_1, ne_due, dst_due, kernel)

    def _kernel_state(self, need: int) -> tuple[int, float, int] | None:
        """Where the kernel DMA stands, when a batch can replay it from chunk ``need`` on; else None.

        It can when the DRAM carries nothing but the kernel DMA's own fetch (so every fetch the
        batch makes runs alone, at a known rate) and the kernel DMA is on chunk ``need``: moving
        it, about to (its DRAM latency), or waiting for the buffer it reuses. Returns the first
        chunk the batch moves, when the DRAM is free for it (-1: the kernel DMA is waiting) and
        the chunk in flight (-1 for none).
        """
        if self.kdma_taken or self.kdma_j != need:
            return None  # an earlier batch's chunks are still landing, or the DMA is elsewhere
        d = self.dram
        flows = d.flows_in_flight()
        pending = d.pending_starts()
        if self.kdma_moving:
            if len(flows) == 1 and not pending and flows[0] == "weight" and d.wake_at() >= self.env._now:
                return (need + 1, d.wake_at(), need)
            if not flows and len(pending) == 1:  # in its latency: it starts alone
                ch = self.plan.chunks[need]
                return (need + 1, d.alone_end(ch.nbytes, "weight", ch.cost, pending[0]), need)
            return None
        if flows or pending or self.fw_gate.current() < self.plan.chunks[need].task_pos + 1:
            return None
        return (need, -1.0, -1)

    def _compute_starting_now(self, tp: TaskPlan, r: int, i: int, ne_now: int, dst_now: int,
                              kernel: _KernelReplay | None) -> float:
        """When the compute stage is about to start step k-1 (k: step ``i`` of run ``r``), the end of it; else -1.

        The source stage reaches step k when step k-2's compute ends, the moment the compute
        stage moves on to step k-1: that step starts now unless it still waits for its weights
        or for the write of step k-3, and then ends its compute cycles later, as the compute
        stage will find. When its weights are a chunk the batch's kernel replay moves, it starts
        when that chunk lands.
        """
        k = tp.runs[r].first_step + i
        if ne_now < k - 1 or dst_now < k - 2 or self.src_gate.current() < k:
            return -1.0
        prev, j = (tp.runs[r], i - 1) if i else (tp.runs[r - 1], tp.runs[r - 1].count - 1)
        start = self.env._now
        if prev.chunk_first >= 0 and self.kernel_gate.current() <= chunk_of(prev, j):
            if kernel is None or kernel.next > chunk_of(prev, j) and kernel.moving != chunk_of(prev, j):
                return -1.0
            landed = kernel.landed(chunk_of(prev, j), [])
            start = landed if landed > start else start
        extra = self.layer_overhead if k - 1 == tp.first_step and tp.task.ne is not None else 0
        return start + (prev.compute_cycles + extra)  # (as the compute stage's timer adds it)

    def _run_batch(
        self, tp: TaskPlan, r0: int, i0: int, timer: Timer, init: BatchStart,
    ) -> Generator[Any, Any, tuple[int, int]]:
        """Advance DRAM-free steps of one task in closed form, from step ``i0`` of run ``r0``.

        With stage times a (source), b (compute), c (destination) and two buffers between
        stages, step j obeys: src_j starts at max(src_{j-1} end, cmp_{j-2} end); cmp_j at
        max(src_j end, cmp_{j-1} end, dst_{j-2} end, weights resident); dst_j at max(cmp_j
        end, dst_{j-1} end). Nothing else touches these stages, so the recurrence gives the
        times the step-by-step model would; the gates are then scheduled at those times. ``init``
        (from :meth:`_batchable`) gives the look-backs of a pipeline still busy with the steps
        before, and their gate increments still due, scheduled here ahead of the batch's.
        The batch covers whole passes while they are DRAM-free and their weights are the first
        pass's or already loaded; one that moves its weights itself stays within its run and
        stops a step before the run's end. Returns the run and step where the step-by-step model
        resumes.
        """
        env = self.env
        st = self.stats[tp.pos]
        runs = tp.runs
        # (run, first step, end step) of each covered piece: the rest of a run, or one pass of
        # a run whose passes each need their own weight slice
        pieces: list[tuple[Run, int, int]] = []
        r, i = r0, i0
        first_chunk = chunk_of(runs[r0], i0)
        loaded = self.kernel_gate.current()
        kernel = init[5]
        while r < len(runs):  # (r, i): where the step-by-step model resumes
            run = runs[r]
            if _dram_or_streamed(run):
                break
            ch = chunk_of(run, i)
            if kernel is not None:
                if r != r0:
                    break
            elif pieces and not (ch in (-1, first_chunk) or loaded > ch):
                break
            end = run.count if not run.chunk_stride else min(run.count, (i // run.chunk_steps + 1) * run.chunk_steps)
            if kernel is not None:
                # The run's last step stays out: a DRAM transfer after the batch could start
                # while that step's chunk moved, which only the DRAM model can share out.
                end = min(end, run.count - 1)
                if end <= i:
                    break
            pieces.append((run, i, end))
            if end < run.count:
                i = end
            else:
                r, i = r + 1, 0
        i_next = i
        t = env._now
        first = runs[r0].first_step + i0
        src_end: list[float] = []
        cmp_end: list[float] = []
        dst_end: list[float] = []
        record = self.record
        busy = self.busy
        first_extra = self.layer_overhead if first == tp.first_step and tp.task.ne is not None else 0
        # The recurrence's look-backs (steps j-1 and j-2), all t before the first step; stalls
        # and busy times accumulate in locals in the order the step-by-step model adds them.
        # (an earlier compute end counts as t: the compute stage's own wait before t is added
        # by the compute process when it reaches the batch)
        src_1 = cmp_2 = t
        cmp_1, dst_2, dst_1, ne_due, dst_due, _ = init
        # (a weight stall only where the batch replays the kernel DMA)
        stall_in, stall_w, stall_out = st.stall_input, st.stall_weight, st.stall_output
        w = -1.0
        busy_ne, busy_planar = busy["ne"], busy["planar"]
        busy_src, busy_dst = busy["tile_dma_src"], busy["tile_dma_dst"]
        j = 0
        # (a long piece's pipeline may settle into a steady state after a step or two: tried once
        # there, and the steps it holds for are added in one go; not with per-step trace slices or
        # weight landings)
        steady = not record and kernel is None
        for run, i_from, i_to in pieces:
            a, c = run.src_pool_cycles, run.dst_pool_cycles
            try_at = i_from + 2 if steady and i_to - i_from >= STEADY_MIN_STEPS + 2 else i_to
            lo = i_from
            while lo < i_to:
                hi = i_to
                if lo < try_at:
                    hi = try_at
                elif lo == try_at:
                    found = _steady_compute(src_1, cmp_2, cmp_1, dst_2, dst_1, a, run.compute_cycles, c, i_to - lo)
                    if found is not None:
                        n, src_ends, cmp_ends, dst_ends, (src_1, cmp_2, cmp_1, dst_2, dst_1) = found
                        src_end += src_ends
                        cmp_end += cmp_ends
                        dst_end += dst_ends
                        ne = run.ne_cycles if run.ne_cycles else 0
                        st.ne_cycles += ne * n  # (whole cycles: exact)
                        st.planar_cycles += run.planar_cycles * n
                        busy_ne = _add_n(busy_ne, ne, n)
                        busy_planar = _add_n(busy_planar, run.planar_cycles, n)
                        busy_src = _add_n(busy_src, a, n)
                        busy_dst = _add_n(busy_dst, c, n)
                        self.tile_events += n
                        j += n
                        lo += n
                        continue
                for i in range(lo, hi):
                    extra = first_extra if j == 0 else 0
                    b = run.compute_cycles + extra
                    s0 = src_1 if src_1 >= cmp_2 else cmp_2
                    s1 = s0 + a
                    ready = s1 if s1 >= cmp_1 else cmp_1
                    if kernel is not None:
                        w = kernel.landed(chunk_of(run, i), cmp_end)
                        if w > ready:
                            stall_w += w - ready
                            ready = w
                    c0 = ready if ready >= dst_2 else dst_2
                    d = s1 - cmp_1
                    stall_in += d if d > 0.0 else 0.0
                    stall_out += c0 - ready
                    c1 = c0 + b
                    d0 = c1 if c1 >= dst_1 else dst_1
                    d1 = d0 + c
                    src_end.append(s1)
                    cmp_end.append(c1)
                    dst_end.append(d1)
                    if record:
                        busy_src += s1 - s0
                        busy_dst += d1 - d0
                        if s1 > s0:
                            self.trace.append((SRC_ID, "src", s0, s1, tp.pos))
                        self._compute_slices(tp, run, i, c0, extra)
                        if d1 > d0:
                            self.trace.append((DST_ID, "dst", d0, d1, tp.pos))
                    else:
                        ne = run.ne_cycles + extra if run.ne_cycles else 0
                        st.ne_cycles += ne
                        st.planar_cycles += run.planar_cycles
                        busy_ne += ne
                        busy_planar += run.planar_cycles
                        busy_src += a
                        busy_dst += c
                        self.tile_events += 1
                    src_1, cmp_2, cmp_1, dst_2, dst_1 = s1, cmp_1, c1, dst_1, d1
                    j += 1
                lo = hi
        st.stall_input, st.stall_weight, st.stall_output = stall_in, stall_w, stall_out
        if kernel is not None:
            kernel.hand_over()
        busy["tile_dma_src"], busy["tile_dma_dst"] = busy_src, busy_dst
        if not record:
            busy["ne"], busy["planar"] = busy_ne, busy_planar
        n = j
        self.tile_events += 2 * n
        self.batched_steps += n
        end_step = first + n
        self.batches[first] = (end_step, (cmp_end[-1], dst_end[-1]), t)
        if ne_due:
            self.ne_pre = first - 1
        if dst_due:
            self.dst_pre = first - 1
        self.cmp_step, self.cmp_end = end_step - 1, cmp_end[-1]
        self.dst_step, self.dst_end = end_step - 1, dst_end[-1]
        self.dst_prev_end = dst_2  # (after the loop: the write before the batch's last)
        self.src_gate.schedule(src_end)
        self.ne_gate.schedule(ne_due + cmp_end)
        self.dst_gate.schedule(dst_due + dst_end)
        if end_step - 1 == tp.last_step:
            st.end = dst_end[-1]
            self.done_gate.schedule([dst_end[-1]])
        delay = src_end[-1] - env._now
        if delay > 0:
            yield timer.after(delay)
        return r, i_next


class _KernelReplay:
    """The kernel DMA's fetches during a batch, each alone on the DRAM (see ``_kernel_state``).

    Chunk j starts when chunk j-1 has landed and the buffer it reuses is free (its last step
    has computed), after the DRAM latency if it had to wait for that buffer, and moves at the
    weight stream's rate alone, as the kernel DMA process and the DRAM model would time it.
    """

    def __init__(self, engine: Any, first: int, t: float, state: tuple[int, float, int]) -> None:
        self.engine = engine
        self.first = first  # the batch's first step
        self.cmp_1 = -1.0  # compute end of the step before it (set once known)
        self.t = t
        self.next, free_at, self.moving = state
        self.landed_at: dict[int, float] = {}
        if self.moving >= 0:
            self.landed_at[self.moving] = free_at
        self.prev_end = free_at  # (< 0: the kernel DMA waits for a buffer, not for the DRAM)
        self.taken: list[tuple[int, float, float, float, bool]] = []  # (chunk, asked, start, end, booked alone)

    def landed(self, chunk: int, cmp_end: list[float]) -> float:
        """When ``chunk`` has landed (-1 when it had before the batch), fetching up to it."""
        if chunk < 0:
            return -1.0
        e = self.engine
        chunks = e.plan.chunks
        while self.next <= chunk:
            j = self.next
            dep_end = -1.0
            if j >= 1:
                dep = e._chunk_dep(j)
                if dep >= 0:
                    step = chunks[dep].last_step
                    if step >= self.first:
                        dep_end = cmp_end[step - self.first]
                    elif step == self.first - 1:
                        dep_end = self.cmp_1
            # (asked: when the kernel DMA asks for it; a fetch that waited pays the latency)
            if self.prev_end < 0.0:  # the kernel DMA waits on this chunk's buffer now
                asked = dep_end if dep_end > self.t else self.t
                start = asked + e.dram_latency
            elif dep_end > self.prev_end or j == 0:
                asked = dep_end if dep_end > self.prev_end else self.prev_end
                start = asked + e.dram_latency
            else:
                asked = start = self.prev_end
            ch = chunks[j]
            end = e.dram.alone_end(ch.nbytes, "weight", ch.cost, start)
            self.taken.append((j, asked, start, end, True))
            self.landed_at[j] = end
            self.prev_end = end
            self.next = j + 1
        return self.landed_at.get(chunk, -1.0)

    def hand_over(self) -> None:
        """Schedule the kernel gate at the landings and let the kernel DMA skip the chunks moved."""
        e = self.engine
        times = []
        if self.moving >= 0:
            times.append(self.landed_at[self.moving])
            e.kgate_pre = self.moving
        times += [end for _, _, _, end, _ in self.taken]
        if self.taken:
            e.kdma_taken = self.taken
            e.kdma_taken_end = self.next
        e.kernel_gate.schedule(times)
