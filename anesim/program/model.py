"""The generation-independent program model every engine speaks.

A :class:`Program` is a list of :class:`Task` s, one per task descriptor (one pass of the
datapath over a tile). A task reads one or two sources, runs them through the NE stage (MAC array
with kernel, bias, post-scale and nonlinearity) and/or the planar stage (elementwise and pooling),
and writes one result. Sources and results live in DRAM buffer slots or in the on-chip pool.

The decoder (``anesim.hwx``) and the compiler (``anesim.compiler``) produce this model; the
functional engine (``anesim.execute``) and the timing engine (``anesim.timing``) consume it.
Shapes are logical NCHW; memory positions are byte offsets with explicit strides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from anesim.program.notes import Note

DType = Literal["fp16", "int8", "uint8"]
DTYPE_BYTES: dict[str, int] = {"fp16": 2, "int8": 1, "uint8": 1}
NUMPY_DTYPES: dict[str, type] = {"fp16": np.float16, "int8": np.int8, "uint8": np.uint8}

TensorRole = Literal["input", "output", "constant", "intermediate"]
Space = Literal["dram", "pool"]

NeOp = Literal["conv", "elementwise", "bypass", "transconv"]
Activation = Literal["none", "relu", "lut"]
PlanarOp = Literal[
    "add", "sub", "mul", "max", "min", "sqsum", "div",
    "avgpool", "maxpool", "minpool", "copy", "abs",
    # reductions along the width of every row: one value per row (docs/functional.md)
    "reduce_max", "reduce_sum", "recip_sum",
]
REDUCTION_OPS = ("reduce_max", "reduce_sum", "recip_sum")
KernelFormat = Literal["fp16", "int8", "uint8", "palette"]

ALIGN_BYTES = 64  # every stride above the row is a multiple of 64 bytes


def align_up(value: int, granule: int = ALIGN_BYTES) -> int:
    """Round ``value`` up to a multiple of ``granule``."""
    return -(-value // granule) * granule


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor the program exchanges with the host, bound to a DRAM buffer slot."""

    name: str
    shape: tuple[int, ...]  # logical NCHW (or NCDHW)
    dtype: DType
    role: TensorRole
    slot: int
    offset_bytes: int = 0
    row_stride_bytes: int = 0  # 0: the compiler's default rule (rows padded to 64 bytes)
    plane_stride_bytes: int = 0  # 0: default rule (planes padded to 64 bytes)
    batch_stride_bytes: int = 0  # 0: channels × plane stride

    def layout(self) -> Layout:
        """The tensor's placement in its slot, as a Layout whose ``groups`` axis is the batch."""
        n, c, h, w = _nchw(self.shape)
        size = DTYPE_BYTES[self.dtype]
        row = self.row_stride_bytes or align_up(w * size)
        plane = self.plane_stride_bytes or align_up(row * h)
        batch = self.batch_stride_bytes or plane * c
        return Layout("dram", self.slot, self.offset_bytes, c, h, w, self.dtype, row, plane,
                      1, plane * c, n, batch)


