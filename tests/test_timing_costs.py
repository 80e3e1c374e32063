"""Cost formulas of anesim.timing.costs, checked against values worked out by hand.

The test chip (tests/timing_support.py): 4 NE cores at 1 GHz, 4 fp16 / 8 int8 output channels
per cycle per core, 64 MAC lanes per output channel, accumulator budget 8, planar 32 elements
per cycle, pool 64 banks x 16 B = 1024 B per cycle, kernel cache 64 KiB, working-set cap 2 MiB.
"""

from __future__ import annotations

import numpy as np
import pytest
from timing_support import conv_task, make_chip

from anesim.program.model import ActivationTable, Kernel, Layout, NeStage, PlanarStage, Task
from anesim.timing import costs


@pytest.fixture(scope="module")
def chip():
    return make_chip()


def test_next_pow2():
    assert [costs.next_pow2(n) for n in (0, 1, 2, 3, 4, 5, 8, 9)] == [1, 1, 2, 4, 4, 8, 8, 16]


def test_cores_active_rounds_up_and_caps(chip):
    # 3 requested -> next power of two 4; 16 requested -> capped by the chip's 4 cores.
    assert costs.cores_active(chip, conv_task(0, 8, 8, 4, 4, cores=3)) == 4
    assert costs.cores_active(chip, conv_task(0, 8, 8, 4, 4, cores=16)) == 4
    assert costs.cores_active(chip, conv_task(0, 8, 8, 4, 4, cores=2)) == 2
    assert costs.cores_needed(chip, c_out=24, ocg_size=8) == 4  # ceil(24/8)=3 -> 4


def test_pass_shape(chip):
    # 256 channels on 4 cores: 64 per core; OCG 48 -> ceil(64/48) = 2 passes (48, then 16).
    shape = costs.pass_shape(chip, conv_task(0, 256, 256, 32, 32, cores=4, ocg=48))
    assert (shape.cores, shape.channels_per_core, shape.ocg, shape.passes) == (4, 64, 48, 2)
    assert [shape.channels_in_pass(p) for p in range(2)] == [48, 16]


def test_single_1x1_tile_ne_cycles(chip):
    # C_in 64, C_out 16, 8x8, 4 cores, OCG 4: 4 channels per core = 1 group of 4;
    # 64 positions; reduction ceil(64 x 1 / 64 lanes) = 1 -> 1 x 64 x 1 = 64 cycles.
    # Demand 1 group: 2 x 1 <= 8, double-buffered, no exposed drain.
    task = conv_task(0, 64, 16, 8, 8, cores=4, ocg=4)
    assert costs.ne_tile_cycles(chip, task, out_rows=8, channels=4) == 64


def test_drain_exposed_without_double_buffering(chip):
    # 48 channels per core = 12 groups; 2 x 12 > 8, so each group's drain (one cycle per
    # position) is exposed: 12 x 1024 x ceil(192/64) + 12 x 1024 = 36864 + 12288.
    task = conv_task(0, 192, 192, 32, 32, cores=4, ocg=48)
    assert costs.ne_tile_cycles(chip, task, 32, 48) == 49152


def test_winograd_quarter_of_direct(chip):
    # 3x3, C_in 64, 8x8, one group. Direct: 64 positions x ceil(64 x 9 / 64) = 576.
    # F(4x4,3x3): ceil(8/4) x ceil(8/4) = 4 tiles x 36 transformed positions x ceil(64/64) = 144.
    direct = conv_task(0, 64, 16, 8, 8, k=3, ocg=4)
    wino = conv_task(0, 64, 16, 8, 8, k=3, ocg=4, winograd=True)
    assert costs.ne_tile_cycles(chip, direct, 8, 4) == 576
    assert costs.winograd_eligible(chip, wino)
    assert costs.ne_tile_cycles(chip, wino, 8, 4) == 144
    assert not costs.winograd_eligible(make_chip(**{"ne.winograd": False}), wino)


def test_winograd_gate_rejects_stride_2(chip):
    t = conv_task(0, 64, 16, 8, 8, k=3, winograd=True)
    t2 = Task(0, t.sources, t.result, ne=NeStage(op="conv", kernel_hw=(3, 3), stride_hw=(2, 2)),
              cores_used=4, ocg_size=4, winograd=True)
    assert not costs.winograd_eligible(chip, t2)


