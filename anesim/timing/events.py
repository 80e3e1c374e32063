"""Cheap events for the engine's hot paths, on a ``simpy.Environment``.

simpy allocates an event object for every wait and every timeout; in the tile pipeline that
allocation costs about as much as the scheduling itself. These keep simpy's semantics (an
event is scheduled with ``env.schedule``, processed once by ``env.step``, and resumes the
processes and callbacks in its ``callbacks``) but are re-armed once processed:

- :class:`Signal` resumes its waiters the moment it fires, within the current instant, instead
  of through the queue;
- :class:`Timer` is the timeout one process waits on, re-armed for each wait;
- :class:`Alarms` calls functions later through a pool of events reused once they have rung;
- :func:`start` runs a generator as a process, resumed by the events it yields (simpy's
  ``env.process`` without what the engine never uses: process events, interrupts, failed
  events; an exception a process raises goes straight up through the event loop).

The timing modules read the clock as ``env._now``, the attribute behind simpy's ``now``
property: the property call was a tenth of the event loop's own time on large models.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from heapq import heappush
from typing import Any

from simpy import Environment, Event
from simpy.events import NORMAL, URGENT


class Signal(Event):
    """An event that resumes its waiters the moment it fires, at the current simulated time.

    ``succeed()`` would put the event on simpy's queue and resume the waiters when the queue
    reaches it, at the same time but after the other events already due then. A hand-over
    between pipeline stages needs no such round trip; firing saves one queued event per
    hand-over.
    """

    def fire(self, _cause: Event | None = None) -> None:
        """Mark the event processed and resume its waiters now (usable as a simpy callback)."""
        self._ok = True
        self._value = None
        callbacks, self.callbacks = self.callbacks, None  # as Environment.step does
        for callback in callbacks:  # type: ignore[union-attr]
            callback(self)

    def rearm(self) -> Signal:
        """Make a fired signal pending again, for its next waiter."""
        self.callbacks = []
        return self


class Timer(Event):
    """A timeout for one process, re-armed for each wait: ``yield timer.after(cycles)``."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        self.callbacks = None  # idle: processed

    def after(self, delay: float) -> Timer:
        """Fire ``delay`` cycles from now; the previous wait must have ended."""
        self.callbacks = []
        env = self.env
        heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), self))  # (env.schedule, inlined)
        return self

    def at(self, time: float) -> Timer:
        """Fire at ``time`` (not before now) exactly, where ``after(time - now)`` could round."""
        self.callbacks = []
        env = self.env
        heappush(env._queue, (time, NORMAL, next(env._eid), self))  # (what env.schedule does)
        return self


class _Alarm(Event):
    """One pooled event of :class:`Alarms`: calls ``fn(arg)`` when processed."""

    def __init__(self, alarms: Alarms) -> None:
        super().__init__(alarms.env)
        self._ok = True
        self._value = None
        self.alarms = alarms
        self.fn: Callable[[Any], None] | None = None
        self.arg: Any = None


def _ring(alarm: _Alarm) -> None:
    fn, arg = alarm.fn, alarm.arg
    alarm.alarms.free.append(alarm)  # processed now: free to be re-armed, even by fn itself
    fn(arg)  # type: ignore[misc]


class Alarms:
    """Calls functions at given times through a pool of simpy events, each reused once rung."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.free: list[_Alarm] = []

    def call_at(self, time: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at ``time`` exactly (in order with every other event then; a delay
        from now, ``now + (time - now)``, could round)."""
        free = self.free
        alarm = free.pop() if free else _Alarm(self)
        alarm.fn = fn
        alarm.arg = arg
        alarm.callbacks = [_ring]
        env = self.env
        heappush(env._queue, (time, NORMAL, next(env._eid), alarm))


class _Process:
    """A generator run as a process: each event it yields resumes it once processed."""

    __slots__ = ("generator", "resume")

    def __init__(self, generator: Generator[Event, None, None]) -> None:
        self.generator = generator
        self.resume = self._resume  # (one bound method, appended to every event it waits on)

    def _resume(self, _event: Event) -> None:
        send = self.generator.send
        while True:
            try:
                event = send(None)  # (every event the engine yields succeeds with no value)
            except StopIteration:
                return
            callbacks = event.callbacks
            if callbacks is not None:
                callbacks.append(self.resume)
                return
            # an event already processed (a transfer of no bytes fires at once): go on now


class _Start(Event):
    """Starts a process at the current time, ahead of the events already due then (as simpy's
    ``Initialize``, so the processes start in the order simpy would start them)."""

    def __init__(self, env: Environment, process: _Process) -> None:
        self.env = env
        self._ok = True
        self._value = None
        self.callbacks = [process.resume]
        env.schedule(self, URGENT)


def start(env: Environment, generator: Generator[Event, None, None]) -> None:
    """Run ``generator`` as a process on ``env`` from now on."""
    _Start(env, _Process(generator))
