"""Engine operations: the lowered form of a graph, one per future task (before tiling).

An :class:`EOp` is either an NE operation (a convolution with constant weights, a matrix
product whose weights come from a tensor, or a bypass that only applies bias, post-scale and
nonlinearity) or a planar-engine operation (elementwise combination of two sources, or
pooling). Sources and destination are :class:`~anesim.compiler.lowering.views.View` s of buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anesim.compiler.lowering.kernels import KernelSource
from anesim.compiler.lowering.views import View
from anesim.program.model import ActivationTable


@dataclass
class NeSpec:
    """The NE stage of an engine op."""

    op: str  # "conv", "matmul" (weights from a tensor), "bypass"
    kernel: KernelSource | None = None
    kernel_hw: tuple[int, int] = (1, 1)
    stride_hw: tuple[int, int] = (1, 1)
    padding_tblr: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation_hw: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: np.ndarray | None = None  # float32 per output channel
    post_scale: float = 1.0
    activation: str = "none"  # none, relu, lut
    table: ActivationTable | None = None
    fused: list[str] = field(default_factory=list)  # graph ops folded into this one

    def copy(self, **changes: object) -> NeSpec:
        """``dataclasses.replace(self, **changes)`` (a shallow copy) without re-running
        ``__init__``: every engine op gets its own spec, tens of thousands in a large model."""
        new = object.__new__(NeSpec)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def has_epilogue_room(self) -> bool:
        """True while no nonlinearity has been attached (bias/scale can still fold)."""
        return self.activation == "none"


@dataclass
class PlanarSpec:
    """The planar stage of an engine op."""

    op: str  # add, sub, mul, div, max, min, avgpool, maxpool, copy
    relu: bool = False
    pool_hw: tuple[int, int] = (1, 1)
    pool_stride_hw: tuple[int, int] = (1, 1)
    pool_padding_tblr: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class EOp:
    """One engine operation over views; tiling turns it into one or more tasks."""

    name: str
    where: str
    sources: list[View]
    dest: View
    ne: NeSpec | None = None
    planar: PlanarSpec | None = None
    weights_view: View | None = None  # matmul: the tensor that supplies the weights
    # How weights_view holds them: one row per output channel, read as a kernel by the kernel DMA
    # (True); or C_in channels each C_out wide, read as a second source (False: a transposed
    # matrix, whose channels cannot tell the two apart when there is one of them)
    weights_by_row: bool = True

    @property
    def engine(self) -> str:
        """'ne' or 'pe': the unit that does the work."""
        return "ne" if self.ne is not None else "pe"

    @property
    def out_channels(self) -> int:
        """Output channels of the destination."""
        return self.dest.c
