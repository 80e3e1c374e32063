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

import math

from simpy import Environment, Event, Timeout

from anesim.timing.gate import Signal

_EPS_CYCLES = 1e-9
_INF = float("inf")


class _Flow(Signal):
    """One transfer; as an event it fires (resuming whoever waits on it) when the last byte lands."""

    def __init__(self, bw: SharedBandwidth, stream: str, nbytes: float, bit: int) -> None:
        self.env = bw.env
        self.callbacks = []
        self.bw = bw
        self.stream = stream
        self.nbytes = nbytes
        self.remaining_bytes = nbytes
        self.start = 0.0
        self.rate = 0.0  # bytes per cycle
        self.bit = bit  # this stream's unit in the packed per-stream flow counts

    def begin(self, _cause: Event | None = None) -> None:
        """Start: charge the flows in flight up to now, join them and re-rate."""
        bw = self.bw
        if self.nbytes <= 0:
            self.fire()
            return
        now = bw.env.now
        flows = bw._flows
        dt = now - bw._last_update
        if dt > 0 and flows:
            bw.busy_cycles += dt
            for f in flows:
                f.remaining_bytes -= f.rate * dt
        bw._last_update = now
        self.start = now
        flows.append(self)
        mix = bw._mix = bw._mix + self.bit
        # Re-rate: fair shares for the new mix, and a wake-up at the earliest completion.
        rates = bw._rates_cache.get(mix) or bw._rates(mix)
        soonest = _INF
        for f in flows:
            rate = f.rate = rates[f.stream]
            t = f.remaining_bytes / rate
            if t < soonest:
                soonest = t
        if soonest < 0.0:
            soonest = 0.0
        wake_at = now + soonest
        if wake_at == bw._wake_at:
            return  # the wake-up already due is still the right one
        token = bw._token = bw._token + 1
        bw._wake_at = wake_at
        Timeout(bw.env, soonest, token).callbacks.append(bw._on_wake)  # type: ignore[union-attr]


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
        self._on_wake = self._wake_if_current  # one bound method for every wake-up

    def transfer(self, nbytes: float, stream: str, delay: float = 0.0, cost: float = 1.0) -> Signal:
        """Move ``nbytes`` on ``stream``, starting after ``delay`` cycles; the event fires when done.

        ``cost`` scales the bytes the stream's rate is charged for (a write on an asymmetric
        activation stream); the byte count recorded is ``nbytes``.
        """
        by = self.bytes_by_stream
        by[stream] = by.get(stream, 0.0) + nbytes
        flow = _Flow(self, stream, float(nbytes) * cost, self._bits[stream])
        if delay > 0:
            Timeout(self.env, delay).callbacks.append(flow.begin)  # type: ignore[union-attr]
        else:
            flow.begin()
        return flow

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

    def _wake_if_current(self, event: Event) -> None:
        """A scheduled wake-up; stale (ignored) once a later start or finish has re-planned."""
        if event.value == self._token:
            self._wake()

    def _wake(self) -> None:
        self._wake_at = -1.0
        now = self.env.now
        flows = self._flows
        dt = now - self._last_update
        if dt > 0 and flows:
            self.busy_cycles += dt
            for f in flows:
                f.remaining_bytes -= f.rate * dt
        self._last_update = now
        # A flow is done when what it has left takes less than the clock can still resolve at
        # this time: otherwise a rounding residue re-arms a wake-up that never advances `now`.
        tol = max(_EPS_CYCLES, 4.0 * math.ulp(now))
        if len(flows) == 1:  # the common case: the only flow in flight ends
            f = flows[0]
            if f.remaining_bytes <= f.rate * tol + 1e-6:
                finished = flows
                keep = []
                self._mix -= f.bit
            else:
                finished = []
                keep = flows
        else:
            keep = []
            finished = []
            for f in flows:
                if f.remaining_bytes <= f.rate * tol + 1e-6:
                    finished.append(f)
                    self._mix -= f.bit
                else:
                    keep.append(f)
        self._flows = keep
        if keep:  # re-rate as a start does; _wake_at is -1 here, so a wake-up is always due
            mix = self._mix
            rates = self._rates_cache.get(mix) or self._rates(mix)
            soonest = _INF
            for f in keep:
                rate = f.rate = rates[f.stream]
                t = f.remaining_bytes / rate
                if t < soonest:
                    soonest = t
            if soonest < 0.0:
                soonest = 0.0
            token = self._token = self._token + 1
            self._wake_at = now + soonest
            Timeout(self.env, soonest, token).callbacks.append(self._on_wake)  # type: ignore[union-attr]
        else:
            self._token += 1
        alone = self._alone
        for f in finished:
            extra = (now - f.start) - f.nbytes / alone[f.stream]
            if extra > _EPS_CYCLES:
                self.contention_cycles += extra
            f.fire()
