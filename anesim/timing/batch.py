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

from anesim.timing.events import Timer
from anesim.timing.plan import Run, TaskPlan
from anesim.timing.units import DST_ID, SRC_ID


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

    def _batchable(self, tp: TaskPlan, r: int, i: int) -> tuple[float, float, float, list[float], list[float]] | None:
        """Where a batch from step ``i`` of run ``r`` (a pass's first) starts, or None when it cannot open now.

        A run opens a batch when it is DRAM-free and holds its weights, and the times the steps
        before it leave the compute and destination stages are known: the pipeline is empty, or
        the previous step computes with a known end and the destination writes of the two steps
        before it end at known times (pool writes, or finished). Returns the compute end of the
        previous step, the destination ends of the two before, and the gate increments of those
        steps still due (compute, destination), which the batch schedules in their stages' place.
        """
        run = tp.runs[r]
        if run.src_dram_bytes or run.dst_dram_bytes or run.weights_streamed:
            return None
        k = run.first_step + i
        if run.chunk_first >= 0 and self.kernel_gate.current() <= chunk_of(run, i):
            # Weights still loading: a batch would hold the source stage until they land, where
            # step by step the source DMA of the next steps goes ahead.
            return None
        ne_now = self.ne_gate.current()
        dst_now = self.dst_gate.current()
        t = self.env._now
        if ne_now == k and dst_now == k:
            return (t, t, t, [], [])
        if r == 0 and i == 0:
            return None  # the previous step is another task's
        if self.done_gate.current() + len(self.done_gate.future) < tp.pos:
            return None  # an earlier task's last write is still to come: its end goes first
        if self.cmp_step == k - 1:
            cmp_1 = self.cmp_end
        elif self.cmp_step == k - 2 and (cmp_1 := self._compute_starting_now(tp, r, i, ne_now, dst_now)) >= 0.0:
            pass  # (the compute stage is about to start step k-1: its end is known)
        else:
            return None  # the previous step's compute waits on something still in flight
        # Increments counted or already scheduled (by an earlier batch that covered those steps).
        ne_known = ne_now + len(self.ne_gate.future)
        dst_known = dst_now + len(self.dst_gate.future)
        ne_due = [cmp_1] if ne_known < k else []
        if self.dst_end < 0.0:
            return None  # a DRAM write in flight: its end is not known yet
        if self.dst_step == k - 1:
            dst_2, dst_1 = self.dst_prev_end, self.dst_end
            dst_due = [dst_1] if dst_known < k else []
        elif self.dst_step == k - 2:
            prev = run if i else tp.runs[r - 1]  # step k-1's run: its write starts when both are done
            if prev.dst_dram_bytes:
                return None
            dst_2 = self.dst_end
            d0 = cmp_1 if cmp_1 >= dst_2 else dst_2
            dst_1 = d0 + prev.dst_pool_cycles if prev.dst_pool_cycles > 0 else d0
            dst_due = ([dst_2] if dst_known < k - 1 else []) + ([dst_1] if dst_known < k else [])
        else:
            return None
        return (cmp_1 if cmp_1 >= t else t, dst_2, dst_1, ne_due, dst_due)

    def _compute_starting_now(self, tp: TaskPlan, r: int, i: int, ne_now: int, dst_now: int) -> float:
        """When the compute stage starts step k-1 now (k: step ``i`` of run ``r``), the end of it; else -1.

        The source stage reaches step k when step k-2's compute ends, the moment the compute
        stage moves on to step k-1: that step starts now unless it still waits for its weights
        or for the write of step k-3, and then ends its compute cycles later, as the compute
        stage will find.
        """
        k = tp.runs[r].first_step + i
        if ne_now < k - 1 or dst_now < k - 2 or self.src_gate.current() < k:
            return -1.0
        prev, j = (tp.runs[r], i - 1) if i else (tp.runs[r - 1], tp.runs[r - 1].count - 1)
        if prev.chunk_first >= 0 and self.kernel_gate.current() <= chunk_of(prev, j):
            return -1.0
        extra = self.layer_overhead if k - 1 == tp.first_step and tp.task.ne is not None else 0
        return self.env._now + (prev.compute_cycles + extra)  # (as the compute stage's timer adds it)

    def _run_batch(
        self, tp: TaskPlan, r0: int, i0: int, timer: Timer, init: tuple[float, float, float, list[float], list[float]],
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
        pass's or already loaded. Returns the run and step where the step-by-step model resumes.
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
        while r < len(runs):  # (r, i): where the step-by-step model resumes
            run = runs[r]
            if run.src_dram_bytes or run.dst_dram_bytes or run.weights_streamed:
                break
            ch = chunk_of(run, i)
            if pieces and not (ch in (-1, first_chunk) or loaded > ch):
                break
            end = run.count if not run.chunk_stride else min(run.count, (i // run.chunk_steps + 1) * run.chunk_steps)
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
        cmp_1, dst_2, dst_1, ne_due, dst_due = init
        # (no weight stall: a batch opens only once its weights have landed, see _batchable)
        stall_in, stall_out = st.stall_input, st.stall_output
        busy_ne, busy_planar = busy["ne"], busy["planar"]
        busy_src, busy_dst = busy["tile_dma_src"], busy["tile_dma_dst"]
        j = 0
        for run, i_from, i_to in pieces:
            a, c = run.src_pool_cycles, run.dst_pool_cycles
            for i in range(i_from, i_to):
                extra = first_extra if j == 0 else 0
                b = run.compute_cycles + extra
                s0 = src_1 if src_1 >= cmp_2 else cmp_2
                s1 = s0 + a
                ready = s1 if s1 >= cmp_1 else cmp_1
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
        st.stall_input, st.stall_output = stall_in, stall_out
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