def test_int8_path_doubles_channels_per_cycle(chip):
    src = Layout.packed("dram", 0, 64, 8, 8, dtype="int8")
    dst = Layout.packed("dram", 1, 16, 8, 8, dtype="int8")
    k = Kernel("int8", np.zeros((16, 64, 1, 1), np.int8))
    t = Task(0, (src,), dst, ne=NeStage(kernel=k), cores_used=1, ocg_size=16)
    # 16 channels on one core: int8 groups of 8 -> 2 groups x 64 positions x 1 = 128 (fp16: 4 x 64 = 256).
    assert costs.out_channels_per_cycle(chip, t) == 8
    assert costs.ne_tile_cycles(chip, t, 8, 16) == 128
    fp16 = make_chip(**{"capability.int8_fast_path": False})
    assert costs.ne_tile_cycles(fp16, t, 8, 16) == 256


def test_planar_cycles(chip):
    a = Layout.packed("dram", 0, 64, 8, 8)
    add = Task(0, (a, a), a, planar=PlanarStage(op="add"))
    # 64 x 8 x 8 = 4096 elements / 32 per cycle = 128.
    assert costs.planar_tile_cycles(chip, add, 8) == 128
    pooled = Layout.packed("dram", 1, 64, 4, 4)
    pool = Task(0, (a,), pooled, planar=PlanarStage(op="maxpool", pool_hw=(2, 2), pool_stride_hw=(2, 2)))
    # 64 x 4 x 4 = 1024 outputs, each reading a 2x2 window: 4096 reads / 32 = 128.
    assert costs.planar_tile_cycles(chip, pool, 4) == 128


def test_kernel_bytes_weights_bias_lut():
    src = Layout.packed("dram", 0, 8, 4, 4)
    dst = Layout.packed("dram", 1, 16, 4, 4)
    ne = NeStage(kernel_hw=(3, 3), bias=np.zeros(16, np.uint16))
    t = Task(0, (src,), dst, ne=ne)
    assert costs.kernel_bytes(t) == 16 * 8 * 9 * 2 + 16 * 2  # fp16 weights + fp16 bias
    table = ActivationTable(0.0, 1.0, 0.0, 1.0, np.zeros(33, np.uint16))
    lut = Task(0, (dst,), dst, ne=NeStage(op="bypass", activation="lut", table=table))
    assert costs.kernel_bytes(lut) == costs.LUT_TABLE_BYTES
    given = Task(0, (src,), dst, ne=NeStage(kernel=Kernel("fp16", np.zeros(0, np.uint16), dram_bytes=5000)))
    assert costs.kernel_bytes(given) == 5000


def test_int8_kernel_stream_bytes_follow_the_chip():
    src = Layout.packed("dram", 0, 64, 1, 1)
    dst = Layout.packed("dram", 1, 64, 1, 1)
    int8 = Task(0, (src,), dst, ne=NeStage(kernel=Kernel("int8", np.zeros(0, np.int8), dram_bytes=4096)))
    fp16 = Task(0, (src,), dst, ne=NeStage(kernel=Kernel("fp16", np.zeros(0, np.uint16), dram_bytes=8192)))
    one, two = make_chip(), make_chip(**{"dram.int8_weight_bytes": 2.0})
    assert costs.kernel_stream_bytes(one, int8) == 4096
    assert costs.kernel_stream_bytes(two, int8) == 8192  # as if it reached the engine as fp16
    assert costs.kernel_stream_bytes(two, fp16) == 8192  # other formats are untouched


def test_dma_and_pool_rates(chip):
    # Activation stream 20 GB/s at 1 GHz: 8192 B -> 100 ns latency + 409.6 ns.
    assert costs.dram_seconds(chip, 8192, "activation") == pytest.approx(509.6e-9)
    # Weight stream 50 GB/s: 2048 B -> 100 + 40.96 ns.
    assert costs.dram_seconds(chip, 2048, "weight") == pytest.approx(140.96e-9)
    assert chip.pool_bytes_per_cycle == 1024
    assert costs.pool_cycles(chip, 4096) == 4.0


def test_residency_at_the_cap(chip):
    at_cap = Layout.packed("pool", None, 1024, 32, 32)  # 1024 x 32 x 32 x 2 = 2 MiB exactly
    over = Layout.packed("pool", None, 1040, 32, 32)
    assert at_cap.nbytes == 2 * 2**20 and costs.resident(chip, at_cap)
    assert not costs.resident(chip, over)
