"""The event loop the timing engine runs on, behind one small interface.

Processes are generators that yield events; an event fires once, at a simulated time, and
resumes every process waiting on it. Two loops implement the same contract:

- :class:`SimpyLoop` wraps ``simpy.Environment`` (the reference kernel);
- :class:`HeapLoop` is a minimal generator-plus-``heapq`` kernel with the same ordering rules,
  several times faster per event, for when simpy becomes the limit.

Both order events by (time, priority, insertion count), so ties resolve identically and every
run of the same program is bit-for-bit repeatable. Time is a float in engine cycles.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator
from typing import Any, Protocol

URGENT = 0  # process start-ups, as simpy's Initialize
NORMAL = 1  # timeouts and triggered events
# The heap loop folds (priority, insertion count) into one int: the count for NORMAL entries,
# the count minus this offset for URGENT ones, so the order is the same with shorter tuples.
_URGENT_OFFSET = 1 << 62


class Waitable(Protocol):
    """Something a process can yield: it resumes the process when it fires."""

    @property
    def triggered(self) -> bool: ...


class Loop(Protocol):
    """The operations the engine needs from an event kernel."""

    name: str

    @property
    def now(self) -> float: ...

    def timeout(self, delay: float) -> Any: ...

    def event(self) -> Any: ...

    def process(self, gen: Generator[Any, Any, Any]) -> Any: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> None: ...

    def run(self) -> None: ...

    @property
    def events_processed(self) -> int: ...


# --------------------------------------------------------------------------- heap loop


class _Event:
    """A one-shot event of :class:`HeapLoop`."""

    __slots__ = ("loop", "callbacks", "triggered", "value")

    def __init__(self, loop: HeapLoop) -> None:
        self.loop = loop
        self.callbacks: list[Callable[[_Event], None]] | None = []
        self.triggered = False
        self.value: Any = None

    def succeed(self, value: Any = None) -> _Event:
        """Fire now: waiting processes resume after the events already due at this time."""
        if self.triggered:
            raise RuntimeError("event already triggered")
        self.triggered = True
        self.value = value
        loop = self.loop
        heapq.heappush(loop._queue, (loop.now, loop._count, self))  # NORMAL; now + 0.0 is now
        loop._count += 1
        return self


class _Process(_Event):
    """A running generator; as an event it fires when the generator returns."""

    __slots__ = ("gen", "resume")

    def __init__(self, loop: HeapLoop, gen: Generator[Any, Any, Any]) -> None:
        super().__init__(loop)
        self.gen = gen
        self.resume = self._resume  # one bound method, appended to every event it waits on
        start = _Event(loop)
        start.triggered = True
        start.callbacks.append(self.resume)  # type: ignore[union-attr]
        loop._push(0.0, URGENT, start)

    def _resume(self, event: _Event) -> None:
        gen = self.gen
        value = event.value
        while True:
            try:
                target = gen.send(value)
            except StopIteration as stop:
                self.triggered = True
                self.value = stop.value
                self.loop._push(0.0, NORMAL, self)
                return
            callbacks = target.callbacks
            if callbacks is None:  # already processed: continue at once, as simpy does
                value = target.value
                continue
            callbacks.append(self.resume)
            return


class HeapLoop:
    """A small deterministic event kernel: a heap of (time, priority and count, event)."""

    name = "heap"

    def __init__(self) -> None:
        self.now = 0.0  # the current simulated time in cycles (a plain attribute: read often)
        self._queue: list[tuple[float, int, Any]] = []
        self._count = 0

    @property
    def events_processed(self) -> int:
        """Events taken off the queue so far."""
        return self._count - len(self._queue)

    def _push(self, delay: float, priority: int, event: _Event) -> None:
        key = self._count if priority == NORMAL else self._count - _URGENT_OFFSET
        heapq.heappush(self._queue, (self.now + delay, key, event))
        self._count += 1

    def timeout(self, delay: float) -> _Event:
        """An event that fires ``delay`` cycles from now."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        ev = _Event(self)
        ev.triggered = True
        heapq.heappush(self._queue, (self.now + delay, self._count, ev))  # NORMAL
        self._count += 1
        return ev

    def event(self) -> _Event:
        """An untriggered event; call ``succeed()`` to fire it."""
        return _Event(self)

    def process(self, gen: Generator[Any, Any, Any]) -> _Process:
        """Start a generator as a process."""
        return _Process(self, gen)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after ``delay`` cycles (no process needed)."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        # A bare callable in the queue: cheaper than an event for internal wake-ups.
        heapq.heappush(self._queue, (self.now + delay, self._count, fn))  # NORMAL
        self._count += 1

    def run(self) -> None:
        """Process events until none are left."""
        queue = self._queue
        pop = heapq.heappop
        event_type = _Event
        process_type = _Process
        while queue:
            self.now, _, event = pop(queue)
            cls = event.__class__
            if cls is not event_type and cls is not process_type:
                event()  # a call_later callback
                continue
            callbacks = event.callbacks
            event.callbacks = None
            for cb in callbacks:  # type: ignore[union-attr]
                cb(event)


# --------------------------------------------------------------------------- simpy loop


class SimpyLoop:
    """The same interface over ``simpy.Environment``."""

    name = "simpy"

    def __init__(self) -> None:
        import simpy

        self.env = simpy.Environment()
        self._steps = 0

    @property
    def now(self) -> float:
        """The current simulated time in cycles."""
        return float(self.env.now)

    @property
    def events_processed(self) -> int:
        """Events stepped so far."""
        return self._steps

    def timeout(self, delay: float) -> Any:
        """An event that fires ``delay`` cycles from now."""
        return self.env.timeout(delay)

    def event(self) -> Any:
        """An untriggered event; call ``succeed()`` to fire it."""
        return self.env.event()

    def process(self, gen: Generator[Any, Any, Any]) -> Any:
        """Start a generator as a process."""
        return self.env.process(gen)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after ``delay`` cycles (no process needed)."""
        self.env.timeout(delay).callbacks.append(lambda _e: fn())

    def run(self) -> None:
        """Process events until none are left."""
        env = self.env
        step = env.step
        n = 0
        try:
            while True:
                step()
                n += 1
        except Exception as exc:  # simpy signals an empty queue with EmptySchedule
            import simpy.core

            if not isinstance(exc, simpy.core.EmptySchedule):
                raise
        self._steps += n


LOOPS: dict[str, Callable[[], Loop]] = {"heap": HeapLoop, "simpy": SimpyLoop}


def make_loop(name: str) -> Loop:
    """A fresh loop by name: ``heap`` or ``simpy``."""
    try:
        return LOOPS[name]()
    except KeyError:
        raise ValueError(f"unknown event loop {name!r} (expected one of {', '.join(LOOPS)})") from None
