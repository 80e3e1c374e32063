"""The typed graph a model is described in before it is lowered to tasks.

A :class:`Graph` holds named tensors: inputs the host supplies, constants (given arrays or
seeded generators, see :mod:`anesim.compiler.graph.constants`), and the values the operations
produce. Shapes are logical, rank 1 to 4, read as NCHW after padding on the left with ones
(``(M, K)`` is ``(1, 1, M, K)``). Every node remembers *where* it came from (``ops[3]`` of a
program file, ``op 'fc1'`` of the builder) so errors can point at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from anesim.compiler.graph.constants import ConstantData
from anesim.errors import CompileError
from anesim.limits import check_bytes
from anesim.program.notes import Note

MAX_RANK = 4
# Tensors only the host reads and writes (the CPU fallback of an ONNX model) may have any rank
# up to this, empty axes and any element type; their TensorInfo dtype is HOST_DTYPE.
MAX_HOST_RANK = 8
HOST_DTYPE = "host"


def as_nchw(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pad a logical shape on the left to four axes (N, C, H, W)."""
    padded = (1,) * (MAX_RANK - len(shape)) + tuple(shape)
    return padded[0], padded[1], padded[2], padded[3]


def axis_nchw(axis: int, rank: int) -> int:
    """Map an axis of a rank-``rank`` logical shape to its NCHW axis (0..3)."""
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return (axis % rank) + (MAX_RANK - rank)


@dataclass(frozen=True)
class TensorInfo:
    """A named value: its logical shape and element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "fp16"

    @property
    def nchw(self) -> tuple[int, int, int, int]:
        """The shape padded to NCHW."""
        return as_nchw(self.shape)

    @property
    def elements(self) -> int:
        """Number of elements."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class Constant:
    """A constant tensor: weights, biases, tables. Its data is produced on demand."""

    name: str
    data: ConstantData

    @property
    def shape(self) -> tuple[int, ...]:
        """Logical shape of the constant."""
        return self.data.shape


@dataclass
class Node:
    """One operation: an op name, input tensor names, attributes, one output tensor."""

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    def describe(self) -> str:
        """Where the node is, for messages: its source location or its name."""
        return self.where or f"op '{self.name}'"

    def copy(self) -> Node:
        """A copy whose attributes can be changed without changing this node's."""
        # what copy.copy does, without its generic protocol (graph passes copy thousands of nodes)
        out = object.__new__(Node)
        out.__dict__.update(self.__dict__)
        out.attrs = dict(self.attrs)
        return out


@dataclass
class Graph:
    """A whole model: inputs, constants, nodes in execution order, outputs."""

    name: str
    inputs: dict[str, TensorInfo] = field(default_factory=dict)
    constants: dict[str, Constant] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    values: dict[str, TensorInfo] = field(default_factory=dict)  # every tensor, inputs included
    source: str = ""
    # Outputs the source model declares as scalars (rank 0): the engine holds them as (1,), and a
    # run hands them back with the model's shape, ()
    scalar_outputs: set[str] = field(default_factory=set)
    # Outputs the source model declares in another element type than the engine's fp16 (numpy
    # names): a run hands them back in it, as the runtime converts the engine's result
    output_types: dict[str, str] = field(default_factory=dict)
    # What an importer could express only approximately, as timing notes the compiled program
    # carries (anesim run prints them as warnings): anesim.program.notes
    approximations: list[Note] = field(default_factory=list)

    def info(self, name: str) -> TensorInfo:
        """The shape and type of any tensor in the graph."""
        try:
            return self.values[name]
        except KeyError:
            raise CompileError("unknown tensor", file=self.source or None, found=repr(name)) from None

    def is_constant(self, name: str) -> bool:
        """True when ``name`` is a constant tensor."""
        return name in self.constants

    def producer(self, name: str) -> Node | None:
        """The node that computes ``name`` (None for inputs and constants)."""
        return self._producers().get(name)

    def consumers(self, name: str) -> list[Node]:
        """The nodes that read ``name``, in order."""
        return self._consumers().get(name, [])

    def _producers(self) -> dict[str, Node]:
        return {n.output: n for n in self.nodes}

    def _consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                out.setdefault(name, []).append(node)
        return out

    def walk(self) -> Iterator[Node]:
        """The nodes in execution order."""
        return iter(self.nodes)

    def add_value(self, info: TensorInfo, where: str = "") -> None:
        """Register a tensor name; a second tensor of the same name is an error.

        Engine tensors have rank 1 to 4 and positive extents; host-only tensors (dtype
        ``HOST_DTYPE``) rank 1 to ``MAX_HOST_RANK`` and extents that may be 0."""
        if info.name in self.values:
            raise CompileError(
                "a tensor of this name already exists", file=self.source or None,
                where=where or None, found=repr(info.name),
            )
        host = info.dtype == HOST_DTYPE
        max_rank = MAX_HOST_RANK if host else MAX_RANK
        if len(info.shape) == 0 or len(info.shape) > max_rank:
            raise CompileError(
                "unsupported tensor rank", file=self.source or None, where=where or None,
                expected=f"1 to {max_rank} axes", found=f"{len(info.shape)} in {info.shape}",
            )
        if any((not isinstance(d, int)) or d < (0 if host else 1) for d in info.shape):
            raise CompileError(
                "tensor dimensions must be positive integers", file=self.source or None,
                where=where or None, found=str(info.shape),
            )
        check_bytes(info.elements * (1 if info.dtype in ("int8", "uint8") else 8 if host else 2), file=self.source or None,
                    field=f"tensor '{info.name}' of shape {info.shape}{' at ' + where if where else ''}")
        self.values[info.name] = info

    def macs(self) -> int:
        """Multiply-accumulates of the convolutions and matrix products in the graph."""
        from anesim.compiler.graph.ops import node_macs

        return sum(node_macs(self, n) for n in self.nodes)

    def summary(self) -> dict[str, int]:
        """Counts of nodes per op, for reports."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts
