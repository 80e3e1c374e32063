"""The engine's cheap simpy events behave as simpy's own: processes wait on them and resume in order."""

from __future__ import annotations

import simpy

from anesim.timing.events import Alarms, Signal, Timer


def test_signal_resumes_its_waiter_at_once_at_the_same_time():
    env = simpy.Environment(initial_time=0.0)
    log = []
    sig = Signal(env)

    def waiter():
        yield sig
        log.append(("resumed", env.now))

    def firer():
        yield env.timeout(5.0)
        env.timeout(0.0).callbacks.append(lambda _e: log.append(("queued", env.now)))
        sig.fire()
        log.append(("fired", env.now))

    env.process(waiter())
    env.process(firer())
    env.run()
    # The waiter ran inside fire(), before the event already queued for the same instant.
    assert log == [("resumed", 5.0), ("fired", 5.0), ("queued", 5.0)]


def test_a_fired_signal_is_rearmed_for_the_next_waiter():
    env = simpy.Environment(initial_time=0.0)
    sig = Signal(env)
    seen = []

    def waiter(tag):
        yield sig
        seen.append(tag)

    env.process(waiter("a"))
    env.run()
    sig.fire()
    assert seen == ["a"] and sig.processed
    sig.rearm()
    env.process(waiter("b"))
    env.run()
    assert not sig.processed
    sig.fire()
    assert seen == ["a", "b"]


def test_timer_is_reused_for_every_wait():
    env = simpy.Environment(initial_time=0.0)
    timer = Timer(env)
    times = []

    def proc():
        for delay in (1.5, 0.0, 2.0):
            ev = timer.after(delay)
            assert ev is timer
            yield ev
            times.append(env.now)

    env.process(proc())
    env.run()
    assert times == [1.5, 1.5, 3.5]


def test_alarms_ring_in_time_order_and_reuse_their_events():
    env = simpy.Environment(initial_time=0.0)
    alarms = Alarms(env)
    rung = []
    for delay, tag in ((3.0, "c"), (1.0, "a"), (1.0, "b")):
        alarms.call_at(env.now + delay, rung.append, (tag, delay))
    env.run()
    assert rung == [("a", 1.0), ("b", 1.0), ("c", 3.0)]
    assert len(alarms.free) == 3

    def again(arg):  # an alarm that re-arms from its own callback reuses a freed event
        rung.append(arg)
        if len(rung) < 6:
            alarms.call_at(env.now + 1.0, again, env.now)

    alarms.call_at(env.now + 1.0, again, env.now)
    env.run()
    assert rung[3:] == [3.0, 4.0, 5.0] and len(alarms.free) == 3
