"""Batches of tile steps that move DRAM: the step-by-step model replayed without simpy events.

The closed-form batches of ``batch.py`` cover steps that move no DRAM. A step that writes its
result to DRAM, or fetches a weight slice of its own, shares the DRAM with whatever else is in
flight, so its times come out of the fluid model (``dram.py``). Inside one task, though, only
four actors move while its source comes from the pool: the source DMA, the compute, the
destination DMA and the kernel DMA. A batch replays exactly those, the DRAM flows among them
included, with the fluid model's own arithmetic (``_replay.py``): the same charges at the same
instants, the same rates, the same tolerance at a landing. Every time and byte is then the
step-by-step one.

A batch opens when the source stage reaches step k with the compute stage on step k-1 (started,
or waiting to start). The write and the weight fetch the DRAM carries then, if any, are taken
over: they leave the DRAM model, the replay moves them on, and the stages waiting on them
resume when they land. The replay runs over at most ``MAX_REPLAY_STEPS`` of the stretch of such
steps (the task's last step stays out), and the batch ends at the last instant in it when the
DRAM is idle with nothing asked for before it. One transfer asked for at that very instant may
be there (the next write, as the one before lands; the next weight slice, back to back): the
batch leaves it to its stage, which is resumed at that instant and asks for it then, exactly as
it did in the replay. So even a stretch that keeps the DRAM busy as long as it computes, a
weight slice always moving, ends somewhere: at a landing with no write in flight. Everything up
to that instant is scheduled: the gate increments, the landings, the stages' resumption and
their bookkeeping. Everything after it is left to the step-by-step model, which finds the DRAM
as it would have. A replay stops at an instant whose outcome the
event order decides (a weight slice landing as a compute ends decides whether the next fetch pays
the DRAM latency; two flows landing at once add their contention in list order), so the batch
ends at the idle instant before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Generator
from itertools import repeat
from operator import itemgetter
from typing import Any

from anesim.timing._replay import replay
from anesim.timing.dram import _Tick
from anesim.timing.events import Signal, Timer
from anesim.timing.plan import Run, TaskPlan
from anesim.timing.units import DST_ID, SRC_ID

MIN_DRAM_BATCH_STEPS = 4  # fewer covered source steps are left to the step-by-step path
# source steps one replay looks at: it ends at the last idle instant among them, and the next
# batch may go on from there
MAX_REPLAY_STEPS = 256
# Once a program's replays have looked at this many source steps, they go on only while they
# cover at least half of what they look at (a replay costs about a third of what it saves).
TRIAL_STEPS = 300
# Source steps: a shorter stretch costs more to replay than it saves. (A tile-outer task's
# stretches lie between the first passes of its tiles, which read their source from DRAM: a
# 20-pass task's are 19 steps long; replaying them took 15 % of the SD UNet's events away.)
MIN_DRAM_STRETCH = 16
NEVER = 1 << 62  # a step no program reaches
_COMPUTE_START = itemgetter(3)  # (of a replayed step's compute instants)


def _dram_run(run: Run) -> bool:
    """A run a DRAM batch can cover: pool or no source, and DRAM writes or weights per step."""
    return not run.src_dram_bytes and bool(run.dst_dram_bytes or run.weights_streamed)


def _stretch_end(runs: list[Run], r: int, dram: bool) -> int:
    """The step after the runs from ``r`` on that are (``dram``) or are not DRAM-batch runs."""
    end = runs[r].first_step
    while r < len(runs) and _dram_run(runs[r]) == dram:
        end = runs[r].first_step + runs[r].count
        r += 1
    return end


class DramStepBatches:
    """The engine's DRAM-step batch methods (mixed into :class:`~anesim.timing.engine.Engine`)."""

    def _dram_batchable(self, tp: TaskPlan, r: int, i: int) -> bool:
        """Whether a DRAM batch may open at step ``i`` of run ``r`` (cheap checks first)."""
        runs = tp.runs
        run = runs[r]
        if not _dram_run(run):
            self.dram_batch_after = _stretch_end(runs, r, False)  # (the engine skips to its end)
            return False
        k = run.first_step + i
        if k < tp.first_step + 2 or k < self.dram_batch_after:
            return False
        if k + MIN_DRAM_BATCH_STEPS >= tp.last_step:
            self.dram_batch_after = tp.last_step + 1
            return False
        if self.dram_replayed > TRIAL_STEPS and 2 * self.dram_covered < self.dram_replayed:
            # (this program's replays cover too little of what they replay to pay: none is
            # tried again, since the counts no longer change)
            self.dram_batch_after = NEVER
            return False
        d = self.dram
        if self.kdma_taken or self.dst_step not in (k - 3, k - 2):
            return False
        # What the DRAM carries must be the destination stage's write and the kernel DMA's fetch,
        # asked for before: the batch takes them over (see _Replay).
        if len(d._flows) + len(d._pending) != (self.dst_end < 0.0) + self.kdma_moving:
            return False
        if self.cmp_step != k - 1 and not (self.cmp_step == k - 2 and self.cmp_end <= self.env._now):
            return False  # (the compute stage has started step k-1, or waits to start it)
        if self.ne_gate.scheduled() or self.kernel_gate.scheduled() or self.cmp_skips or self.dst_skips:
            return False
        if self.kernel_gate.current() != self.kdma_j:
            return False
        # The descriptors of this task and the next are out: the firmware issues no other before
        # the next task starts, so the kernel DMA reaches no chunk the batch does not replay.
        if self.fw_gate.current() < min(tp.pos + 2, len(self.plan.tasks)):
            return False
        # A short stretch costs more to replay than it saves: found by its runs, and not tried
        # again.
        end = _stretch_end(runs, r, True)
        if min(end, tp.last_step) - k < MIN_DRAM_STRETCH:
            self.dram_batch_after = end
            return False
        return True

    def _run_dram_batch(self, tp: TaskPlan, r0: int, i0: int,
                        timer: Timer) -> Generator[Any, Any, tuple[int, int] | None]:
        """Replay the steps from step ``i0`` of run ``r0`` and schedule them; where the source
        stage goes on, or None when no batch opens."""
        plan = _Replay(self, tp, r0, i0)
        if plan.steps is not None:
            # The replay ran to the end of the stretch (or would not: a chunk of no bytes) and
            # the batch ends at the last idle instant in it, if any: a batch opened later in
            # the stretch would find no other. One that stopped early, the DRAM busy, is tried
            # again past the steps it reached.
            self.dram_batch_after = plan.d0 + len(plan.steps)
            if plan.ok and plan.res.stop == float("inf") and plan.res.d_next < len(plan.steps):
                self.dram_batch_after = plan.d0 + plan.res.d_next
        if not plan.ok:
            return None
        self.dram_replayed += plan.res.s_next - (plan.k - plan.d0)
        cut = plan.cut()
        if cut is None:
            return None
        s_end, r_next, i_next = plan.apply(cut)
        self.dram_covered += s_end - plan.k
        self.dram_batch_after = s_end  # (the next batch may open where this one ends)
        if plan.src_resume > self.env._now:
            yield timer.at(plan.src_resume)
        return r_next, i_next

    def _skip_dram_batch(self, skips: dict, k: int, timer: Timer) -> Generator[Any, Any, int]:
        """Wait until the end of the batch stretch that starts at step ``k`` of one stage; the step
        after it."""
        end_step, end, deferred = skips.pop(k)
        if end > self.env._now:
            yield timer.at(end)  # (exactly: now + (end - now) could round)
        if deferred is not None:
            deferred()
        return end_step


