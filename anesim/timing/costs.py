"""Pure cost functions: cycles and bytes of one task, pass or tile, from the chip and the task.

Nothing here simulates; the engine schedules these durations. Every number comes from the
:class:`~anesim.chips.schema.ChipConfig`; the only constants are architectural (the Winograd
tile form, the byte widths of data types). ``docs/timing.md`` gives each formula's source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anesim.chips.schema import ChipConfig
from anesim.program.model import DTYPE_BYTES, REDUCTION_OPS, Kernel, Layout, Task

# Winograd F(m x m, 3 x 3): an m x m output tile costs (m + 2)^2 products per input channel
# instead of 9 m^2. The gate admits only F(2x2) and F(4x4) (guide ch. 20); the larger one
# is modelled, as a compiler would take Winograd only where it pays (anesim's own does not set
# the flag: compiler/lowering/tile.py SELECT_WINOGRAD).
WINOGRAD_OUTPUT_TILE = 4
LUT_TABLE_BYTES = 128  # one activation table as fetched by the kernel DMA (command-stream §5)
INT8_DTYPES = ("int8", "uint8")


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling of a / b."""
    return -(-a // b)


def cores_active(chip: ChipConfig, task: Task) -> int:
    """Cores a task powers: the next power of two of its stated count, capped by the chip."""
    return min(chip.ne.cores.value, next_pow2(max(1, task.cores_used)))


def cores_needed(chip: ChipConfig, c_out: int, ocg_size: int) -> int:
    """Cores a compiler lights for ``c_out`` channels in groups of ``ocg_size`` (next pow2)."""
    return min(chip.ne.cores.value, next_pow2(ceil_div(c_out, max(1, ocg_size))))


def uses_int8_path(chip: ChipConfig, task: Task) -> bool:
    """True when both operands are 8-bit and the chip has the double-int8 MAC mode."""
    if task.ne is None or task.ne.kernel is None:
        return False
    return (
        chip.capability.int8_fast_path.value
        and task.ne.kernel.format in INT8_DTYPES
        and task.sources[0].dtype in INT8_DTYPES
    )


def out_channels_per_cycle(chip: ChipConfig, task: Task) -> int:
    """Output channels one core produces per cycle: the int8 rate only on the W8A8 path."""
    if uses_int8_path(chip, task):
        return chip.ne.out_channels_per_cycle_int8.value
    return chip.ne.out_channels_per_cycle_fp16.value


def winograd_eligible(chip: ChipConfig, task: Task) -> bool:
    """Winograd applies when the task asks for it and the gate holds: 3x3, stride 1, dense, 2-D."""
    ne = task.ne
    if ne is None or not task.winograd or not chip.ne.winograd.value:
        return False
    if ne.op != "conv" or ne.kernel_hw != (3, 3) or ne.stride_hw != (1, 1):
        return False
    if ne.dilation_hw != (1, 1) or ne.groups != 1 or task.sources[0].depth != 1:
        return False
    return ne.kernel is None or ne.kernel.sparse_mask is None


# --------------------------------------------------------------------------- passes and tiles


@dataclass(frozen=True)
class PassShape:
    """How a task's output channels split across cores and OCG passes."""

    cores: int
    channels_per_core: int  # the busiest core's share under the c mod cores map
    ocg: int  # output channels per core per pass
    passes: int

    def channels_in_pass(self, p: int) -> int:
        """Channels the busiest core computes in pass ``p``."""
        return max(0, min(self.ocg, self.channels_per_core - p * self.ocg))


def pass_shape(chip: ChipConfig, task: Task) -> PassShape:
    """Cores, per-core channels and OCG passes = ceil(ceil(C_out / cores) / OCG)."""
    cores = cores_active(chip, task)
    c_out = task.result.channels
    if task.ne is None or task.ne.op not in ("conv", "transconv"):
        # Elementwise and bypass work has no accumulator groups: one pass.
        per_core = ceil_div(c_out, cores)
        return PassShape(cores, per_core, max(1, per_core), 1)
    per_core = ceil_div(c_out, cores)
    ocg = max(1, task.ocg_size)
    return PassShape(cores, per_core, ocg, max(1, ceil_div(per_core, ocg)))


def accumulator_groups(chip: ChipConfig, task: Task, channels: int) -> int:
    """Accumulator work units one pass holds per core: one per out-channels-per-cycle group."""
    return ceil_div(channels, out_channels_per_cycle(chip, task))


def accumulator_double_buffered(chip: ChipConfig, task: Task, channels: int) -> bool:
    """Double-buffered when twice the demand fits the per-core budget (guide ch. 20)."""
    demand = accumulator_groups(chip, task, channels)
    return 2 * demand <= chip.ne.accumulator_budget_per_core.value


def input_rows_for(task: Task, out_rows: int) -> int:
    """Source rows a tile of ``out_rows`` output rows reads, halo included."""
    src_h = task.sources[0].height
    if task.ne is not None and task.ne.op == "conv":
        kh = task.ne.kernel_hw[0]
        sh = task.ne.stride_hw[0]
        dh = task.ne.dilation_hw[0]
        rows = (out_rows - 1) * sh + (kh - 1) * dh + 1
    elif task.planar is not None and task.planar.op in ("avgpool", "maxpool", "minpool"):
        rows = (out_rows - 1) * task.planar.pool_stride_hw[0] + task.planar.pool_hw[0]
    else:
        rows = out_rows * src_h // max(1, task.result.height) if task.result.height else src_h
    return max(1, min(src_h, rows))


# --------------------------------------------------------------------------- compute cycles


def ne_tile_cycles(chip: ChipConfig, task: Task, out_rows: int, channels: int) -> int:
    """NE cycles for ``out_rows`` output rows of ``channels`` per-core channels in one pass.

    Convolution: channel groups x output positions x ceil(reduction / lanes), where a group is
    the out-channels-per-cycle of one core and the reduction is C_in/groups x kH x kW; Winograd
    replaces the kernel window by (m+2)^2 products per m x m output tile. Without accumulator
    double buffering the drain of each group is exposed (one cycle per group and position).
    Elementwise and bypass work streams out-channels-per-cycle channels per core per cycle.
    """
    ne = task.ne
    if ne is None or channels <= 0 or out_rows <= 0:
        return 0
    ocpc = out_channels_per_cycle(chip, task)
    lanes = chip.ne.mac_lanes_per_out_channel.value
    width = task.result.width
    depth = task.result.depth
    groups = ceil_div(channels, ocpc)
    if ne.op not in ("conv", "transconv"):
        return groups * out_rows * width * depth
    c_in = task.sources[0].channels // max(1, ne.groups)
    if winograd_eligible(chip, task):
        m = WINOGRAD_OUTPUT_TILE
        positions = ceil_div(out_rows, m) * ceil_div(width, m) * (m + 2) ** 2
        reduction = ceil_div(c_in, lanes)
    else:
        kh, kw = ne.kernel_hw
        positions = out_rows * width * depth
        reduction = ceil_div(c_in * kh * kw, lanes)
    # A pass narrower than the lane width fills the spare channel lanes with further output
    # positions, so the array still makes ocpc channel-positions per cycle (guide ch. 20: the
    # compiler packs channels onto accumulators "to keep the multipliers busy").
    cycles = ceil_div(channels * positions, ocpc) * reduction if channels < ocpc else groups * positions * reduction
    if not accumulator_double_buffered(chip, task, channels):
        cycles += groups * out_rows * width * depth  # drain not hidden behind the next fill
    return cycles


def planar_tile_cycles(chip: ChipConfig, task: Task, out_rows: int) -> int:
    """Planar-engine cycles for ``out_rows`` output rows: elements read / elements per cycle."""
    pl = task.planar
    if pl is None or out_rows <= 0:
        return 0
    r = task.result
    out_elems = r.groups * r.depth * r.channels * out_rows * r.width
    if pl.op in ("avgpool", "maxpool", "minpool"):
        work = out_elems * pl.pool_hw[0] * pl.pool_hw[1]  # every window element is read
    elif pl.op in REDUCTION_OPS:
        work = out_elems * task.sources[0].width  # a row reduction reads its whole row per result
    else:
        work = out_elems
    return ceil_div(work, chip.planar.elements_per_cycle.value)


# --------------------------------------------------------------------------- bytes


def layout_row_bytes(layout: Layout) -> float:
    """Payload bytes of one row across every channel, group and depth slice."""
    return layout.nbytes / max(1, layout.height)


def kernel_stream_bytes(chip: ChipConfig, task: Task) -> int:
    """Bytes the kernel DMA moves for a task on ``chip``: an int8 kernel at dram.int8_weight_bytes a weight."""
    kb = kernel_bytes(task)
    ne = task.ne
    if kb and ne is not None and ne.kernel is not None and ne.kernel.format in INT8_DTYPES:
        return int(round(kb * chip.dram.int8_weight_bytes.value))
    return kb


def kernel_bytes(task: Task) -> int:
    """Bytes the kernel DMA fetches for a task: weights, bias, post-scale, palette, LUT."""
    ne = task.ne
    if ne is None:
        return 0
    total = 0
    c_out = task.result.channels
    k: Kernel | None = ne.kernel
    if k is not None and k.dram_bytes > 0:
        total = k.dram_bytes
    elif k is None and len(task.sources) > 1:
        total = 0  # run-time weights read as a second source: the tile DMA moves them
    elif ne.op in ("conv", "transconv"):
        kh, kw = ne.kernel_hw
        c_in = task.sources[0].channels // max(1, ne.groups)
        elems = c_out * c_in * kh * kw
        if k is not None and k.sparse_mask is not None:
            elems = int(k.sparse_mask.sum())
        fmt = k.format if k is not None else "fp16"
        if fmt == "palette":
            total = ceil_div(elems * max(1, k.palette_bits), 8)  # type: ignore[union-attr]
            total += 2 * (0 if k.palette is None else k.palette.size)  # type: ignore[union-attr]
        else:
            total = elems * DTYPE_BYTES.get(fmt, 2)
        if k is not None and k.scale is not None:
            total += 2 * c_out
        if ne.bias is not None:
            total += 2 * c_out
    if ne.activation == "lut" and not (k is not None and k.dram_bytes > 0):
        total += LUT_TABLE_BYTES
    return total


def pool_cycles(chip: ChipConfig, nbytes: float) -> float:
    """Cycles to move ``nbytes`` through the pool: banks x granule bytes per cycle."""
    return nbytes / chip.pool_bytes_per_cycle


def dram_seconds(chip: ChipConfig, nbytes: float, stream: str) -> float:
    """Uncontended DMA time: latency + bytes / the stream's ceiling (capped by the peak)."""
    if nbytes <= 0:
        return 0.0
    d = chip.dram
    rates = {"weight": d.weight_bytes_per_s.value, "scratch": d.scratch_bytes_per_s.value}
    rate = rates.get(stream, d.activation_bytes_per_s.value)
    return d.latency_s.value + nbytes / min(rate, d.peak_bytes_per_s.value)


def resident(chip: ChipConfig, layout: Layout) -> bool:
    """An operand stays in the pool only while it fits under the working-set cap."""
    return layout.nbytes <= chip.memory.working_set_cap_bytes.value


def seconds_to_cycles(chip: ChipConfig, seconds: float) -> float:
    """Convert seconds to engine cycles at the NE clock."""
    return seconds * chip.ne.clock_hz.value


def task_overhead_cycles(chip: ChipConfig) -> int:
    """The fixed per-layer overhead added to every task's execute cycles (guide ch. 20)."""
    return chip.ne.per_layer_overhead_cycles.value


def dispatch_components_s(chip: ChipConfig) -> dict[str, float]:
    """The host-side and firmware dispatch costs of one command, in order."""
    d = chip.dispatch
    return {
        "host_binding": d.host_binding_s.value,
        "request_build": d.request_build_s.value,
        "firmware_round_trip": d.firmware_round_trip_s.value,
        "completion": d.completion_s.value,
    }


def mac_peak_per_cycle(chip: ChipConfig) -> int:
    """fp16 MACs the whole array can do per cycle: cores x out-channels x lanes."""
    ne = chip.ne
    return ne.cores.value * ne.out_channels_per_cycle_fp16.value * ne.mac_lanes_per_out_channel.value


def isclose_cycles(a: float, b: float) -> bool:
    """Equality for cycle counts that went through float arithmetic."""
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
