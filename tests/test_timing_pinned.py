"""Simulated times of benchmark-like programs, pinned to exact values.

The programs mirror ``benchmarks/bench_timing.py`` (chained, streaming, mixed) at 200 tasks.
The expected values are what the engine gave before its hot path was optimised; every
optimisation must leave them bit-for-bit unchanged, with and without closed-form batching and
trace recording.
"""

from __future__ import annotations

import pytest
from timing_support import chained, make_chip, mixed, streaming

from anesim.timing import simulate

N = 200
# latency_s, engine_cycles, dram_contention_s, last task end_s, sum of all stalls (cycles),
# destination-DMA busy cycles
PINNED = {
    "chained": (chained, 0.003230475839999998, 3049476, 0.0, 0.003155475839999998,
                20819.839999998134, 25600.0),
    "streaming": (streaming, 0.0028644399999999334, 2683440, 0.0018395519999999256, 0.0027894399999999334,
                  1660799.9999999288, 2386399.9999999288),
    "mixed": (mixed, 0.0014918198399999905, 1310820, 0.00041410943999998574, 0.0014168198399999905,
              519820.6399999907, 520879.99999999546),
}


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_latencies(name: str, batch: bool, trace: bool) -> None:
    build, latency, cycles, contention, last_end, stalls, dst_busy = PINNED[name]
    r = simulate(build(N), make_chip(), batch=batch, trace=trace)
    assert r.latency_s == latency
    assert r.engine_cycles == cycles
    assert r.dram_contention_s == contention
    assert r.tasks[-1].end_s == last_end
    assert sum(t.stall_input_cycles + t.stall_weight_cycles + t.stall_output_cycles for t in r.tasks) == stalls
    assert r.units["tile_dma_dst"].busy_cycles == dst_busy
