"""Decoded programs become the generation-independent model the engines run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anesim
from anesim.errors import UnsupportedError
from anesim.hwx.fuzzing import eiln_kernels
from anesim.hwx.raw import load_sidecar, parse as parse_raw
from anesim.hwx.to_program import build_program
from anesim.program import Program

SIDECARS = Path(__file__).resolve().parents[1] / "programs" / "eiln"


def load(shared_dir: Path, folder: str, name: str) -> Program:
    return anesim.load(shared_dir / "hwx" / folder / name)


@pytest.fixture(scope="module")
def eiln(shared_dir: Path) -> dict[str, Program]:
    out = {}
    for rel, data in eiln_kernels(shared_dir):
        sidecar = load_sidecar(SIDECARS / rel.replace(".bin", ".sidecar.json"))
        out[rel] = build_program(parse_raw(data, sidecar, rel))
    return out


def test_conv_weights_come_from_the_per_core_channels(shared_dir: Path) -> None:
    prog = load(shared_dir, "tinygrad", "conv.hwx")
    data = (shared_dir / "hwx" / "tinygrad" / "conv.hwx").read_bytes()
    const = data[0x4280:0x4280 + 0xC0]
    (task,) = prog.tasks
    assert task.ne is not None and task.ne.op == "conv" and task.planar is None
    kernel = task.ne.kernel
    assert kernel is not None and kernel.format == "fp16" and kernel.shape == (3, 3, 1, 1)
    for o in range(3):  # one output channel per NE core, 64 bytes apart (symbols K..._ne_0/1/2)
        assert list(kernel.weights[o, :, 0, 0]) == list(np.frombuffer(const[0x40 * o:0x40 * o + 6], np.uint16))
    assert task.cores_used == 4 and task.ocg_size == 1
    assert prog.tensors["image"].slot == task.sources[0].slot == 5
    assert prog.tensors["probs"].slot == task.result.slot == 4
    assert prog.slots[1].role == "constant" and prog.slots[1].data == const
    assert prog.notes == [] and prog.approximations == []


def test_gemm_uses_sixteen_cores_of_32_output_channels(shared_dir: Path) -> None:
    (task,) = load(shared_dir, "tinygrad", "gemm.hwx").tasks
    assert task.cores_used == 16 and task.ocg_size == 32
    assert task.ne is not None and task.ne.kernel is not None
    assert task.ne.kernel.shape == (512, 512, 1, 1) and not task.ne.kernel.weights.any()
    assert task.macs == 512 * 512


def test_activations(shared_dir: Path) -> None:
    (relu,) = load(shared_dir, "tinygrad", "relu.hwx").tasks
    assert relu.ne is not None and (relu.ne.op, relu.ne.activation) == ("bypass", "relu")
    assert relu.sources[0].width == 77 and relu.sources[0].row_stride_bytes == 192
    (sig,) = load(shared_dir, "tinygrad", "sigmoid.hwx").tasks
    assert sig.ne is not None and sig.ne.activation == "lut"
    table = sig.ne.table
    assert table is not None and len(table.samples) == 33
    assert (table.range_lo, table.range_hi, table.value_below, table.value_above) == (-9.9375, 8.3203125, 0.0, 1.0)
    assert table.samples[16] == 0x3800  # sigmoid(midpoint) = 0.5


def test_planar_add_reads_two_dram_sources(shared_dir: Path) -> None:
    (task,) = load(shared_dir, "tinygrad", "sum.hwx").tasks
    assert task.ne is None and task.planar is not None and task.planar.op == "add"
    assert [s.slot for s in task.sources] == [6, 5] and task.result.slot == 4
    assert all(s.channels == 64 for s in task.sources)


def test_concat_writes_both_halves_of_one_output(shared_dir: Path) -> None:
    first, second = load(shared_dir, "tinygrad", "concat.hwx").tasks
    assert (first.result.slot, first.result.offset_bytes, first.result.channels) == (4, 0, 16384)
    assert (second.result.slot, second.result.offset_bytes, second.result.channels) == (4, 0x100000, 16)


@pytest.mark.parametrize("name,slots", [("matmul_h11.hwx", (4, 5, 6)), ("matmul_h13.hwx", (4, 5, 6)),
                                        ("matmul_h14.hwx", (4, 5, 6)), ("matmul_h15.hwx", (6, 7, 8))])
def test_matmul_on_every_generation(shared_dir: Path, name: str, slots: tuple[int, int, int]) -> None:
    prog = load(shared_dir, "alexaltea", name)
    (task,) = prog.tasks
    a, b, out = slots
    assert task.sources[0].slot == b and task.result.slot == out
    assert (task.sources[0].channels, task.sources[0].width) == (3, 2)  # B's rows read as 3 channels of width 2
    assert (task.result.channels, task.result.width) == (2, 2)
    assert task.ne is not None and task.ne.op == "conv"
    kernel = task.ne.kernel  # A is the kernel, fetched from its slot at run time: dynamic weights
    assert kernel is not None and kernel.weights is None and kernel.placement is not None
    assert kernel.placement.slot == a and kernel.shape == (2, 3, 1, 1)
    assert prog.approximations == []  # run-time weights are read from the slot, as the kernel DMA does
    assert task.cores_used == 2


def test_eiln_binary_ops(eiln: dict[str, Program]) -> None:
    ops = {rel: eiln[rel].tasks[0].planar for rel in ("binary/add.bin", "binary/sub.bin", "binary/mul.bin",
                                                      "binary/max.bin", "binary/min.bin", "binary/ave.bin")}
    # sub.bin is an add whose first source (src1) is pre-scaled by -1: src0 - src1
    assert {rel: p.op for rel, p in ops.items() if p} == {
        "binary/add.bin": "add", "binary/sub.bin": "add", "binary/mul.bin": "mul", "binary/max.bin": "max",
        "binary/min.bin": "min", "binary/ave.bin": "add"}
    assert ops["binary/ave.bin"].scale == 0.5 and ops["binary/sub.bin"].pre_scale == -1.0
    add = eiln["binary/add.bin"]
    assert [s.slot for s in add.tasks[0].sources] == [5, 6] and add.tasks[0].result.slot == 4
    assert add.tensors["src0"].shape == (1, 1, 2560, 1600) and add.tensors["dst0"].role == "output"


def test_eiln_chained_tasks_pass_through_the_pool(eiln: dict[str, Program]) -> None:
    first, second = eiln["unary/sigmoid.bin"].tasks
    assert first.result.space == "pool" and second.sources[0].space == "pool"
    assert first.ne is not None and first.ne.table is not None
    assert second.planar is not None and second.planar.op == "copy" and second.planar.bias == 0.5


def test_encode_program_round_trips_and_refuses_foreign_programs(shared_dir: Path) -> None:
    path = shared_dir / "hwx" / "tinygrad" / "conv.hwx"
    prog = anesim.load(path)
    assert anesim.encode(prog) == path.read_bytes()
    foreign = Program("x", "H13", [], {}, {})
    with pytest.raises(UnsupportedError):
        anesim.encode(foreign)
