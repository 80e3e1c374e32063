"""DRAM buffer slots and the on-chip pool, with strided views described by Layouts.

A pool tile whose strides make its rows overlap (a row stride of 32 bytes under 1600-element
rows, say) describes a ring buffer the hardware streams through a few rows at a time while the
next task drains it. Executing whole tasks in order, the engine hands such a tile over as a
whole tensor kept beside the pool bytes, keyed by its pool offset (docs/functional.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

import numpy as np

from anesim.errors import ProgramError
from anesim.limits import check_bytes
from anesim.program.model import DTYPE_BYTES, Layout, Program, Slot

# Element dtype of each tensor format in memory; fp16 travels as its uint16 bit pattern.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "fp16": np.dtype(np.uint16), "int8": np.dtype(np.int8), "uint8": np.dtype(np.uint8),
}


class SlotBuffers(MutableMapping[int, np.ndarray]):
    """A program's DRAM slots, each allocated (and filled from its constant data) when first used.

    A compiled program's kernel slot holds every weight packed per core for the kernel DMA; the
    tasks carry the same weights unpacked, so a run that never reads the slot never packs it.
    """

    def __init__(self, slots: Mapping[int, Slot]) -> None:
        self._slots = dict(slots)
        self._buffers: dict[int, np.ndarray] = {}

    def __getitem__(self, index: int) -> np.ndarray:
        buf = self._buffers.get(index)
        if buf is None:
            slot = self._slots[index]  # KeyError for a slot the program does not bind
            buf = np.zeros(slot.size_bytes, dtype=np.uint8)
            if slot.data is not None:
                data = np.frombuffer(slot.data, dtype=np.uint8)
                buf[: min(len(data), len(buf))] = data[: len(buf)]
            self._buffers[index] = buf
        return buf

    def __setitem__(self, index: int, buf: np.ndarray) -> None:
        self._buffers[index] = buf

    def __delitem__(self, index: int) -> None:
        self._buffers.pop(index, None)
        del self._slots[index]

    def __contains__(self, index: object) -> bool:
        return index in self._slots or index in self._buffers

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(set(self._slots) | set(self._buffers)))

    def __len__(self) -> int:
        return len(set(self._slots) | set(self._buffers))


@dataclass
class Memory:
    """The bytes a program can address: one array per DRAM slot and the on-chip pool."""

    slots: MutableMapping[int, np.ndarray]
    pool: np.ndarray
    source: str = ""
    streams: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # pool offset -> tile
    _views: dict[Layout, np.ndarray] = field(default_factory=dict, repr=False)

    @staticmethod
    def for_program(program: Program, pool_bytes: int) -> Memory:
        """The program's slots (each allocated and filled from its constant data on first use) and the pool."""
        check_bytes(sum(s.size_bytes for s in program.slots.values()) + pool_bytes, file=program.source or None,
                    field="buffer slots and on-chip pool")
        return Memory(SlotBuffers(program.slots), np.zeros(pool_bytes, dtype=np.uint8), program.source)

    def _buffer(self, layout: Layout, what: str) -> np.ndarray:
        if layout.space == "pool":
            return self.pool
        if layout.slot not in self.slots:
            raise ProgramError(
                f"{what} refers to a buffer slot the program does not bind", file=self.source or None,
                expected=f"one of {sorted(self.slots)}", found=layout.slot,
            )
        return self.slots[layout.slot]

    def view(self, layout: Layout, what: str = "tile") -> np.ndarray:
        """A writable (groups, depth, channels, height, width) view of the bytes a layout names."""
        cached = self._views.get(layout)
        if cached is not None:
            return cached
        buf = self._buffer(layout, what)
        dtype = STORAGE_DTYPES[layout.dtype]
        size = DTYPE_BYTES[layout.dtype]
        strides = (layout.group_stride_bytes, layout.depth_stride_bytes, layout.plane_stride_bytes,
                   layout.row_stride_bytes, size)
        shape = (layout.groups, layout.depth, layout.channels, layout.height, layout.width)
        end = layout.offset_bytes + layout.span_bytes
        if min(shape) <= 0 or layout.offset_bytes < 0 or min(strides) < 0 or end > len(buf):
            space = "on-chip pool" if layout.space == "pool" else f"slot {layout.slot}"
            raise ProgramError(
                f"{what} does not fit its buffer ({space})", file=self.source or None,
                where=f"offset {layout.offset_bytes:#x}",
                expected=f"bytes within 0..{len(buf):#x}", found=f"a view ending at {end:#x}",
            )
        if layout.offset_bytes % size or any(s % size for s in strides):
            raise ProgramError(f"{what} is not aligned to its {size}-byte elements",
                               file=self.source or None, where=f"offset {layout.offset_bytes:#x}")
        arr = np.ndarray(shape, dtype=dtype, buffer=buf.data, offset=layout.offset_bytes, strides=strides)
        self._views[layout] = arr
        return arr

    def read(self, layout: Layout, what: str = "source") -> np.ndarray:
        """A contiguous copy of a tile as (channels, height, width), groups and depth folded into channels."""
        if streamed(layout):
            tile = self.streams.get(layout.offset_bytes)
            if tile is None or tile.size != layout.elements:
                raise ProgramError(f"{what} reads an on-chip stream that no earlier task wrote with its shape",
                                   file=self.source or None, where=f"pool offset {layout.offset_bytes:#x}",
                                   expected=f"{layout.elements} elements",
                                   found="nothing" if tile is None else f"{tile.size} elements")
            return tile.reshape(-1, layout.height, layout.width).copy()
        v = self.view(layout, what)
        # (a view through zero or overlapping strides can name far more elements than its buffer holds)
        check_bytes(v.size * v.itemsize, file=self.source or None, field=f"{what}: its elements, copied")
        return np.ascontiguousarray(v.reshape(-1, layout.height, layout.width))

    def write(self, layout: Layout, values: np.ndarray, what: str = "result") -> None:
        """Store a (channels, height, width) array into the bytes a layout names."""
        if streamed(layout):
            dtype = STORAGE_DTYPES[layout.dtype]
            self.streams[layout.offset_bytes] = np.array(values, dtype=dtype).reshape(
                -1, layout.height, layout.width)
            return
        self.streams.pop(layout.offset_bytes, None) if layout.space == "pool" else None
        v = self.view(layout, what)
        v[...] = values.reshape(v.shape).astype(v.dtype, copy=False)


def streamed(layout: Layout) -> bool:
    """Whether a pool layout addresses some byte twice (a ring buffer the engine streams)."""
    if layout.space != "pool":
        return False
    size = DTYPE_BYTES[layout.dtype]
    dims = [(layout.group_stride_bytes, layout.groups), (layout.depth_stride_bytes, layout.depth),
            (layout.plane_stride_bytes, layout.channels), (layout.row_stride_bytes, layout.height)]
    span = size * layout.width
    for stride, extent in sorted(d for d in dims if d[1] > 1 and d[0] != 0):  # 0: a broadcast
        if stride < span:
            return True
        span = stride * (extent - 1) + span
    return False
