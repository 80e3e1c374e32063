"""Counters the engine's processes wait on: step ``k`` may compute once the source gate is past ``k``.

A waiter gets a :class:`~anesim.timing.events.Signal`, fired the moment the count reaches its
target; the signals are reused once fired.
"""

from __future__ import annotations

from collections import deque

from simpy import Environment

from anesim.timing.events import Alarms, Signal


class Gate:
    """A counter that only grows; processes wait for it to reach a value.

    A closed-form batch may also schedule increments at known future times; waiters that those
    increments satisfy fire at exactly those times, as they would have step by step.
    """

    __slots__ = ("env", "alarms", "count", "waiters", "future", "free")

    def __init__(self, env: Environment, alarms: Alarms) -> None:
        self.env = env
        self.alarms = alarms
        self.free: list[Signal] = []  # fired signals, to be re-armed for later waiters
        self.count = 0
        self.waiters: list[tuple[int, Signal]] = []
        self.future: deque[float] = deque()

    def current(self) -> int:
        """The count as of now (scheduled increments that are due included)."""
        fut = self.future
        if fut:
            now = self.env._now
            while fut and fut[0] <= now:
                fut.popleft()
                self.count += 1
        return self.count

    def wait(self, n: int) -> Signal | None:
        """An event that fires once count >= n, or None if it already is."""
        if self.count >= n or (self.future and self.current() >= n):
            return None
        ev = self.free.pop().rearm() if self.free else Signal(self.env)
        idx = n - self.count - 1
        if idx < len(self.future):
            self._fire_at(ev, self.future[idx])
        else:
            self.waiters.append((n, ev))
        return ev

    def _fire_at(self, ev: Signal, t: float) -> None:
        if t <= self.env._now:
            ev.fire()
        else:  # (at t exactly, as the increment is due: now + (t - now) could round)
            self.alarms.call_at(t, Signal.fire, ev)

    def advance(self, by: int = 1) -> None:
        """Add ``by`` now and release every waiter now satisfied."""
        if self.future:
            self.current()
            if self.future:
                raise RuntimeError("gate advanced past a scheduled batch")
        count = self.count = self.count + by
        waiters = self.waiters
        if waiters:
            if len(waiters) == 1:
                n, ev = waiters[0]
                if n <= count:
                    self.waiters = []
                    ev.fire()
                    self.free.append(ev)  # its waiter has resumed and let go of it
                return
            ready = [w for w in waiters if w[0] <= count]
            if ready:
                self.waiters = [w for w in waiters if w[0] > count]
                for _, ev in ready:
                    ev.fire()
                    self.free.append(ev)

    def schedule(self, times: list[float]) -> None:
        """Add one increment at each of ``times`` (ascending; past times apply at once)."""
        self.current()
        self.future.extend(times)
        if self.waiters:
            keep = []
            for n, ev in self.waiters:
                idx = n - self.count - 1
                if idx < len(self.future):
                    self._fire_at(ev, self.future[idx])
                else:
                    keep.append((n, ev))
            self.waiters = keep
