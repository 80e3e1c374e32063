"""Where every buffer lives: DRAM slots and offsets, or the on-chip pool.

Slot numbering follows the H13 programs Apple's compiler wrote (command-stream.md §3.10, tinygrad
samples, compiler v4): slot 1 holds the kernels (``__const``), outputs come next from slot 4,
then inputs. Slot 2 holds constants the tile DMA reads and slot 3 the intermediates that do
not stay on chip. I/O buffers are rounded up to the 16 KiB page the engine maps (§4.1).

An intermediate is *chained* through the pool (guide ch. 22, allocation type 2) when exactly one
task writes it, exactly the next task reads it, both run on the same engine class, it is read
the way it was written, and it fits the working-set cap; it then never touches DRAM. The
intermediates of a row tile of softmax or a norm (``Buffer.on_chip``, set by the lowerer when
the tile's working set fits the cap) stay in the pool too, for as long as the tile's tasks read
them, when the pool has room.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anesim.compiler.lowering.views import Buffer, View, reshape_view
from anesim.program.model import Slot, align_up

PAGE_BYTES = 0x4000
KERNEL_SLOT = 1
CONSTANT_SLOT = 2
INTERMEDIATE_SLOT = 3
FIRST_IO_SLOT = 4


class LazySlot(Slot):
    """A constant slot whose bytes are produced on first access."""

    def __init__(self, index: int, size_bytes: int, role: str, make: Callable[[], bytes]) -> None:
        object.__setattr__(self, "_make", make)
        object.__setattr__(self, "_bytes", None)
        super().__init__(index, size_bytes, role, None)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def data(self) -> bytes | None:
        """The slot's contents (computed now if needed)."""
        cached = object.__getattribute__(self, "_bytes")
        if cached is None:
            cached = object.__getattribute__(self, "_make")()
            object.__setattr__(self, "_bytes", cached)
        return cached

    @data.setter
    def data(self, value: bytes | None) -> None:
        if value is not None:
            object.__setattr__(self, "_bytes", value)

    def __repr__(self) -> str:
        return f"LazySlot({self.index}, {self.size_bytes} bytes, {self.role})"


@dataclass(frozen=True)
class Placement:
    """A buffer's home: a DRAM slot and offset, or an offset in the pool."""

    space: str  # dram or pool
    slot: int | None
    offset: int


@dataclass(frozen=True)
class Access:
    """The views one task reads and writes, and its engine class."""

    reads: tuple[View, ...]
    writes: View
    engine: str  # ne or pe
    kernel_reads: tuple[View, ...] = ()  # tensors the kernel DMA reads as weights (DRAM only)


def pack_tensor(array: np.ndarray, buf: Buffer) -> bytes:
    """A logical array in a buffer's packed fp16 layout (rows and planes padded)."""
    n, c, h, w = buf.n, buf.c, buf.h, buf.w
    arr = np.asarray(array, np.float32).reshape(n, c, h, w).astype(np.float16)
    row_elems = buf.row_stride // 2
    plane_elems = buf.plane_stride // 2
    out = np.zeros((n, c, plane_elems), np.float16)
    rows = np.zeros((n, c, h, row_elems), np.float16)
    rows[..., :w] = arr
    out[..., : h * row_elems] = rows.reshape(n, c, h * row_elems)
    return out.tobytes()


def _chainable(buf: Buffer, writers: list[int], readers: list[int], accesses: list[Access],
               cap: int, weight_ids: set[int]) -> bool:
    if buf.role != "intermediate" or len(writers) != 1 or not readers:
        return False
    w = writers[0]
    if any(r != w + 1 for r in readers) or buf.nbytes > cap:
        return False
    whole = buf.view()
    if not _covers(accesses[w].writes, whole):
        return False
    if buf.id in weight_ids:
        return False  # the kernel DMA reads weights from DRAM
    reader = accesses[w + 1]
    if reader.engine != accesses[w].engine:
        return False
    return all(_covers(v, whole) for v in reader.reads if v.buffer == buf.id)


def _covers(view: View, whole: View) -> bool:
    """True when ``view`` addresses the whole buffer as written, under any shape (rows as channels)."""
    return view == whole or (view.buffer == whole.buffer and reshape_view(view, whole.dims) == whole)


def _tile_local(buf: Buffer, cap: int, weight_ids: set[int]) -> bool:
    """An intermediate of one row tile of a row-wise decomposition (softmax, the norms).

    The lowerer marks them when the tile's working set fits the cap; they stay on chip even when
    read by a later task or another engine class, unless the kernel DMA reads them as weights.
    """
    if not buf.on_chip or buf.role != "intermediate" or buf.nbytes > cap:
        return False
    return buf.id not in weight_ids


