"""The shared-bandwidth DRAM model: transfers finish even far into a long simulation."""

from __future__ import annotations

import heapq
import random

import pytest

from anesim.timing.dram import SharedBandwidth
from anesim.timing.loop import HeapLoop


def _run_bounded(loop: HeapLoop, limit: int) -> int:
    """Run the loop as HeapLoop.run does, but give up after ``limit`` entries."""
    n = 0
    while loop._queue and n < limit:
        loop.now, _, item = heapq.heappop(loop._queue)
        callbacks = getattr(item, "callbacks", None)
        if callbacks is None and callable(item):
            item()
        else:
            item.callbacks = None
            for cb in callbacks or ():
                cb(item)
        n += 1
    return n


@pytest.mark.parametrize("seed", range(40))
def test_overlapping_transfers_finish_late_in_a_run(seed):
    # Three overlapping transfers of awkward sizes and costs, started 1e8-1e10 cycles in. The
    # float residue of a transfer's remaining bytes used to re-arm a wake-up at a delay below
    # the clock's resolution there, so the loop spun forever at one time.
    rnd = random.Random(seed)
    loop = HeapLoop()
    bw = SharedBandwidth(loop, 162.5, {"activation": 11.2, "weight": 16.1})
    done = []

    def start():
        for _ in range(3):
            ev = bw.transfer(rnd.uniform(1e5, 1e8), rnd.choice(["weight", "activation"]),
                             rnd.uniform(0, 1e4), rnd.choice([1.0, 5.14, 1.88]))
            done.append(ev)

    loop.call_later(rnd.uniform(1e8, 1e10), start)
    steps = _run_bounded(loop, 1000)
    assert not loop._queue, f"still {len(loop._queue)} entries after {steps} steps"
    assert len(done) == 3 and all(ev.triggered for ev in done)
