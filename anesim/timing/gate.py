"""Counters the engine's processes wait on: step ``k`` may compute once the source gate is past ``k``.

A waiter gets a :class:`~anesim.timing.events.Signal`, fired the moment the count reaches its
target; the signals are reused once fired.
"""

from __future__ import annotations

from bisect import bisect_right

from simpy import Environment

from anesim.timing.events import Alarms, Signal


class Gate:
    """A counter that only grows; processes wait for it to reach a value.

    A closed-form batch may also schedule increments at known future times; waiters that those
    increments satisfy fire at exactly those times, as they would have step by step.
    """

    __slots__ = ("env", "alarms", "count", "waiters", "future", "head", "free")

    def __init__(self, env: Environment, alarms: Alarms) -> None:
        self.env = env
        self.alarms = alarms
        self.free: list[Signal] = []  # fired signals, to be re-armed for later waiters
        self.count = 0
        self.waiters: list[tuple[int, Signal]] = []
        # Scheduled increments, ascending; those before ``head`` are counted already (a batch
        # schedules hundreds at once, and a binary search counts the due ones at any time).
        self.future: list[float] = []
        self.head = 0

    def current(self) -> int:
        """The count as of now (scheduled increments that are due included)."""
        fut = self.future
        head = self.head
        if head < len(fut) and fut[head] <= self.env._now:
            due = bisect_right(fut, self.env._now, head)
            self.count += due - head
            if due == len(fut):
                fut.clear()
                due = 0
            elif due > 4096 and 2 * due > len(fut):  # (drop what is counted, now and then)
                del fut[:due]
                due = 0
            self.head = due
        return self.count

    def scheduled(self) -> int:
        """Increments scheduled and not yet due (as of the last count)."""
        return len(self.future) - self.head

    def wait(self, n: int) -> Signal | None:
        """An event that fires once count >= n, or None if it already is."""
        if self.count >= n or (len(self.future) > self.head and self.current() >= n):
            return None
        ev = self.free.pop().rearm() if self.free else Signal(self.env)
        idx = self.head + n - self.count - 1
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
        if len(self.future) > self.head:
            self.current()
            if len(self.future) > self.head:
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
        fut = self.future
        fut.extend(times)
        if self.waiters:
            head = self.head
            keep = []
            for n, ev in self.waiters:
                idx = head + n - self.count - 1
                if idx < len(fut):
                    self._fire_at(ev, fut[idx])
                else:
                    keep.append((n, ev))
            self.waiters = keep
