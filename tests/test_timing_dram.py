"""The shared-bandwidth DRAM model: transfers finish even far into a long simulation."""

from __future__ import annotations

import random

import pytest
import simpy

from anesim.timing.dram import SharedBandwidth


def _run_bounded(env: simpy.Environment, limit: int) -> int:
    """Step the environment until it is empty, but give up after ``limit`` events."""
    n = 0
    while env.peek() != simpy.core.Infinity and n < limit:
        env.step()
        n += 1
    return n


@pytest.mark.parametrize("seed", range(40))
def test_overlapping_transfers_finish_late_in_a_run(seed):
    # Three overlapping transfers of awkward sizes and costs, started 1e8-1e10 cycles in. The
    # float residue of a transfer's remaining bytes used to re-arm a wake-up at a delay below
    # the clock's resolution there, so the loop spun forever at one time.
    rnd = random.Random(seed)
    env = simpy.Environment()
    bw = SharedBandwidth(env, 162.5, {"activation": 11.2, "weight": 16.1})
    done = []

    def start():
        for _ in range(3):
            ev = bw.transfer(rnd.uniform(1e5, 1e8), rnd.choice(["weight", "activation"]),
                             rnd.uniform(0, 1e4), rnd.choice([1.0, 5.14, 1.88]))
            done.append(ev)

    env.timeout(rnd.uniform(1e8, 1e10)).callbacks.append(lambda _event: start())
    steps = _run_bounded(env, 1000)
    assert env.peek() == simpy.core.Infinity, f"events still due after {steps} steps"
    assert len(done) == 3 and all(ev.triggered for ev in done)


def test_a_delayed_transfer_of_nothing_leaves_the_others_a_wake_up():
    # A (1000 B) runs alone from 0; B (100 B) joins it at 10 and lands at 30; a transfer of no
    # bytes is due at 50, before A's landing, so no wake-up was armed for A when B left. Its
    # start moves nothing, but must arm that wake-up: A lands at 30 + 800 / 10 = 110.
    env = simpy.Environment(initial_time=0.0)
    bw = SharedBandwidth(env, 10.0, {"activation": 10.0, "weight": 10.0})
    ends = {}

    def transfer(name, nbytes, stream, delay, at):
        yield env.timeout(at)
        yield bw.transfer(nbytes, stream, delay)
        ends[name] = env.now

    env.process(transfer("A", 1000, "activation", 0.0, 0.0))
    env.process(transfer("nothing", 0, "weight", 50.0, 0.0))
    env.process(transfer("B", 100, "weight", 0.0, 10.0))
    env.run()
    assert ends == {"B": 30.0, "nothing": 50.0, "A": 110.0}
    assert bw.busy_cycles == pytest.approx(110.0)
