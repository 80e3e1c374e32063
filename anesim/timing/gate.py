"""How the engine's processes hand work to each other: signals and gates on a simpy environment.

The pipeline stages and the firmware wait on :class:`Gate` counters (step ``k`` may compute
once the source gate has reached ``k + 1``, and so on) and on DRAM transfers; both wake their
waiters with a :class:`Signal`, which resumes them at once instead of through the event queue.
"""

from __future__ import annotations

from collections import deque

from simpy import Environment, Event, Timeout


class Signal(Event):
    """An event that resumes its waiters the moment it fires, at the current simulated time.

    ``succeed()`` would put the event on simpy's queue and resume the waiters when the queue
    reaches it, at the same time but after the other events already due then. A hand-over
    between pipeline stages needs no such round trip: firing saves one queued event per
    hand-over, and no simulated time depends on the order of events within one instant.
    """

    def fire(self, _cause: Event | None = None) -> None:
        """Mark the event processed and resume its waiters now (usable as a simpy callback)."""
        self._ok = True
        self._value = None
        callbacks, self.callbacks = self.callbacks, None  # as Environment.step does
        for callback in callbacks:  # type: ignore[union-attr]
            callback(self)


class Gate:
    """A counter that only grows; processes wait for it to reach a value.

    A closed-form batch may also schedule increments at known future times; waiters that those
    increments satisfy fire at exactly those times, as they would have step by step.
    """

    __slots__ = ("env", "count", "waiters", "future")

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.count = 0
        self.waiters: list[tuple[int, Signal]] = []
        self.future: deque[float] = deque()

    def current(self) -> int:
        """The count as of now (scheduled increments that are due included)."""
        fut = self.future
        if fut:
            now = self.env.now
            while fut and fut[0] <= now:
                fut.popleft()
                self.count += 1
        return self.count

    def wait(self, n: int) -> Signal | None:
        """An event that fires once count >= n, or None if it already is."""
        if self.count >= n or (self.future and self.current() >= n):
            return None
        ev = Signal(self.env)
        idx = n - self.count - 1
        if idx < len(self.future):
            self._fire_at(ev, self.future[idx])
        else:
            self.waiters.append((n, ev))
        return ev

    def _fire_at(self, ev: Signal, t: float) -> None:
        delay = t - self.env.now
        if delay <= 0:
            ev.fire()
        else:
            Timeout(self.env, delay).callbacks.append(ev.fire)  # type: ignore[union-attr]

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
                return
            ready = [w for w in waiters if w[0] <= count]
            if ready:
                self.waiters = [w for w in waiters if w[0] > count]
                for _, ev in ready:
                    ev.fire()

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
