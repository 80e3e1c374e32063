"""DRAM as one shared resource: concurrent transfers share a peak, each stream under its ceiling.

A fluid model. Every active transfer (a *flow*) moves bytes at a rate set by max-min fair
sharing: the peak is divided among the active streams, no stream above its own ceiling, and a
stream's share is split evenly between its flows. Rates are recomputed whenever a flow starts
or ends, so contention lengthens transfers exactly while it lasts. Events happen only at flow
starts and ends, never per byte or per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from anesim.timing.loop import Loop

_EPS_CYCLES = 1e-9


@dataclass(slots=True)
class _Flow:
    stream: str
    nbytes: float
    remaining_bytes: float
    done: Any  # loop event fired at completion
    start: float = 0.0
    rate: float = 0.0  # bytes per cycle


@dataclass
class SharedBandwidth:
    """A bandwidth pool with per-stream ceilings (bytes per cycle) under a shared peak."""

    loop: Loop
    peak_bytes_per_cycle: float
    ceilings_bytes_per_cycle: dict[str, float]
    bytes_by_stream: dict[str, float] = field(default_factory=dict)
    busy_cycles: float = 0.0  # time with at least one flow active
    contention_cycles: float = 0.0  # time flows took beyond their uncontended duration
    _flows: list[_Flow] = field(default_factory=list)
    _last_update: float = 0.0
    _token: int = 0
    _wake_at: float = -1.0

    def transfer(self, nbytes: float, stream: str, delay: float = 0.0) -> Any:
        """Move ``nbytes`` on ``stream``, starting after ``delay`` cycles; the event fires when done."""
        done = self.loop.event()
        self.bytes_by_stream[stream] = self.bytes_by_stream.get(stream, 0.0) + nbytes
        flow = _Flow(stream, float(nbytes), float(nbytes), done)
        if delay > 0:
            self.loop.call_later(delay, partial(self._start, flow))
        else:
            self._start(flow)
        return done

    def uncontended_cycles(self, nbytes: float, stream: str) -> float:
        """How long ``nbytes`` would take alone on ``stream``."""
        return nbytes / min(self.ceilings_bytes_per_cycle[stream], self.peak_bytes_per_cycle)

    # -- internals -------------------------------------------------------------------------

    def _start(self, flow: _Flow) -> None:
        if flow.nbytes <= 0:
            flow.done.succeed()
            return
        self._advance()
        flow.start = self.loop.now
        self._flows.append(flow)
        self._rerate()

    def _advance(self) -> None:
        """Charge every flow the bytes it moved since the last update."""
        now = self.loop.now
        dt = now - self._last_update
        if dt > 0 and self._flows:
            self.busy_cycles += dt
            for f in self._flows:
                f.remaining_bytes -= f.rate * dt
        self._last_update = now

    def _rerate(self) -> None:
        """Recompute fair shares and make sure a wake-up is due at the earliest completion."""
        flows = self._flows
        n = len(flows)
        if not n:
            self._wake_at = -1.0
            self._token += 1
            return
        ceilings = self.ceilings_bytes_per_cycle
        peak = self.peak_bytes_per_cycle
        streams: dict[str, int] = {}
        for f in flows:
            streams[f.stream] = streams.get(f.stream, 0) + 1
        if len(streams) == 1:
            # One stream: its ceiling (under the peak) split evenly between its flows.
            share = min(ceilings[flows[0].stream], peak) / n
            for f in flows:
                f.rate = share
        else:
            # Max-min fair split of the peak across streams, each capped by its ceiling.
            left = peak
            order = sorted(streams, key=lambda s: (ceilings[s], s))
            rates = {}
            for i, s in enumerate(order):
                share = min(ceilings[s], left / (len(order) - i))
                left -= share
                rates[s] = share / streams[s]
            for f in flows:
                f.rate = rates[f.stream]
        soonest = float("inf")
        for f in flows:
            t = f.remaining_bytes / f.rate
            if t < soonest:
                soonest = t
        if soonest < 0.0:
            soonest = 0.0
        wake_at = self.loop.now + soonest
        if wake_at == self._wake_at:
            return  # the wake-up already due is still the right one
        self._token += 1
        self._wake_at = wake_at
        self.loop.call_later(soonest, partial(self._wake, self._token))

    def _wake(self, token: int) -> None:
        if token != self._token:
            return  # superseded by a later start or finish
        self._wake_at = -1.0
        self._advance()
        keep: list[_Flow] = []
        finished: list[_Flow] = []
        for f in self._flows:
            (finished if f.remaining_bytes <= f.rate * _EPS_CYCLES + 1e-6 else keep).append(f)
        self._flows = keep
        self._rerate()
        now = self.loop.now
        for f in finished:
            extra = (now - f.start) - self.uncontended_cycles(f.nbytes, f.stream)
            if extra > _EPS_CYCLES:
                self.contention_cycles += extra
            f.done.succeed()
