"""The pydantic schema every chip configuration must satisfy after inheritance is resolved.

Units live in field names (``_hz``, ``_s``, ``_bytes``, ``_bytes_per_s``). Every numeric or
boolean hardware fact is a :class:`Param` carrying provenance and source.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from anesim.chips.params import Param, PosFloat, PosInt, StrictBool

DType = Literal["fp16", "fp32", "int8", "uint8", "int4", "uint4", "palette"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Section):
    """Which engine this is and how its programs are encoded."""

    generation: Annotated[str, Field(min_length=1)]
    compiler_target: Annotated[str, Field(min_length=1)]
    soc: Annotated[str, Field(min_length=1)]
    td_encoding: Literal["A", "B"]
    td_version: Param[PosInt]


class NeuralEngine(_Section):
    """The MAC array: cores, lanes, accumulators and clock."""

    cores: Param[PosInt]
    clock_hz: Param[PosFloat]
    out_channels_per_cycle_fp16: Param[PosInt]
    out_channels_per_cycle_int8: Param[PosInt]
    mac_lanes_per_out_channel: Param[PosInt]
    accumulator_budget_per_core: Param[PosInt]
    accumulator_split_granule: Param[PosInt]
    # fp16, 8-bit, palette in turn; a shorter list's last cap serves the formats after it
    ocg_byte_caps_per_element: Param[Annotated[list[PosInt], Field(min_length=1, max_length=3)]]
    per_layer_overhead_cycles: Param[PosInt]
    winograd: Param[StrictBool]


class PlanarEngine(_Section):
    """The planar (elementwise) engine beside the MAC array."""

    elements_per_cycle: Param[PosInt]


class Memory(_Section):
    """The compiler-managed on-chip pool and the kernel cache."""

    pool_bytes: Param[PosInt]
    working_set_cap_bytes: Param[PosInt]
    banks: Param[PosInt]
    bank_granule_bytes: Param[PosInt]
    kernel_cache_bytes: Param[PosInt]


class Dram(_Section):
    """DRAM as the engine sees it: separate ceilings per stream and a shared peak."""

    activation_bytes_per_s: Param[PosFloat]
    # read-only activation rate over the read+write stream rate; a write then costs
    # 2 * ratio - 1 reads, so the ratio must exceed 1/2 (docs/timing.md)
    activation_read_ratio: Param[Annotated[float, Field(gt=0.5, le=4.0)]]
    # tile-DMA rate of the buffers a compiled program allocates for itself (intermediates that
    # spill or live in DRAM), as opposed to the host's input and output buffers (docs/timing.md)
    scratch_bytes_per_s: Param[PosFloat]
    weight_bytes_per_s: Param[PosFloat]
    # rate of a kernel fetched again for every output tile, over weight_bytes_per_s
    weight_refetch_ratio: Param[Annotated[float, Field(gt=0.0, le=1.0)]]
    # bytes an int8 weight occupies on the kernel stream (2 when it reaches the engine as fp16)
    int8_weight_bytes: Param[Annotated[float, Field(ge=1.0, le=2.0)]]
    peak_bytes_per_s: Param[PosFloat]
    latency_s: Param[PosFloat]
    # the engine's DRAM address window: the most one program can map (the default memory limit)
    window_bytes: Param[PosInt] | None = None


class Dispatch(_Section):
    """The host-to-engine round trip of one command and the firmware's per-task cost."""

    host_binding_s: Param[PosFloat]
    request_build_s: Param[PosFloat]
    firmware_round_trip_s: Param[PosFloat]
    completion_s: Param[PosFloat]
    per_task_overhead_s: Param[PosFloat]


class Cpu(_Section):
    """The host CPU that computes the layers the engine does not run (Core ML's CPU fallback)."""

    fp32_flops_per_s: Param[PosFloat]
    memory_bytes_per_s: Param[PosFloat]
    # one switch between the engine and the CPU (each way): the CPU thread picking up the
    # engine's result, or handing its result to the next dispatch
    handoff_s: Param[PosFloat]


class Power(_Section):
    """The engine rail's energy model: a floor while a call runs, energy per MAC and per DRAM byte."""

    engine_w: Param[PosFloat]
    mac_energy_j: Param[PosFloat]
    dram_byte_energy_j: Param[PosFloat]


class Facts(_Section):
    """Public per-chip facts the cross-generation rules read (chips/model/scaling.yaml).

    None of these is read by the timing engine directly; rules turn them into the Params above.
    """

    process: Param[Annotated[str, Field(min_length=1)]] | None = None  # foundry node, e.g. N5, N3P
    vendor_tops: Param[PosFloat] | None = None  # Apple's Neural Engine rating, trillion ops/s
    vendor_tops_counts: Param[Literal["fp16", "int8"]] | None = None  # what the rating counts
    # Core ML llama lm_head weight stream (ANEMLL-Bench), a public figure outside the calibration set
    coreml_lm_head_bytes_per_s: Param[PosFloat] | None = None


class Capability(_Section):
    """What the compiler lets a program use on this chip."""

    tier: Annotated[str, Field(min_length=1)]
    max_dimension: Param[PosInt]
    conv3d: Param[StrictBool]
    texture_engine: Param[StrictBool]
    sin_cos: Param[StrictBool]
    dropout: Param[StrictBool]
    int8_fast_path: Param[StrictBool]
    dtypes: Annotated[list[DType], Field(min_length=1)]


class ChipConfig(_Section):
    """One silicon profile, fully resolved from its file and the generation files it inherits."""

    name: Annotated[str, Field(min_length=1)]
    aliases: list[str] = []
    family: Literal["A", "M"]
    year: Param[PosInt]
    notes: str | None = None
    identity: Identity
    ne: NeuralEngine
    planar: PlanarEngine
    memory: Memory
    dram: Dram
    dispatch: Dispatch
    power: Power
    capability: Capability
    facts: Facts = Facts()
    cpu: Cpu | None = None  # every shipped chip has one (chips/generations/h13.yaml)

    _source_files: tuple[str, ...] = PrivateAttr(default=())
    _derived: dict[str, str] = PrivateAttr(default_factory=dict)  # dotted key -> rule name

    @property
    def derived_params(self) -> dict[str, str]:
        """Parameters computed by a cross-generation rule: dotted key -> rule name."""
        return dict(self._derived)

    @property
    def source_files(self) -> tuple[str, ...]:
        """The files this config was assembled from, the chip's own first."""
        return self._source_files

    @property
    def peak_fp16_flops_per_s(self) -> float:
        """Peak fp16 rate: 2 FLOP per MAC over every core, lane and cycle."""
        ne = self.ne
        return 2.0 * ne.cores.value * ne.out_channels_per_cycle_fp16.value * (
            ne.mac_lanes_per_out_channel.value * ne.clock_hz.value
        )

    @property
    def peak_int8_ops_per_s(self) -> float:
        """Peak int8 rate on the int8 path (2 ops per MAC)."""
        ne = self.ne
        return 2.0 * ne.cores.value * ne.out_channels_per_cycle_int8.value * (
            ne.mac_lanes_per_out_channel.value * ne.clock_hz.value
        )

    @property
    def pool_bytes_per_cycle(self) -> int:
        """On-chip pool bandwidth: every bank delivers one granule per cycle."""
        return self.memory.banks.value * self.memory.bank_granule_bytes.value

    @property
    def dispatch_floor_s(self) -> float:
        """Fixed cost of one command with no work: the sum of the dispatch components."""
        d = self.dispatch
        return math.fsum(
            p.value
            for p in (d.host_binding_s, d.request_build_s, d.firmware_round_trip_s, d.completion_s)
        )