def _nchw(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pad a logical shape on the left to four axes (N, C, H, W)."""
    if len(shape) > 4:
        raise ValueError(f"shape {shape} has more than four axes")
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded[0], padded[1], padded[2], padded[3]


@dataclass(frozen=True)
class Layout:
    """Where a tile sits in memory and how it is strided: one DMA or pool descriptor."""

    space: Space
    slot: int | None  # DRAM buffer slot; None in the on-chip pool
    offset_bytes: int
    channels: int
    height: int
    width: int
    dtype: DType = "fp16"
    row_stride_bytes: int = 0
    plane_stride_bytes: int = 0
    depth: int = 1
    depth_stride_bytes: int = 0
    groups: int = 1
    group_stride_bytes: int = 0

    @property
    def elements(self) -> int:
        """Number of elements in the view."""
        return self.groups * self.depth * self.channels * self.height * self.width

    # nbytes and span_bytes are computed once per layout and kept in the instance: a model's
    # tasks share a few thousand layouts, which planning and timing read tens of thousands of
    # times. (A copy made by updating ``__dict__`` rather than through ``__init__`` would carry
    # them over: use ``dataclasses.replace``.)
    @cached_property
    def nbytes(self) -> int:
        """Bytes the DMA moves for this view (payload only, no padding).

        A zero channel or row stride reads one plane (row) for every channel (row): a broadcast
        source, whose plane (row) moves once.
        """
        channels = 1 if self.plane_stride_bytes == 0 else self.channels
        rows = 1 if self.row_stride_bytes == 0 else self.height
        return self.groups * self.depth * channels * rows * self.width * DTYPE_BYTES[self.dtype]

    @cached_property
    def span_bytes(self) -> int:
        """Bytes from the first to one past the last addressed byte, padding included."""
        if self.elements == 0:
            return 0
        last = (
            self.offset_bytes
            + (self.groups - 1) * self.group_stride_bytes
            + (self.depth - 1) * self.depth_stride_bytes
            + (self.channels - 1) * self.plane_stride_bytes
            + (self.height - 1) * self.row_stride_bytes
            + self.width * DTYPE_BYTES[self.dtype]
        )
        return last - self.offset_bytes

    @staticmethod
    def packed(
        space: Space, slot: int | None, channels: int, height: int, width: int,
        dtype: DType = "fp16", offset_bytes: int = 0, row_align: int = ALIGN_BYTES,
    ) -> Layout:
        """The compiler's default layout: rows padded to 64 bytes, planes to 64 bytes."""
        row = align_up(width * DTYPE_BYTES[dtype], row_align)
        plane = align_up(row * height, ALIGN_BYTES)
        return Layout(space, slot, offset_bytes, channels, height, width, dtype, row, plane,
                      1, plane * channels, 1, plane * channels)


@dataclass(frozen=True)
class ActivationTable:
    """A nonlinearity lookup table as fetched by the kernel DMA.

    ``samples`` are fp16 bit patterns, uniformly spaced over ``knot_span`` (by default
    [range_lo, range_hi]); inputs below or above the range map to ``value_below`` /
    ``value_above``. docs/functional.md describes how the decoder reads Apple's tables.
    """

    range_lo: float
    range_hi: float
    value_below: float
    value_above: float
    samples: np.ndarray  # uint16 fp16 bits
    name: str = "custom"
    # How the engine reads the samples. "none": they span [range_lo, range_hi]. A range-reduced
    # table ("exp2", "recip", "sqrt", "rsqrt", "log2") tabulates one octave of the mantissa or the
    # fraction, and the header's range only clamps. "odd"/"even" tables see |x|.
    # "int"/"frac" return the integer part (toward zero) or the fractional part, no samples.
    reduction: Literal["none", "exp2", "recip", "sqrt", "rsqrt", "log2", "int", "frac"] = "none"
    # "positive": defined for x >= 0 only; every negative input gives +0.
    symmetry: Literal["none", "odd", "even", "positive"] = "none"
    # Where the 33 samples sit. None: [range_lo, range_hi] for a plain table, the reduced
    # argument's interval otherwise. An empty span (lo == hi) is a table of tails only.
    knot_span: tuple[float, float] | None = None
    # (slope, intercept) of the lines used below and above the knot span; None: the end
    # segments extend.
    tails: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class KernelPlacement:
    """Where the kernel DMA finds each NE core's weights in a buffer slot.

    Output channel ``o`` sits on core ``(o // ocg) % cores`` at row
    ``(o // (ocg * cores)) * ocg + o % ocg`` of that core's buffer; each row holds one output
    channel's ``C_in/groups × kh × kw`` elements padded to ``row_bytes``.
    """

    slot: int
    core_offsets_bytes: tuple[int, ...]  # indexed by core; -1 where the core has no channel
    core_sizes_bytes: tuple[int, ...]  # 0 where the program leaves the size unstated
    ocg: int
    cores: int
    row_bytes: int
    shape_oihw: tuple[int, int, int, int]


@dataclass(frozen=True)
class Kernel:
    """Weights for the NE stage: unpacked (``weights``) or fetched at run time (``placement``)."""

    format: KernelFormat
    weights: np.ndarray | None  # OIHW: fp16 bits, int8/uint8 codes, or palette indices; None: read at run time
    scale: np.ndarray | None = None  # per output channel dequantisation scale (fp16 bits)
    zero_point: np.ndarray | None = None  # per output channel zero point
    palette: np.ndarray | None = None  # fp16 bits, 2**palette_bits entries (per output channel or shared)
    palette_bits: int = 0
    sparse_mask: np.ndarray | None = None  # bool OIHW; False entries are zero and skipped
    dram_bytes: int = 0  # bytes the kernel DMA fetches, all cores together
    placement: KernelPlacement | None = None  # set when the weights come from a slot at run time

    @property
    def shape(self) -> tuple[int, ...]:
        """The OIHW shape of the weights."""
        if self.weights is not None:
            return tuple(self.weights.shape)
        return self.placement.shape_oihw if self.placement is not None else ()


@dataclass(frozen=True)
class NeStage:
    """The MAC-array stage: convolution or inner product, then post-scale, bias, nonlinearity.

    A ``conv`` without a ``kernel`` takes 1×1 weights from the task's second source, laid out as
    planes ``(C_in, 1, C_out)`` (a matrix product whose right operand is a run-time tensor).
    """

    op: NeOp = "conv"
    kernel_hw: tuple[int, int] = (1, 1)
    stride_hw: tuple[int, int] = (1, 1)
    padding_tblr: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: Kernel | None = None
    bias: np.ndarray | None = None  # fp16 bits per output channel
    post_scale: float = 1.0
    activation: Activation = "none"
    table: ActivationTable | None = None
    acc_bias: float = 0.0  # added to the accumulator before the post-scale


@dataclass(frozen=True)
class PlanarStage:
    """The planar engine: elementwise combination of two sources, or pooling of one."""

    op: PlanarOp
    pre_scale: float = 1.0
    bias: float = 0.0
    scale: float = 1.0
    final_scale: float = 1.0
    relu: bool = False
    pool_hw: tuple[int, int] = (1, 1)
    pool_stride_hw: tuple[int, int] = (1, 1)
    pool_padding_tblr: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True)
