"""A counter that only grows, on a simpy environment: processes wait for it to reach a value.

The engine's pipeline stages and the firmware hand work to each other through these: step
``k`` may compute once the source gate has reached ``k + 1``, and so on.
"""

from __future__ import annotations

from collections import deque

from simpy import Environment, Event, Timeout


class Gate:
    """A counter that only grows; processes wait for it to reach a value.

    A closed-form batch may also schedule increments at known future times; waiters that those
    increments satisfy fire at exactly those times, as they would have step by step.
    """

    __slots__ = ("env", "count", "waiters", "future")

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.count = 0
        self.waiters: list[tuple[int, Event]] = []
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

    def wait(self, n: int) -> Event | None:
        """An event that fires once count >= n, or None if it already is."""
        if self.count >= n or (self.future and self.current() >= n):
            return None
        ev = Event(self.env)
        idx = n - self.count - 1
        if idx < len(self.future):
            self._fire_at(ev, self.future[idx])
        else:
            self.waiters.append((n, ev))
        return ev

    def _fire_at(self, ev: Event, t: float) -> None:
        delay = t - self.env.now
        if delay <= 0:
            ev.succeed()
        else:
            Timeout(self.env, delay).callbacks.append(ev.trigger)  # type: ignore[union-attr]

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
                    ev.succeed()
                return
            ready = [w for w in waiters if w[0] <= count]
            if ready:
                self.waiters = [w for w in waiters if w[0] > count]
                for _, ev in ready:
                    ev.succeed()

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
