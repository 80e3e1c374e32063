"""Helpers for the timing tests: a small chip with round numbers, and program builders."""

from __future__ import annotations

import copy
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.program.model import Layout, NeStage, PlanarStage, Program, Task

# Round numbers so expectations can be derived by hand: 1 GHz makes one cycle one nanosecond.
BASE_CHIP: dict[str, Any] = {
    "name": "testchip",
    "family": "M",
    "year": 2020,
    "identity": {"generation": "H13", "compiler_target": "h13", "soc": "t0000", "td_encoding": "A", "td_version": 7},
    "ne": {
        "cores": 4,
        "clock_hz": 1.0e9,
        "out_channels_per_cycle_fp16": 4,
        "out_channels_per_cycle_int8": 8,
        "mac_lanes_per_out_channel": 64,
        "accumulator_budget_per_core": 8,
        "accumulator_split_granule": 64,
        "ocg_byte_caps_per_element": [32, 16, 8],
        "per_layer_overhead_cycles": 44,
        "winograd": True,
    },
    "planar": {"elements_per_cycle": 32},
    "memory": {
        "pool_bytes": 4 * 2**20,
        "working_set_cap_bytes": 2 * 2**20,
        "banks": 64,
        "bank_granule_bytes": 16,
        "kernel_cache_bytes": 64 * 2**10,
    },
    "dram": {
        "activation_bytes_per_s": 20.0e9,
        "activation_read_ratio": 1.0,
        "scratch_bytes_per_s": 40.0e9,
        "weight_bytes_per_s": 50.0e9,
        "weight_refetch_ratio": 1.0,
        "int8_weight_bytes": 1.0,
        "peak_bytes_per_s": 60.0e9,
        "latency_s": 100e-9,
    },
    "dispatch": {
        "host_binding_s": 25e-6,
        "request_build_s": 16e-6,
        "firmware_round_trip_s": 130e-6,
        "completion_s": 10e-6,
        "per_task_overhead_s": 2e-6,
    },
    "power": {"engine_w": 0.5, "mac_energy_j": 1e-12, "dram_byte_energy_j": 2e-11},
    "capability": {
        "tier": "test",
        "max_dimension": 16384,
        "conv3d": False,
        "texture_engine": False,
        "sin_cos": False,
        "dropout": False,
        "int8_fast_path": True,
        "dtypes": ["fp16", "int8"],
    },
}

_PLAIN = {"name", "family", "notes", "aliases", "tier", "dtypes", "generation", "compiler_target", "soc", "td_encoding"}


def _wrap(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _wrap(v, k) for k, v in node.items()}
    if key in _PLAIN:
        return node
    return {"value": node, "provenance": "predicted", "source": "timing test fixture"}


def make_chip(**overrides: Any) -> ChipConfig:
    """The test chip, with dotted-key overrides such as ``make_chip(**{"ne.cores": 2})``."""
    data = copy.deepcopy(BASE_CHIP)
    for dotted, value in overrides.items():
        node = data
        *path, last = dotted.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return ChipConfig.model_validate(_wrap(data))


def conv_task(
    index: int, c_in: int, c_out: int, h: int, w: int, *, k: int = 1, src_space: str = "dram",
    dst_space: str = "dram", cores: int = 4, ocg: int = 8, tile_height: int = 0, winograd: bool = False,
    src_offset: int = 0, dst_offset: int = 0, src_slot: int = 0, dst_slot: int = 1,
) -> Task:
    """A stride-1 'same' convolution with packed fp16 layouts."""
    pad = k // 2
    src = Layout.packed(src_space, src_slot if src_space == "dram" else None, c_in, h, w, offset_bytes=src_offset)
    dst = Layout.packed(dst_space, dst_slot if dst_space == "dram" else None, c_out, h, w, offset_bytes=dst_offset)
    ne = NeStage(op="conv", kernel_hw=(k, k), padding_tblr=(pad, pad, pad, pad))
    return Task(index, (src,), dst, ne=ne, cores_used=cores, ocg_size=ocg, tile_height=tile_height,
                winograd=winograd, name=f"conv{index}")


def add_task(index: int, c: int, h: int, w: int, *, space: str = "dram", tile_height: int = 0) -> Task:
    """An elementwise add of two sources on the planar engine."""
    a = Layout.packed(space, 0 if space == "dram" else None, c, h, w)
    b = Layout.packed(space, 1 if space == "dram" else None, c, h, w, offset_bytes=0 if space == "dram" else a.span_bytes + 64)
    r = Layout.packed(space, 2 if space == "dram" else None, c, h, w,
                      offset_bytes=0 if space == "dram" else 2 * (a.span_bytes + 64))
    return Task(index, (a, b), r, planar=PlanarStage(op="add"), tile_height=tile_height, name=f"add{index}")


def program(*tasks: Task, name: str = "test") -> Program:
    """A program of the given tasks (no tensors or slots: timing needs neither)."""
    return Program(name=name, generation="H13", tasks=list(tasks), tensors={}, slots={})


# Benchmark-shaped programs, shared by benchmarks/bench_timing.py and tests/test_timing_pinned.py.
POOL_A, POOL_B = 0, 1 << 20  # two pool regions the chained layers ping-pong between


def chained(n: int):
    """n 1x1/3x3 convs at 32x32, 64 channels, tiles of 4 rows, pool to pool."""
    tasks = []
    for i in range(n):
        src, dst = (POOL_A, POOL_B) if i % 2 == 0 else (POOL_B, POOL_A)
        tasks.append(conv_task(i, 64, 64, 32, 32, k=3 if i % 3 == 0 else 1, src_space="pool", dst_space="pool",
                               tile_height=4, ocg=16, src_offset=src, dst_offset=dst))
    return program(*tasks, name=f"chained-{n}")


def streaming(n: int):
    """n 1x1 convs at 32x32, 64 channels, tiles of 4 rows, DRAM to DRAM."""
    return program(*[conv_task(i, 64, 64, 32, 32, tile_height=4, ocg=16, src_slot=i, dst_slot=i + 1)
                     for i in range(n)], name=f"streaming-{n}")


def mixed(n: int):
    """Chained convs; every 8th layer streams through DRAM, every 10th is a planar add."""
    tasks = []
    for i in range(n):
        src, dst = (POOL_A, POOL_B) if i % 2 == 0 else (POOL_B, POOL_A)
        if i % 10 == 9:
            tasks.append(add_task(i, 64, 32, 32, tile_height=4))
        elif i % 8 == 7:
            tasks.append(conv_task(i, 64, 64, 32, 32, tile_height=4, ocg=16, src_slot=i, dst_slot=i + 1))
        else:
            tasks.append(conv_task(i, 64, 64, 32, 32, src_space="pool", dst_space="pool", tile_height=4, ocg=16,
                                   src_offset=src, dst_offset=dst))
    return program(*tasks, name=f"mixed-{n}")