class Task:
    """One task descriptor: sources → NE stage → planar stage → result, on ``cores_used`` cores."""

    index: int
    sources: tuple[Layout, ...]
    result: Layout
    ne: NeStage | None = None
    planar: PlanarStage | None = None
    cores_used: int = 1
    ocg_size: int = 1  # output channels per core per pass
    tile_height: int = 0  # rows per tile pass; 0 means the whole output height
    winograd: bool = False
    name: str = ""
    fields: dict[str, int] = field(default_factory=dict)  # decoded register fields, for listings

    @property
    def input_chw(self) -> tuple[int, int, int]:
        """Channels, height and width of the first source."""
        s = self.sources[0]
        return s.channels, s.height, s.width

    @property
    def output_chw(self) -> tuple[int, int, int]:
        """Channels, height and width of the result."""
        r = self.result
        return r.channels, r.height, r.width

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the NE stage (0 without a convolution)."""
        if self.ne is None or self.ne.op not in ("conv", "transconv"):
            return 0
        c_in = self.sources[0].channels
        c_out, h_out, w_out = self.output_chw
        kh, kw = self.ne.kernel_hw
        return c_out * h_out * w_out * kh * kw * (c_in // max(self.ne.groups, 1))

    @property
    def planar_elements(self) -> int:
        """Elements the planar stage produces (0 without one)."""
        return self.result.elements if self.planar is not None else 0


@dataclass(frozen=True)
class Slot:
    """A DRAM buffer the host binds before dispatch."""

    index: int
    size_bytes: int
    role: TensorRole
    data: bytes | None = None  # contents for constant slots (weights shipped in the program)


@dataclass
class Program:
    """A whole ANE program: slots, the tensors bound to them, and the tasks in order."""

    name: str
    generation: str
    tasks: list[Task]
    tensors: dict[str, TensorSpec]
    slots: dict[int, Slot]
    source: str = ""
    notes: list[str] = field(default_factory=list)  # remarks (compiler decisions), not approximations
    # What decoding or lowering could not reproduce exactly (anesim.program.notes).
    approximations: list[Note] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """One line per approximation: 'FILE: task N: FIELD = VALUE: message'."""
        from anesim.program.notes import warning_lines

        return warning_lines(self.approximations, self.source or None)

    @property
    def inputs(self) -> list[TensorSpec]:
        """Tensors the host supplies, in slot order."""
        return sorted((t for t in self.tensors.values() if t.role == "input"), key=lambda t: t.slot)

    @property
    def outputs(self) -> list[TensorSpec]:
        """Tensors the host reads back, in slot order."""
        return sorted((t for t in self.tensors.values() if t.role == "output"), key=lambda t: t.slot)

    @property
    def macs(self) -> int:
        """Multiply-accumulates over all tasks."""
        return sum(t.macs for t in self.tasks)