def plan_memory(buffers: list[Buffer], accesses: list[Access], pool_bytes: int, cap: int,
                output_order: list[str], input_order: list[str],
                chain: bool = True) -> tuple[dict[int, Placement], dict[int, int]]:
    """Placements of every buffer and the size of each DRAM slot it uses (no pool with chain=False)."""
    writers: dict[int, list[int]] = {}
    readers: dict[int, list[int]] = {}
    for t, acc in enumerate(accesses):
        writers.setdefault(acc.writes.buffer, []).append(t)
        for v in acc.reads:
            if v.buffer != acc.writes.buffer or True:
                readers.setdefault(v.buffer, []).append(t)
    # buffers the kernel DMA reads as weights, found once rather than per buffer (O(n^2) on
    # programs of tens of thousands of tasks)
    weight_ids = {v.buffer for acc in accesses for v in acc.kernel_reads}
    placements: dict[int, Placement] = {}
    slot_sizes: dict[int, int] = {}

    # inputs and outputs: one slot each, outputs first (Apple's v4 compiler order)
    io_slot = FIRST_IO_SLOT
    by_name = {b.name: b for b in buffers if b.role in ("input", "output")}
    for name in output_order:
        buf = by_name.get(name)
        if buf is not None and buf.role == "output" and buf.id not in placements:
            placements[buf.id] = Placement("dram", io_slot, 0)
            slot_sizes[io_slot] = align_up(buf.nbytes, PAGE_BYTES)
            io_slot += 1
    for name in input_order:
        buf = by_name.get(name)
        if buf is not None and buf.role == "input" and buf.id not in placements:
            placements[buf.id] = Placement("dram", io_slot, 0)
            slot_sizes[io_slot] = align_up(buf.nbytes, PAGE_BYTES)
            io_slot += 1
    for buf in buffers:  # any I/O buffer not named in the orders
        if buf.role in ("input", "output") and buf.id not in placements:
            placements[buf.id] = Placement("dram", io_slot, 0)
            slot_sizes[io_slot] = align_up(buf.nbytes, PAGE_BYTES)
            io_slot += 1

    # constants read by the tile DMA
    offset = 0
    for buf in buffers:
        if buf.role == "constant":
            placements[buf.id] = Placement("dram", CONSTANT_SLOT, offset)
            offset = align_up(offset + buf.nbytes)
    if offset:
        slot_sizes[CONSTANT_SLOT] = align_up(offset, PAGE_BYTES)

    # intermediates: chain through the pool when allowed, else first-fit in slot 3 by lifetime
    pool_live: list[tuple[int, int, int]] = []  # (last task, offset, size)
    dram_live: list[tuple[int, int, int]] = []
    dram_top = 0
    order = sorted((b for b in buffers if b.role == "intermediate" and b.id in writers),
                   key=lambda b: min(writers[b.id] + readers.get(b.id, [])))
    for buf in order:
        touched = writers[buf.id] + readers.get(buf.id, [])
        first, last = min(touched), max(touched)
        size = align_up(buf.nbytes)
        if chain and (_chainable(buf, writers[buf.id], readers.get(buf.id, []), accesses, cap, weight_ids)
                      or _tile_local(buf, cap, weight_ids)):
            pool_live = [a for a in pool_live if a[0] >= first]
            spot = _first_fit(pool_live, size, pool_bytes)
            if spot is not None:
                pool_live.append((last, spot, size))
                placements[buf.id] = Placement("pool", None, spot)
                continue
        dram_live = [a for a in dram_live if a[0] >= first]
        spot = _first_fit(dram_live, size, None)
        assert spot is not None
        dram_live.append((last, spot, size))
        dram_top = max(dram_top, spot + size)
        placements[buf.id] = Placement("dram", INTERMEDIATE_SLOT, spot)
    for buf in buffers:  # intermediates never written (cannot happen in valid lowering) still get a home
        if buf.id not in placements:
            placements[buf.id] = Placement("dram", INTERMEDIATE_SLOT, align_up(dram_top))
            dram_top = align_up(dram_top) + align_up(buf.nbytes)
    if dram_top:
        slot_sizes[INTERMEDIATE_SLOT] = align_up(dram_top, PAGE_BYTES)
    return placements, slot_sizes


def _first_fit(live: list[tuple[int, int, int]], size: int, limit: int | None) -> int | None:
    spans = sorted((off, off + sz) for _, off, sz in live)
    cursor = 0
    for start, end in spans:
        if start - cursor >= size:
            break
        cursor = max(cursor, align_up(end))
    if limit is not None and cursor + size > limit:
        return None
    return cursor
