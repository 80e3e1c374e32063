"""DRAM as one shared resource: concurrent transfers share a peak, each stream under its ceiling.

A fluid model. Every active transfer (a *flow*) moves bytes at a rate set by max-min fair
sharing: the peak is divided among the active streams, no stream above its own ceiling, and a
stream's share is split evenly between its flows. Rates are recomputed whenever a flow starts
or ends, so contention lengthens transfers exactly while it lasts. Events happen only at flow
starts and ends, never per byte or per cycle.

The fair shares depend only on how many flows each stream has in flight, so they are computed
once per distinct mix of counts and reused; the arithmetic on every flow's remaining bytes is
the same at every start and end as a full recomputation would do, so the times are identical.
"""

from __future__ import annotations

import heapq
import math

from simpy import Environment, Event
from simpy.events import NORMAL

from anesim.timing.events import Signal

_EPS_CYCLES = 1e-9
_INF = float("inf")


class _Flow(Signal):
    """One transfer; as an event it fires (resuming whoever waits on it) when the last byte lands.

    Flows are reused once fired (see :meth:`SharedBandwidth.transfer`).
    """

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self.stream = ""
        self.nbytes = 0.0
        self.remaining_bytes = 0.0
        self.start = 0.0
        self.rate = 0.0  # bytes per cycle
        self.bit = 0  # this stream's unit in the packed per-stream flow counts


