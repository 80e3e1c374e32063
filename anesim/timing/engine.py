"""The discrete-event model: dispatch, firmware queue, kernel DMA, tile DMA, NE and planar engine.

Processes (generators on one ``simpy.Environment``):

- ``dispatch``: host binding, request build, the firmware picking the command up; then, once the
  last task has written its result, the firmware signalling back and completion on the host.
  One command is in flight, so nothing overlaps these stages.
- ``firmware``: walks the task descriptors in order, paying the per-task overhead for each; it
  runs at most one descriptor ahead of the task the engine has started. It waits on nothing
  else, so after the first descriptor each walk is a callback at its end, armed when the task
  before starts, not a process.
- ``kernel_dma``: fetches kernel chunks (weights, bias, post-scale, palette, LUT) on the weight
  stream; a chunk may load while earlier ones are in use only if both fit the kernel cache.
- ``tile_src``, ``compute``, ``tile_dst``: the tile pipeline. Every (pass, tile) step flows
  source DMA -> NE/planar -> destination DMA with two buffers between stages (double
  buffering), so DMA of one tile overlaps compute of its neighbours. The compute stage records
  why it waited: input (source DMA late), weight (kernel DMA late) or output (destination DMA
  still draining the buffer it needs).

DRAM is a :class:`~anesim.timing.dram.SharedBandwidth`; the pool is modelled as a fixed rate
per transfer. A task whose source another task produced waits for that task's last result
write. Events are per tile step and per kernel chunk, never per cycle; runs of identical
steps whose tile DMA moves no DRAM bytes are computed in closed form and advance as one event
(``batch.py``), the kernel DMA's fetches among them too when nothing else is on the DRAM, and
stretches of one task's steps that write DRAM or fetch a weight slice each are replayed without
events, with the DRAM model's arithmetic (``dram_batch.py``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Generator
from typing import Any

import simpy

from anesim.chips.schema import ChipConfig
from anesim.timing import costs
from anesim.timing.dram import SharedBandwidth
from anesim.timing.batch import ClosedFormBatches
from anesim.timing.dram_batch import DramStepBatches
from anesim.timing.events import Alarms, Timer, start
from anesim.timing.gate import Gate
from anesim.timing.output import EngineOutput, TaskStats
from anesim.timing.plan import ProgramPlan, Run, TaskPlan
from anesim.timing.units import FIRMWARE_ID as _FIRMWARE_ID, NE_ID as _NE_ID, PLANAR_ID as _PLANAR_ID
from anesim.timing.units import UNIT_ID as _UNIT_ID, UNITS

__all__ = ["UNITS", "Engine", "EngineOutput", "TaskStats", "run_engine"]


class Engine(ClosedFormBatches, DramStepBatches):
    """One simulation of a planned program on a chip."""

    def __init__(
        self, plan: ProgramPlan, chip: ChipConfig, *, record_trace: bool = True, batch: bool = True,
    ) -> None:
        self.plan = plan
        self.chip = chip
        self.env = env = simpy.Environment(initial_time=0.0)  # float times throughout
        self.record = record_trace
        self.batch = batch
        clock = chip.ne.clock_hz.value
        self.clock = clock
        d = chip.dram
        self.dram = SharedBandwidth(
            env,
            d.peak_bytes_per_s.value / clock,
            {"activation": d.activation_bytes_per_s.value * d.activation_read_ratio.value / clock,
             "scratch": d.scratch_bytes_per_s.value / clock,
             "weight": d.weight_bytes_per_s.value / clock},
        )
        # The activation stream runs at the read rate; a written byte costs this many read bytes
        # (1 when reads and writes are symmetric), so a read+write stream keeps its measured rate.
        self.write_cost = 2.0 * d.activation_read_ratio.value - 1.0
        self.dram_latency = d.latency_s.value * clock
        self.task_overhead = chip.dispatch.per_task_overhead_s.value * clock
        self.layer_overhead = costs.task_overhead_cycles(chip)
        self.kernel_cache = chip.memory.kernel_cache_bytes.value
        self.alarms = alarms = Alarms(env)
        self.fw_gate = Gate(env, alarms)  # descriptors the firmware has issued
        self.tasks_started = 0  # tasks whose first step has begun
        self.fw_issuing = False  # the firmware is issuing a descriptor (see _issue)
        self.done_gate = Gate(env, alarms)  # tasks whose last result write has finished
        self.src_gate = Gate(env, alarms)
        self.ne_gate = Gate(env, alarms)
        self.dst_gate = Gate(env, alarms)
        self.kernel_gate = Gate(env, alarms)
        self.stats = [TaskStats() for _ in plan.tasks]
        self.busy = dict.fromkeys(UNITS, 0.0)
        self.busy_dispatch = dict.fromkeys(UNITS, 0.0)  # the part outside the engine span
        self.trace: list[tuple[int, str, float, float, int]] = []
        self.tile_events = 0
        self.batched_steps = 0
        self.marks: dict[str, tuple[float, float]] = {}
        self.engine_start = 0.0
        self.engine_end = 0.0
        self.end = 0.0
        self.finished = False  # the dispatch's completion reached the host
        # first step of a batch -> (step after it, (compute end, destination end), start time)
        self.batches: dict[int, tuple[int, tuple[float, float], float]] = {}
        # The last step the compute stage started and when it ends; the last step the destination
        # stage started, when it ends (-1 while a DRAM write's end is unknown) and when the step
        # before it ended. A batch may open behind these steps while they are still in flight.
        self.cmp_step, self.cmp_end = -1, 0.0
        self.dst_step, self.dst_end, self.dst_prev_end = -1, 0.0, 0.0
        # Steps up to these have their gate increment scheduled by a batch, not by their stage.
        self.ne_pre = self.dst_pre = -1
        # The kernel DMA: the chunk it handles and whether that chunk is moving; chunks below
        # kdma_taken_end were moved by a batch ((chunk, asked, start, end) in kdma_taken until
        # the last has landed and they are booked); kernel-gate increments up to chunk kgate_pre
        # are scheduled by a batch.
        self.kdma_j, self.kdma_moving = 0, False
        self.kdma_taken_end = 0
        self.kdma_taken: list[tuple[int, float, float, float, bool]] = []
        self.kgate_pre = -1
        # DRAM batches (dram_batch.py): per stage, first step covered -> (step after, when the
        # stage's last covered step ends, bookkeeping left for the stage to do then)
        self.cmp_skips: dict[int, tuple[int, float, Any]] = {}
        self.dst_skips: dict[int, tuple[int, float, Any]] = {}
        self.dram_batch_after = 0  # no DRAM batch opens before this step (one was tried)
        self.dram_replayed = self.dram_covered = 0  # source steps DRAM batches replayed, covered

    # -- bookkeeping -----------------------------------------------------------------------

    def _slice(self, unit: str, name: str, start: float, end: float, task: int) -> None:
        self.busy[unit] += end - start
        if task < 0:
            self.busy_dispatch[unit] += end - start
        if self.record and end > start:
            self.trace.append((_UNIT_ID[unit], name, start, end, task))

    # -- processes -------------------------------------------------------------------------

    def dispatch(self) -> Generator[Any, Any, None]:
        """Host and firmware round trip around the task walk."""
        env = self.env
        timer = Timer(env)  # this process's timeout, re-armed for each wait
        c = self.clock
        comp = costs.dispatch_components_s(self.chip)
        fw_half = comp["firmware_round_trip"] * c / 2
        for unit, name, cycles in (
            ("host", "host binding", comp["host_binding"] * c),
            ("host", "request build", comp["request_build"] * c),
            ("firmware", "command pick-up", fw_half),
        ):
            t0 = env._now
            yield timer.after(cycles)
            self._slice(unit, name, t0, env._now, -1)
            self.marks[name] = (t0, env._now)
        self.engine_start = env._now
        start(env, self.firmware())
        if self.plan.tasks:
            start(env, self.tile_src())
            start(env, self.compute())
            start(env, self.tile_dst())
            if self.plan.chunks:
                start(env, self.kernel_dma())
            ev = self.done_gate.wait(len(self.plan.tasks))
            if ev is not None:
                yield ev
        self.engine_end = env._now
        for unit, name, cycles in (
            ("firmware", "completion signal", fw_half),
            ("host", "completion", comp["completion"] * c),
        ):
            t0 = env._now
            yield timer.after(cycles)
            self._slice(unit, name, t0, env._now, -1)
            self.marks[name] = (t0, env._now)
        self.end = env._now
        self.finished = True

    def firmware(self) -> Generator[Any, Any, None]:
        """Walk the first descriptor as the processes start; each later one is walked once the
        task before it has started (:meth:`_walk`, called by the source stage)."""
        if self.plan.tasks:
            self._walk(0)
        return
        yield  # (a generator, started as a process so the walk begins in the processes' order)

    def _walk(self, pos: int) -> None:
        """The firmware walks descriptor ``pos`` from now: it pays the per-task overhead and
        issues it. (Without a process of its own: it waits on nothing but the overhead.)"""
        t0 = self.env._now
        if self.task_overhead > 0:
            self.alarms.call_at(t0 + self.task_overhead, self._issue, (pos, t0))  # (as a timeout adds it)
        else:
            self._issue((pos, t0))

    def _issue(self, walked: tuple[int, float]) -> None:
        """Issue descriptor ``pos`` walked from ``t0``; walk the next if its task has started."""
        pos, t0 = walked
        now = self.env._now
        self.busy["firmware"] += now - t0
        if self.record and now > t0:
            self.trace.append((_FIRMWARE_ID, f"descriptor {pos}", t0, now, pos))
        # A task the issue lets start (its stage resumes within this call) does not walk the next
        # descriptor itself: the firmware goes on to it once the issue is done.
        self.fw_issuing = True
        self.fw_gate.advance()
        self.fw_issuing = False
        if self.tasks_started > pos and pos + 1 < len(self.plan.tasks):
            self._walk(pos + 1)

    def kernel_dma(self) -> Generator[Any, Any, None]:
        """Fetch kernel chunks in order, double-buffered where the kernel cache allows.

        A closed-form batch may take over a stretch of chunks (:meth:`_kernel_state`): the
        process then waits until the last of them has landed, books them, and goes on after it.
        """
        env = self.env
        timer = Timer(env)  # this process's timeout, re-armed for each wait
        chunks = self.plan.chunks
        fw_gate = self.fw_gate
        ne_gate = self.ne_gate
        busy = self.busy
        kernel_unit = _UNIT_ID["kernel_dma"]
        j = 0
        while j < len(chunks):
            if j < self.kdma_taken_end:
                landed = self.kdma_taken[-1][3]  # (the last moved chunk's landing, exactly)
                if landed > env._now:
                    yield timer.at(landed)
                self._book_taken_chunks()
                j = self.kdma_taken_end
                continue
            ch = chunks[j]
            self.kdma_j = j
            waited = False
            if fw_gate.count <= ch.task_pos:  # (wait() would return None otherwise)
                ev = fw_gate.wait(ch.task_pos + 1)
                if ev is not None:
                    waited = True
                    yield ev
            if j >= 1:
                dep = self._chunk_dep(j)
                if dep >= 0 and ne_gate.count <= chunks[dep].last_step:
                    ev = ne_gate.wait(chunks[dep].last_step + 1)
                    if ev is not None:
                        waited = True
                        yield ev
            if j < self.kdma_taken_end:
                continue  # a batch took this chunk over while the process waited
            t0 = env._now
            # Back to back, the request for this chunk went out while the previous one moved, so
            # only a fetch that had to wait (or the first) pays the DRAM latency.
            latency = self.dram_latency if waited or j == 0 else 0.0
            self.kdma_moving = True
            yield self.dram.transfer(ch.nbytes, "weight", latency, ch.cost)
            self.kdma_moving = False
            self.stats[ch.task_pos].dram_weight_bytes += ch.nbytes
            now = env._now
            busy["kernel_dma"] += now - t0  # (as _slice, for a task's chunk)
            if self.record and now > t0:
                self.trace.append((kernel_unit, "kernel", t0, now, ch.task_pos))
            self.tile_events += 1
            if j > self.kgate_pre:
                self.kernel_gate.advance()
            j += 1

    def _chunk_dep(self, j: int) -> int:
        """The chunk whose buffer chunk ``j`` (j >= 1) reuses: it loads once that one's last step has computed."""
        chunks = self.plan.chunks
        ch = chunks[j]
        fits_two = ch.streamed or chunks[j - 1].nbytes + ch.nbytes <= self.kernel_cache
        return j - 2 if fits_two else j - 1

    def _book_taken_chunks(self) -> None:
        """Account the chunks a batch moved (bytes, busy and contention, as the DRAM model would)."""
        for j, asked, start, end, alone in self.kdma_taken:
            ch = self.plan.chunks[j]
            if alone:  # (a DRAM batch's fetches were booked by its replay of the DRAM)
                self.dram.book_alone(ch.nbytes, "weight", ch.cost, start, end)
            self.stats[ch.task_pos].dram_weight_bytes += ch.nbytes
            self._slice("kernel_dma", "kernel", asked, end, ch.task_pos)
            self.tile_events += 1
        self.kdma_taken = []

    def tile_src(self) -> Generator[Any, Any, None]:
        """Source tile DMA: DRAM or pool into one of two input buffers."""
        env = self.env
        timer = Timer(env)  # this process's timeout, re-armed for each wait
        ne_gate = self.ne_gate
        src_gate = self.src_gate
        busy = self.busy
        trace = self.trace
        record = self.record
        transfer = self.dram.transfer
        latency = self.dram_latency
        batch = self.batch
        src_unit = _UNIT_ID["tile_dma_src"]
        busy_until = 0.0  # when the last pool read ends
        for tp in self.plan.tasks:
            st = self.stats[tp.pos]
            pos = tp.pos
            runs = tp.runs
            first_step = tp.first_step
            r = 0
            i = 0
            while r < len(runs):
                run = runs[r]
                if i >= run.count:
                    r, i = r + 1, 0
                    continue
                k = run.first_step + i
                if k == first_step:
                    ev = self.fw_gate.wait(pos + 1)
                    if ev is not None:
                        yield ev
                    for q in tp.producers:
                        ev = self.done_gate.wait(q + 1)
                        if ev is not None:
                            yield ev
                if ne_gate.count < k - 1:  # (wait() would return None otherwise)
                    ev = ne_gate.wait(k - 1)  # a free input buffer: step k-2 computed
                    if ev is not None:
                        yield ev
                if env._now < busy_until:  # the previous pool read is still moving
                    yield timer.at(busy_until)
                if k == first_step:
                    st.start = env._now
                    self.tasks_started = pos + 1
                    if not self.fw_issuing and pos + 1 < len(self.plan.tasks):
                        self._walk(pos + 1)  # (the firmware, waiting for this start, goes on)
                if batch and i % run.pass_steps == 0 and (init := self._batchable(tp, r, i)) is not None:
                    r, i = yield from self._run_batch(tp, r, i, timer, init)
                    continue
                if batch and k >= self.dram_batch_after and self._dram_batchable(tp, r, i):
                    resume = yield from self._run_dram_batch(tp, r, i, timer)
                    if resume is not None:
                        r, i = resume
                        continue
                t0 = env._now
                nbytes = run.src_dram_bytes
                if nbytes == 0 and run.src_pool_cycles > 0:
                    # A pool read takes its cycles, known now: its gate increment is scheduled
                    # at its end, and the process goes on to wait for what the next step needs
                    # (its buffer, mostly), without an event of its own for the end.
                    busy_until = t0 + run.src_pool_cycles  # (as the timer would add it)
                    busy["tile_dma_src"] += busy_until - t0
                    if record and busy_until > t0:
                        trace.append((src_unit, "src", t0, busy_until, pos))
                    self.tile_events += 1
                    src_gate.schedule([busy_until])
                    i += 1
                    continue
                if nbytes > 0:
                    yield transfer(nbytes, run.src_stream, latency)
                    st.dram_activation_bytes += nbytes
                    if run.src_stream == "scratch":
                        st.dram_scratch_bytes += nbytes
                now = env._now
                rest = run.src_pool_cycles - (now - t0)
                if rest > 0:
                    yield timer.after(rest)
                    now = env._now
                busy["tile_dma_src"] += now - t0
                if record and now > t0:
                    trace.append((src_unit, "src", t0, now, pos))
                self.tile_events += 1
                src_gate.advance()
                i += 1

    def compute(self) -> Generator[Any, Any, None]:
        """NE and planar engine: wait for input, weights and a free output buffer, then run."""
        env = self.env
        timer = Timer(env)  # this process's timeout, re-armed for each wait
        src_gate = self.src_gate
        kernel_gate = self.kernel_gate
        dst_gate = self.dst_gate
        ne_gate = self.ne_gate
        batches = self.batches
        record = self.record
        busy = self.busy
        covered = 0  # steps below this were done by a closed-form batch
        for tp in self.plan.tasks:
            st = self.stats[tp.pos]
            first_step = tp.first_step
            has_ne = tp.task.ne is not None
            for run in tp.runs:
                i = 0
                count = run.count
                run_first = run.first_step
                chunk_first = run.chunk_first
                while i < count:
                    k = run_first + i
                    if k < covered:
                        i = covered - run_first
                        continue
                    t0 = now = env._now  # (read again only after a wait)
                    if src_gate.count <= k:
                        ev = src_gate.wait(k + 1)
                        if ev is not None:
                            yield ev
                            now = env._now
                    if k in self.cmp_skips:
                        covered = yield from self._skip_dram_batch(self.cmp_skips, k, timer)
                        continue
                    if k in batches:
                        st.stall_input += max(0.0, batches[k][2] - max(t0, st.start))
                        covered = yield from self._skip_batched(k, 0, timer)
                        continue
                    t1 = now
                    if chunk_first >= 0:
                        need = chunk_first + i // run.chunk_steps + 1
                        if kernel_gate.count < need:  # (wait() would return None otherwise)
                            ev = kernel_gate.wait(need)
                            if ev is not None:
                                yield ev
                                now = env._now
                    t2 = now
                    if dst_gate.count < k - 1:
                        ev = dst_gate.wait(k - 1)  # a free output buffer: step k-2 written
                        if ev is not None:
                            yield ev
                            now = env._now
                    t3 = now
                    began = st.start
                    st.stall_input += t1 - (t0 if t0 >= began else began)  # waiting before the task began is not its stall
                    st.stall_weight += t2 - t1
                    st.stall_output += t3 - t2
                    extra = self.layer_overhead if k == first_step and has_ne else 0
                    if k > self.cmp_step:  # (a batch opened behind this step has moved past it)
                        self.cmp_step, self.cmp_end = k, t3 + (run.compute_cycles + extra)  # as simpy adds it
                    yield timer.after(run.compute_cycles + extra)
                    if record:
                        self._compute_slices(tp, run, i, t3, extra)
                    else:  # as _compute_slices, without the trace
                        ne = run.ne_cycles + extra if run.ne_cycles else 0
                        planar = run.planar_cycles
                        st.ne_cycles += ne
                        st.planar_cycles += planar
                        self.tile_events += 1
                        busy["ne"] += (t3 + ne) - t3
                        busy["planar"] += (t3 + planar) - t3
                    if k > self.ne_pre:
                        ne_gate.advance()
                    i += 1

    def tile_dst(self) -> Generator[Any, Any, None]:
        """Destination tile DMA: from one of two output buffers to DRAM or the pool."""
        env = self.env
        timer = Timer(env)  # this process's timeout, re-armed for each wait
        ne_gate = self.ne_gate
        dst_gate = self.dst_gate
        batches = self.batches
        busy = self.busy
        trace = self.trace
        record = self.record
        transfer = self.dram.transfer
        latency = self.dram_latency
        dst_unit = _UNIT_ID["tile_dma_dst"]
        covered = 0
        busy_until = 0.0  # when the last pool write ends
        for tp in self.plan.tasks:
            st = self.stats[tp.pos]
            pos = tp.pos
            last_step = tp.last_step
            for run in tp.runs:
                i = 0
                count = run.count
                run_first = run.first_step
                while i < count:
                    k = run_first + i
                    if k < covered:
                        i = covered - run_first
                        continue
                    if ne_gate.count <= k:
                        ev = ne_gate.wait(k + 1)
                        if ev is not None:
                            yield ev
                    if env._now < busy_until:  # the previous pool write is still moving
                        yield timer.at(busy_until)
                    if k in self.dst_skips:
                        covered = yield from self._skip_dram_batch(self.dst_skips, k, timer)
                        continue
                    if k in batches:
                        covered = yield from self._skip_batched(k, 1, timer)
                        continue
                    t0 = env._now
                    nbytes = run.dst_dram_bytes
                    pool = run.dst_pool_cycles
                    if k > self.dst_step:  # (not a step a batch has already accounted for)
                        self.dst_prev_end = self.dst_end
                        self.dst_step = k
                        # a pool write's end is known now (t0 + its cycles, as simpy adds them)
                        self.dst_end = -1.0 if nbytes > 0 else (t0 + pool if pool > 0 else t0)
                    if nbytes == 0 and pool > 0:
                        # A pool write's end is known now: its gate increments are scheduled at
                        # it, and the process goes on to wait for the next step's result (as the
                        # source stage does with a pool read).
                        busy_until = t0 + pool
                        busy["tile_dma_dst"] += busy_until - t0
                        if record and busy_until > t0:
                            trace.append((dst_unit, "dst", t0, busy_until, pos))
                        self.tile_events += 1
                        if k > self.dst_pre:
                            dst_gate.schedule([busy_until])
                        i += 1
                        if k == last_step:
                            st.end = busy_until
                            self.done_gate.schedule([busy_until])
                        continue
                    if nbytes > 0:
                        # (the write cost is the activation stream's measured asymmetry)
                        yield transfer(nbytes, run.dst_stream, latency,
                                       self.write_cost if run.dst_stream == "activation" else 1.0)
                        st.dram_activation_bytes += nbytes
                        if run.dst_stream == "scratch":
                            st.dram_scratch_bytes += nbytes
                    now = env._now
                    rest = run.dst_pool_cycles - (now - t0)
                    if rest > 0:
                        yield timer.after(rest)
                        now = env._now
                    busy["tile_dma_dst"] += now - t0
                    if record and now > t0:
                        trace.append((dst_unit, "dst", t0, now, pos))
                    self.tile_events += 1
                    if self.dst_step == k:  # (a batch opened behind it has moved past)
                        self.dst_end = now
                    if k > self.dst_pre:
                        dst_gate.advance()
                    i += 1
                    if k == last_step:
                        st.end = now
                        self.done_gate.advance()

    def _compute_slices(self, tp: TaskPlan, run: Run, i: int, t0: float, extra: int) -> None:
        st = self.stats[tp.pos]
        ne = run.ne_cycles + extra if run.ne_cycles else 0
        planar = run.planar_cycles
        st.ne_cycles += ne
        st.planar_cycles += planar
        self.tile_events += 1
        busy = self.busy
        ne_end = t0 + ne
        planar_end = t0 + planar
        busy["ne"] += ne_end - t0
        busy["planar"] += planar_end - t0
        if self.record:
            trace = self.trace
            if ne_end > t0:
                trace.append((_NE_ID, f"pass {run.pass_of(i)}", t0, ne_end, tp.pos))
            if planar_end > t0:
                trace.append((_PLANAR_ID, tp.kind, t0, planar_end, tp.pos))

    # -- driver ----------------------------------------------------------------------------

    def run(self) -> EngineOutput:
        """Simulate and return the raw output."""
        wall0 = time.perf_counter()
        env = self.env
        start(env, self.dispatch())
        events = 0
        # env.run(), counting the events stepped: simpy's Environment.step written out here (one
        # method call less per event), without its StopSimulation handling, which nothing here
        # uses, and without its check for failed events: no event here fails, and an exception a
        # process raises comes straight up from its callback (events.start)
        queue = env._queue
        pop = heapq.heappop
        while queue:
            env._now, _, _, event = pop(queue)
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            events += 1
        if not self.finished:
            # Nothing left to happen, yet a stage still waits: a bug in the model, never a time.
            done = self.done_gate.current()
            raise RuntimeError(f"the event model ran out of events at cycle {env._now:.6g} with "
                               f"{done} of {len(self.plan.tasks)} tasks finished")
        wall = time.perf_counter() - wall0
        return EngineOutput(
            end_cycles=self.end,
            engine_start=self.engine_start,
            engine_end=self.engine_end,
            busy=dict(self.busy),
            busy_dispatch=dict(self.busy_dispatch),
            task_stats=self.stats,
            dram_bytes=dict(self.dram.bytes_by_stream),
            dram_busy_cycles=self.dram.busy_cycles,
            dram_contention_cycles=self.dram.contention_cycles,
            trace=self.trace,
            tile_events=self.tile_events,
            loop_events=events,
            batched_steps=self.batched_steps,
            wall_s=wall,
            dispatch_marks=self.marks,
        )


def run_engine(plan: ProgramPlan, chip: ChipConfig, *, record_trace: bool = True, batch: bool = True) -> EngineOutput:
    """Simulate a planned program on a fresh simpy environment."""
    return Engine(plan, chip, record_trace=record_trace, batch=batch).run()