class _Replay:
    """One DRAM batch: the replay (``_replay.replay``) of one task's stages and the kernel DMA,
    and the scheduling of what it found."""

    def __init__(self, engine: Any, tp: TaskPlan, r0: int, i0: int) -> None:
        e = self.e = engine
        self.tp = tp
        self.t_open = t = e.env._now
        self.k = k = tp.runs[r0].first_step + i0
        self.d0 = d0 = e.dst_step + 1
        # per step from d0: its run, its index in the run and the run's index (built list by list:
        # a stretch has hundreds of steps); None while the take-over is refused
        self.steps: list[Run] | None = None
        self.step_i: list[int] = []
        self.step_r: list[int] = []
        self.ok = self._take_over_state(tp, d0)
        if not self.ok:
            return
        # Steps from d0 (the first write not yet asked for) to the end of the stretch the batch
        # may cover: (run, index in it, run index).
        runs = tp.runs
        # the stretch as pieces of runs: (run index, first index in it, end index)
        pieces: list[tuple[int, int, int]] = []
        rb, ib = r0, i0 - (k - d0)
        while ib < 0:
            rb -= 1
            ib += runs[rb].count
        while rb < r0:
            pieces.append((rb, ib, runs[rb].count))
            rb, ib = rb + 1, 0
        if ib < i0:
            pieces.append((r0, ib, i0))
        r, i = r0, i0
        end_step = min(tp.last_step, k + MAX_REPLAY_STEPS)  # (the task's last step stays out)
        while r < len(runs):
            run = runs[r]
            stop = min(run.count, end_step - run.first_step)
            if not _dram_run(run) or stop <= i:
                break
            pieces.append((r, i, stop))
            if stop < run.count:
                i = stop
                break
            r, i = r + 1, 0
        self.next_run = (r, i)
        self.j0 = j0 = e.kdma_j
        steps: list[Run] = []
        step_i: list[int] = []
        step_r: list[int] = []
        a: list[float] = []
        b: list[float] = []
        wbytes: list[float] = []
        dpool: list[float] = []
        need: list[int] = []
        write_cost = e.write_cost
        for rr, i_from, i_to in pieces:
            run = runs[rr]
            count = i_to - i_from
            steps += [run] * count
            step_i += range(i_from, i_to)
            step_r += [rr] * count
            a += [run.src_pool_cycles] * count
            b += [run.compute_cycles] * count
            wbytes += [float(run.dst_dram_bytes) * (write_cost if run.dst_stream == "activation" else 1.0)] * count
            dpool += [run.dst_pool_cycles] * count
            if run.chunk_first >= 0:
                first, per = run.chunk_first, run.chunk_steps
                if per == 1:  # (a slice per step: the chunks count up, the landed ones first)
                    low = first + i_from - j0
                    need += [-1] * min(count, max(0, -low))
                    need += range(max(low, 0), first + i_to - j0)
                else:
                    need += [c - j0 if c >= j0 else -1 for c in [first + x // per for x in range(i_from, i_to)]]
            else:
                need += [-1] * count
        self.steps, self.step_i, self.step_r = steps, step_i, step_r
        k_max = d0 + len(steps)
        chunks = self.chunks = e.plan.chunks
        fw = e.fw_gate.current()
        cache = e.kernel_cache
        # The chunks the kernel DMA may reach: up to the first whose buffer waits on a step past
        # the stretch (or whose descriptor is not out), which it cannot ask for before the end.
        cbytes: list[float] = []
        cdep: list[int] = []
        j = j0
        prev = chunks[j0 - 1] if j0 >= 1 else None
        while j < len(chunks):
            ch = chunks[j]
            if prev is None:
                dep = -1
            else:  # (the buffer it reuses, as Engine._chunk_dep)
                dep = j - 2 if ch.streamed or prev.nbytes + ch.nbytes <= cache else j - 1
            step = chunks[dep].last_step if dep >= 0 else -1
            if step >= k_max or ch.task_pos + 1 > fw:
                break
            if ch.nbytes <= 0:  # (lands as it starts, with no flow: left to the DRAM model)
                self.ok = False
                return
            cbytes.append(float(ch.nbytes) * ch.cost)
            cdep.append(step - d0 if step >= k - 1 else -1)
            prev = ch
            j += 1
        d = e.dram
        stream = tp.runs[r0].dst_stream
        wbit, kbit = d.stream_bit(stream), d.stream_bit("weight")
        both = d.per_flow_rates(wbit + kbit)
        rates = (d.per_flow_rates(wbit)[stream], d.per_flow_rates(kbit)["weight"], both[stream], both["weight"])
        # The compute of step k-1: started (its end known), or waiting to start, replayed.
        self.started = e.cmp_step == k - 1
        km1, km2 = (e.cmp_end, t) if self.started else (-1.0, e.cmp_end)
        self.res = replay(a, b, wbytes, dpool, need, cbytes, cdep, j0 == 0, k - d0, t, km2, km1, e.dst_end,
                          e.dram_latency, d._last_update, d.busy_cycles, d.contention_cycles, rates,
                          (d._alone[stream], d._alone["weight"]), self.w0, self.k0, self.wake0, self.seq0)

    def _take_over_state(self, tp: TaskPlan, d0: int) -> bool:
        """Read the write and the fetch in flight or in their latency, and the wake-up armed, as
        the replay starts from them; False when the DRAM carries anything else.

        Their order (a start and a wake-up due at one instant run in the order they were
        scheduled) is their order on simpy's queue.
        """
        e = self.e
        d = e.dram
        self.w0 = self.k0 = None
        self.w_flow = self.k_flow = None
        self.ticks: list[Any] = []
        self.wake0 = (-1.0, 0)
        self.seq0 = 0
        if not d._flows and not d._pending:
            return True
        w_stream = tp.runs[0].dst_stream  # (one destination stream per task)

        def owned(f: Any) -> bool:
            # the destination stage's write, or the kernel DMA's fetch (one of each at most)
            if f.nbytes <= 0:
                return False
            if f.stream == w_stream and e.dst_end < 0.0 and self.w_flow is None:
                self.w_flow = f
            elif f.stream == "weight" and e.kdma_moving and self.k_flow is None:
                self.k_flow = f
            else:
                return False
            return True

        entries = []  # (eid, kind, payload)
        if not all(owned(f) for f in d._flows):
            return False
        if d._pending or d._wake_at >= 0.0:
            for time, _, eid, ev in e.env._queue:
                if type(ev) is not _Tick:
                    continue
                if ev.flow is not None:
                    f = ev.flow
                    if not owned(f):
                        return False
                    entries.append((eid, 1, (f, time)))
                    self.ticks.append(ev)
                elif ev.token == d._token and d._wake_at >= 0.0:
                    entries.append((eid, 0, time))
                    self.ticks.append(ev)
        if len(self.ticks) != len(d._pending) + (d._wake_at >= 0.0):
            return False
        seq = {}
        for n, (_, kind, payload) in enumerate(sorted(entries, key=lambda x: x[0]), 1):
            if kind == 0:
                self.wake0 = (payload, n)
            else:
                seq[id(payload[0])] = (payload[1], n)
        self.seq0 = len(entries)
        for f, name in ((self.w_flow, "w0"), (self.k_flow, "k0")):
            if f is None:
                continue
            pt, ps = seq.get(id(f), (0.0, 0))
            moving = id(f) not in seq
            setattr(self, name, (moving, f.remaining_bytes, f.rate, f.start, f.nbytes, pt, ps))
        return (self.w_flow is not None) == (e.dst_end < 0.0) and (self.k_flow is not None) == e.kdma_moving

    def cut(self) -> tuple[float, float, float, float] | None:
        """The last idle instant before the replay's stop (with the DRAM's totals then), if the
        batch covers enough source steps by then."""
        res = self.res
        k_off = self.k - self.d0
        for idle in reversed(res.idle):
            q = idle[0]
            if q >= res.stop:
                continue
            covered = bisect_right(res.src_start, q, k_off, res.s_next) - k_off  # (starts never go back)
            return idle if covered >= MIN_DRAM_BATCH_STEPS else None
        return None

    def apply(self, idle: tuple[float, float, float, float]) -> tuple[int, int, int]:
        """Schedule what the replay found up to the idle instant; the first step left to the
        source stage, and its run and index there."""
        e = self.e
        tp = self.tp
        st = e.stats[tp.pos]
        d0, k = self.d0, self.k
        q = idle[0]
        res = self.res
        record = e.record
        busy = e.busy
        trace = e.trace
        pos = tp.pos
        src_start, src_end = res.src_start, res.src_end
        # source steps started by q (the stages' start times never go back: found by bisection)
        s_end = d0 + bisect_right(src_start, q, k - d0, res.s_next)
        src_ends = []
        for x in range(k - d0, s_end - d0):
            t0, t1 = src_start[x], src_end[x]
            busy["tile_dma_src"] += t1 - t0
            if record and t1 > t0:
                trace.append((SRC_ID, "src", t0, t1, pos))
            src_ends.append(t1)
        e.tile_events += s_end - k
        # compute steps started by q
        stalls = res.stalls
        c_end = d0 + bisect_right(stalls, q, k - d0, res.c_next, key=_COMPUTE_START)
        cmp_ends = [res.cmp_end[x] for x in range(k - d0, c_end - d0)]
        computed = list(zip(self.steps[k - d0:c_end - d0], self.step_i[k - d0:c_end - d0], stalls[k - d0:c_end - d0]))

        def book_compute() -> None:
            # When the compute stage reaches the batch, after the step before it: its stalls and
            # busy cycles add up in the order the stage would add them.
            began = st.start
            for run, i, (t0, t1, t2, t3) in computed:
                st.stall_input += t1 - (t0 if t0 >= began else began)
                st.stall_weight += t2 - t1
                st.stall_output += t3 - t2
                if record:
                    e._compute_slices(tp, run, i, t3, 0)
                else:
                    ne = run.ne_cycles if run.ne_cycles else 0
                    st.ne_cycles += ne
                    st.planar_cycles += run.planar_cycles
                    e.tile_events += 1
                    busy["ne"] += (t3 + ne) - t3
                    busy["planar"] += (t3 + run.planar_cycles) - t3

        # destination steps asked for by q
        hi = bisect_right(res.dst_start, q, 0, res.d_next)
        x = bisect_left(res.dst_start, q, 0, hi)
        while x < hi and not self.steps[x].dst_dram_bytes > 0:
            x += 1  # (a write asked for at the idle instant is left out: its stage asks for it then)
        d_end = d0 + x
        d = e.dram
        by = d.bytes_by_stream
        written = list(zip(self.steps[:d_end - d0], res.dst_start, res.dst_end))
        dst_ends = [t1 for _, _, t1 in written]
        stream, total = "", 0.0  # (added up in the order asked, as the stage adds them)
        for run, _, _ in written:
            if run.dst_dram_bytes > 0:
                if run.dst_stream != stream:
                    if stream:
                        by[stream] = total
                    stream = run.dst_stream
                    total = by.get(stream, 0.0)
                total = total + run.dst_dram_bytes
        if stream:
            by[stream] = total

        def book_dst() -> None:
            # When the destination stage reaches the batch, after the write before it has landed
            # and been booked: its busy cycles add up in the order the stage would add them.
            for run, t0, t1 in written:
                if run.dst_dram_bytes > 0:
                    nb = run.dst_dram_bytes
                    st.dram_activation_bytes += nb
                    if run.dst_stream == "scratch":
                        st.dram_scratch_bytes += nb
                busy["tile_dma_dst"] += t1 - t0
                if record and t1 > t0:
                    trace.append((DST_ID, "dst", t0, t1, pos))
            e.tile_events += len(written)
        # kernel chunks asked for by q (all landed by then; one taken over is booked by its stage)
        j0 = self.j0
        first = 1 if self.k0 is not None else 0
        # (asked in order; one asked for at the idle instant is left out: the kernel DMA asks for it then)
        last = bisect_left(res.k_asked, q, first, max(first, res.j_next))
        taken = list(zip(range(j0 + first, j0 + last), res.k_asked[first:last], res.k_start[first:last],
                         res.k_landed[first:last], repeat(False)))
        if taken:
            total = by.get("weight", 0.0)
            for jj in range(first, last):
                total = total + self.chunks[j0 + jj].nbytes
            by["weight"] = total
        _, d.busy_cycles, d.contention_cycles, d._last_update = idle
        if self.w0 is not None or self.k0 is not None:
            # The transfers taken over leave the DRAM model (their ticks do nothing now); their
            # stages, waiting on them, resume when they landed in the replay.
            d._flows = []
            d._mix = 0
            d._pending = []
            d._token += 1
            d._wake_at = -1.0
            for tick in self.ticks:
                tick.flow = None
                tick.token = -1
            if self.w_flow is not None:
                e.alarms.call_at(res.w0_landed, Signal.fire, self.w_flow)
            if self.k_flow is not None:
                e.alarms.call_at(res.k_landed[0], Signal.fire, self.k_flow)
        # gates and the stages' resumption
        if c_end > k:
            if e.ne_gate.count + e.ne_gate.scheduled() < k:
                # (step k-1's increment goes before the batch's: its stage leaves it to the batch)
                e.ne_pre = k - 1
                e.ne_gate.schedule([res.cmp_end[k - 1 - d0]] + cmp_ends)
            else:
                e.ne_gate.schedule(cmp_ends)
            e.cmp_skips[k] = (c_end, cmp_ends[-1], book_compute)
            e.cmp_step, e.cmp_end = c_end - 1, cmp_ends[-1]
        w_end = res.w0_landed if self.w0 is not None else e.dst_end  # (the end of step d0 - 1)
        if self.w0 is not None:
            e.dst_pre = d0 - 1  # (its stage leaves its increment to the batch)
            e.dst_gate.schedule([w_end])
        if d_end > d0:
            e.dst_gate.schedule(dst_ends)
            e.dst_skips[d0] = (d_end, dst_ends[-1], book_dst)
            e.dst_prev_end = dst_ends[-2] if len(dst_ends) > 1 else w_end
            e.dst_step, e.dst_end = d_end - 1, dst_ends[-1]
        e.src_gate.schedule(src_ends)
        if self.k0 is not None:
            e.kgate_pre = j0  # (its stage leaves its increment to the batch)
            e.kernel_gate.schedule([res.k_landed[0]])
        if taken:
            e.kdma_taken = taken
            e.kdma_taken_end = taken[-1][0] + 1
            e.kernel_gate.schedule([end for _, _, _, end, _ in taken])
        e.batched_steps += s_end - k
        self.src_resume = src_ends[-1]
        if s_end - d0 < len(self.steps):
            i, r = self.step_i[s_end - d0], self.step_r[s_end - d0]
        else:
            r, i = self.next_run
        return s_end, r, i