class _Tick(Event):
    """A pooled DRAM event: a delayed start (``flow``) or a completion wake-up (``token``)."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        self.flow: _Flow | None = None
        self.token = 0


_COUNT_BITS = 32  # flows per stream are packed into one int, this many bits each


class SharedBandwidth:
    """A bandwidth pool with per-stream ceilings (bytes per cycle) under a shared peak."""

    def __init__(
        self, env: Environment, peak_bytes_per_cycle: float, ceilings_bytes_per_cycle: dict[str, float],
    ) -> None:
        self.env = env
        self.peak_bytes_per_cycle = peak_bytes_per_cycle
        self.ceilings_bytes_per_cycle = ceilings_bytes_per_cycle
        self.bytes_by_stream: dict[str, float] = {}
        self.busy_cycles = 0.0  # time with at least one flow active
        self.contention_cycles = 0.0  # time flows took beyond their uncontended duration
        self._flows: list[_Flow] = []
        self._free: list[_Flow] = []  # finished flows, reused for later transfers
        self._ticks: list[_Tick] = []  # processed ticks, to be re-armed
        self._tick_callbacks = [self._tick]  # every tick's callback list (nothing appends to it)
        self._pending: list[float] = []  # start times of delayed transfers not yet begun (a heap)
        self._last_update = 0.0
        self._token = 0
        self._wake_at = -1.0
        # Flows in flight per stream, packed into one int (stream i in bits [32i, 32i+32)): the
        # key of the fair-share cache, updated by adding or subtracting the stream's unit.
        self._streams = list(ceilings_bytes_per_cycle)
        self._bits = {s: 1 << (_COUNT_BITS * i) for i, s in enumerate(self._streams)}
        self._mix = 0
        self._rates_cache: dict[int, dict[str, float]] = {}
        self._alone = {s: min(c, peak_bytes_per_cycle) for s, c in ceilings_bytes_per_cycle.items()}

    def transfer(self, nbytes: float, stream: str, delay: float = 0.0, cost: float = 1.0) -> Signal:
        """Move ``nbytes`` on ``stream``, starting after ``delay`` cycles; the event fires when done.

        ``cost`` scales the bytes the stream's rate is charged for (a write on an asymmetric
        activation stream); the byte count recorded is ``nbytes``.
        """
        by = self.bytes_by_stream
        by[stream] = by.get(stream, 0.0) + nbytes
        free = self._free
        if free:
            flow = free.pop()
            flow.callbacks = []
        else:
            flow = _Flow(self.env)
        flow.stream = stream
        flow.nbytes = flow.remaining_bytes = float(nbytes) * cost
        flow.bit = self._bits[stream]
        if delay > 0:
            at = self.env._now + delay  # (the time env.schedule would give it)
            heapq.heappush(self._pending, at)
            self._arm(at, flow, 0)
        else:
            self._start(flow)
        return flow

    def pending_starts(self) -> tuple[float, ...]:
        """When the transfers asked for whose start (after the DRAM latency) is still to come start
        (a copy, earliest first; the model's own list is a heap it keeps in order)."""
        return tuple(sorted(self._pending))

    def flows_in_flight(self) -> list[str]:
        """The stream of every transfer moving now."""
        return [f.stream for f in self._flows]

    def wake_at(self) -> float:
        """When the first transfer in flight lands as planned now (-1 with none in flight)."""
        return self._wake_at

    def alone_end(self, nbytes: float, stream: str, cost: float, start: float) -> float:
        """When a transfer starting at ``start`` ends with no other flow in flight (as a wake-up would fall)."""
        rate = self.per_flow_rates(self._bits[stream])[stream]
        soonest = float(nbytes) * cost / rate
        return start + (soonest if soonest > 0.0 else 0.0)

    def stream_bit(self, stream: str) -> int:
        """``stream``'s unit in a packed mix of flow counts (add units to make a mix)."""
        return self._bits[stream]

    def per_flow_rates(self, mix: int) -> dict[str, float]:
        """Each stream's per-flow rate (bytes per cycle) with the flows of ``mix`` in flight."""
        return self._rates_cache.get(mix) or self._rates(mix)

    def book_alone(self, nbytes: float, stream: str, cost: float, start: float, end: float) -> None:
        """Account a transfer that ran alone from ``start`` to ``end``, as :meth:`transfer` would have."""
        by = self.bytes_by_stream
        by[stream] = by.get(stream, 0.0) + nbytes
        if nbytes <= 0:
            return
        self.busy_cycles += end - start
        extra = (end - start) - float(nbytes) * cost / self._alone[stream]
        if extra > _EPS_CYCLES:
            self.contention_cycles += extra

    def uncontended_cycles(self, nbytes: float, stream: str) -> float:
        """How long ``nbytes`` would take alone on ``stream``."""
        return nbytes / min(self.ceilings_bytes_per_cycle[stream], self.peak_bytes_per_cycle)

    # -- internals -------------------------------------------------------------------------

    def _rates(self, mix: int) -> dict[str, float]:
        """Per-flow rate of each stream for a mix of flow counts (max-min fair)."""
        ceilings = self.ceilings_bytes_per_cycle
        peak = self.peak_bytes_per_cycle
        mask = (1 << _COUNT_BITS) - 1
        streams = {}
        for i, s in enumerate(self._streams):
            n = (mix >> (_COUNT_BITS * i)) & mask
            if n:
                streams[s] = n
        if len(streams) == 1:
            # One stream: its ceiling (under the peak) split evenly between its flows.
            ((s, n),) = streams.items()
            rates = {s: min(ceilings[s], peak) / n}
        else:
            # Max-min fair split of the peak across streams, each capped by its ceiling.
            left = peak
            order = sorted(streams, key=lambda s: (ceilings[s], s))
            rates = {}
            for i, s in enumerate(order):
                share = min(ceilings[s], left / (len(order) - i))
                left -= share
                rates[s] = share / streams[s]
        self._rates_cache[mix] = rates
        return rates

    def _replan(self, now: float) -> None:
        """Re-rate the flows in flight (charged up to ``now``) and arm a wake-up at the earliest completion.

        No wake-up is armed when a delayed start is due no later than it: that start re-plans
        (charging every flow up to its time, as the wake-up would have; a start of nothing
        re-plans from the last update), so the wake-up would only go stale. A plan replaced by
        another leaves its wake-up stale (simpy cannot cancel).
        """
        flows = self._flows
        if not flows:
            self._token += 1
            self._wake_at = -1.0
            return
        mix = self._mix
        rates = self._rates_cache.get(mix) or self._rates(mix)
        soonest = _INF
        for f in flows:
            rate = f.rate = rates[f.stream]
            t = f.remaining_bytes / rate
            if t < soonest:
                soonest = t
        if soonest < 0.0:
            soonest = 0.0
        wake_at = now + soonest
        pending = self._pending
        if pending and pending[0] <= wake_at:
            self._token += 1
            self._wake_at = -1.0
            return
        if wake_at == self._wake_at:
            return  # the wake-up already due is still the right one
        token = self._token = self._token + 1
        self._wake_at = wake_at
        self._arm(wake_at, None, token)

    def _arm(self, time: float, flow: _Flow | None, token: int) -> None:
        """Schedule a tick at ``time``: a flow's start, or a wake-up."""
        ticks = self._ticks
        tick = ticks.pop() if ticks else _Tick(self.env)
        tick.flow = flow
        tick.token = token
        tick.callbacks = self._tick_callbacks
        env = self.env
        heapq.heappush(env._queue, (time, NORMAL, next(env._eid), tick))  # (as env.schedule does)

    def _tick(self, tick: _Tick) -> None:
        """A tick is due: start its flow, or wake up unless a later plan made it stale."""
        flow = tick.flow
        self._ticks.append(tick)  # processed: free to be re-armed
        if flow is not None:
            heapq.heappop(self._pending)  # starts run in time order: the earliest is this one
            self._start(flow)
        elif tick.token == self._token:
            self._wake()

    def _start(self, flow: _Flow) -> None:
        """A flow starts now: charge the flows in flight up to now, join them and re-plan."""
        if flow.nbytes <= 0:
            flow.fire()
            if self._flows and self._wake_at < 0.0:
                # A delayed start of nothing was due before the first landing, so no wake-up was
                # armed for it: arm the one the plan at the last update found.
                self._replan(self._last_update)
            return
        now = self.env._now
        flows = self._flows
        dt = now - self._last_update
        if dt > 0 and flows:
            self.busy_cycles += dt
            for f in flows:
                f.remaining_bytes -= f.rate * dt
        self._last_update = now
        flow.start = now
        flows.append(flow)
        self._mix += flow.bit
        self._replan(now)

    def _wake(self) -> None:
        """Retire the flows that have finished, resume their waiters, then re-plan."""
        now = self.env._now
        flows = self._flows
        dt = now - self._last_update
        if dt > 0 and flows:
            self.busy_cycles += dt
            for f in flows:
                f.remaining_bytes -= f.rate * dt
        self._last_update = now
        # A flow is done when what it has left takes less than the clock can still resolve at
        # this time: otherwise a rounding residue re-arms a wake-up that never advances `now`.
        tol = 4.0 * math.ulp(now)
        if tol < _EPS_CYCLES:
            tol = _EPS_CYCLES
        if len(flows) == 1:  # the common case: the only flow in flight ends
            f = flows[0]
            if f.remaining_bytes <= f.rate * tol + 1e-6:
                finished = flows
                keep = []
            else:
                finished = []
                keep = flows
        else:
            keep = []
            finished = []
            for f in flows:
                if f.remaining_bytes <= f.rate * tol + 1e-6:
                    finished.append(f)
                else:
                    keep.append(f)
        self._flows = keep
        alone = self._alone
        for f in finished:
            self._mix -= f.bit
            extra = (now - f.start) - f.nbytes / alone[f.stream]
            if extra > _EPS_CYCLES:
                self.contention_cycles += extra
        # Waiters resume first: the transfers they ask for now or after the latency are then
        # known to the plan, which arms no wake-up that one of them would make stale.
        self._token += 1
        self._wake_at = -1.0
        free = self._free
        for f in finished:
            f.fire()
            free.append(f)  # its waiters have resumed and let go of it
        self._replan(now)
