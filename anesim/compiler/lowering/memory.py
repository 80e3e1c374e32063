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
them, when the pool has room. Any other intermediate under the cap is *resident* (type 0) over
its whole live range when the pool has room and no layer that touches it streams its weights,
and a pointwise task may write *in place* (type 4) over a source that dies with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

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


# Named tuples, not frozen dataclasses: one of each per buffer and per task of a model with tens
# of thousands of them, and a tuple is made in C.
class Placement(NamedTuple):
    """A buffer's home: a DRAM slot and offset, or an offset in the pool."""

    space: str  # dram or pool
    slot: int | None
    offset: int


class Access(NamedTuple):
    """The views one task reads and writes, and its engine class."""

    reads: tuple[View, ...]
    writes: View
    engine: str  # ne or pe
    kernel_reads: tuple[View, ...] = ()  # tensors the kernel DMA reads as weights (DRAM only)
    pointwise: bool = False  # each result element depends only on the same element of the sources
    streams: bool = False  # the layer's weight operand exceeds the working-set cap (tiled from DRAM)


def pack_tensor(array: np.ndarray, buf: Buffer) -> bytes:
    """A logical array in a buffer's packed fp16 layout (rows and planes padded)."""
    n, c, h, w = buf.n, buf.c, buf.h, buf.w
    with np.errstate(over="ignore"):  # (beyond fp16's range is ±inf, as the engine holds it: docs/numerics.md)
        arr = np.asarray(array, np.float32).reshape(n, c, h, w).astype(np.float16)
    row_elems = buf.row_stride // 2
    plane_elems = buf.plane_stride // 2
    out = np.zeros((n, c, plane_elems), np.float16)
    rows = np.zeros((n, c, h, row_elems), np.float16)
    rows[..., :w] = arr
    out[..., : h * row_elems] = rows.reshape(n, c, h * row_elems)
    return out.tobytes()


def _chainable(buf: Buffer, writers: list[int], readers: list[int], accesses: list[Access],
               cap: int, kernel_read: set[int]) -> bool:
    if buf.role != "intermediate" or len(writers) != 1 or not readers:
        return False
    w = writers[0]
    if any(r != w + 1 for r in readers) or buf.nbytes > cap:
        return False
    if buf.id in kernel_read:
        return False  # the kernel DMA reads weights from DRAM
    reader = accesses[w + 1]
    if reader.engine != accesses[w].engine:
        return False
    whole = buf.view()
    if not _covers(accesses[w].writes, whole):
        return False
    return all(_covers(v, whole) for v in reader.reads if v.buffer == buf.id)


def _covers(view: View, whole: View) -> bool:
    """True when ``view`` addresses the whole buffer as written, under any shape (rows as channels)."""
    if view == whole:
        return True
    # a reshaped view keeps its buffer and offset: only then can it be the whole buffer
    return (view.buffer == whole.buffer and view.offset == whole.offset
            and reshape_view(view, whole.dims) == whole)


def _tile_local(buf: Buffer, kernel_read: set[int], cap: int) -> bool:
    """An intermediate of one row tile of a row-wise decomposition (softmax, the norms).

    The lowerer marks them when the tile's working set fits the cap; they stay on chip even when
    read by a later task or another engine class, unless the kernel DMA reads them as weights.
    """
    return buf.on_chip and buf.role == "intermediate" and buf.nbytes <= cap and buf.id not in kernel_read


def _resident(buf: Buffer, writers: Sequence[int], readers: Sequence[int], streaming: set[int],
              kernel_read: set[int], cap: int) -> bool:
    """An intermediate that may stay on chip for its whole live range (allocation type 0).

    Guide ch. 22 (phase 3): the scheduler grows a partition while the peak L2 pressure over the
    live ranges of its tensors fits the on-chip budget, and its tensors stay resident between the
    tasks that write and read them, whichever engine class reads them and however many tasks
    later; ch. 9: "while a layer's activation fits in the 2 MB on-chip memory, its intermediate
    values stay on chip and do not cross DRAM". An operand over the working-set cap streams
    (ch. 9's 2 MB matmul chain moves its full activation through DRAM at every layer), and the
    kernel DMA reads run-time weights (``kernel_read``) from DRAM. Whether the live set fits is
    decided by packing the pool over each tensor's live range (:func:`_pack_pool`).
    """
    if buf.role != "intermediate" or buf.nbytes > cap or buf.id in kernel_read:
        return False
    return not streaming or not any(t in streaming for t in (*writers, *readers))


def _in_place_sources(buf: Buffer, writers: list[int], accesses: list[Access], buffers: list[Buffer],
                      spans: dict[int, tuple[int, int]]) -> tuple[int, ...]:
    """The sources ``buf`` may overwrite in place (allocation type 4), in the order they are tried.

    Guide ch. 22's allocation states include an in-place rewrite in L2: a pointwise task whose
    source dies with it writes its result over that source. Taken only when the task writes the
    whole of ``buf`` and reads the whole of a pool-resident source of the same shape and type;
    the packing takes the first of these sources that is in the pool (only that depends on the
    packing, so the rest is decided once).
    """
    if len(writers) != 1:
        return ()
    t = writers[0]
    acc = accesses[t]
    if not acc.pointwise:
        return ()
    shape = (buf.n, buf.c, buf.h, buf.w, buf.dtype)
    found = []
    for v in acc.reads:
        src = buffers[v.buffer]
        # only intermediates with a live range (``spans``) are ever in the pool
        if (src.id != buf.id and src.id in spans and spans[src.id][1] == t
                and (src.n, src.c, src.h, src.w, src.dtype) == shape and _covers(v, src.view())):
            found.append(src.id)
    if found and not _covers(acc.writes, buf.view()):
        return ()
    return tuple(found)


def plan_memory(buffers: list[Buffer], accesses: list[Access], pool_bytes: int, cap: int,
                output_order: list[str], input_order: list[str],
                chain: bool = True) -> tuple[dict[int, Placement], dict[int, int]]:
    """Placements of every buffer and the size of each DRAM slot it uses (no pool with chain=False)."""
    writers: dict[int, list[int]] = defaultdict(list)  # read with ``in`` and ``.get`` only
    readers: dict[int, list[int]] = defaultdict(list)
    for t, acc in enumerate(accesses):
        writers[acc.writes.buffer].append(t)
        for v in acc.reads:
            readers[v.buffer].append(t)
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

    # intermediates: on chip when allowed and the pool has room over their live range (two
    # packings tried, the one that leaves fewer bytes to DRAM kept), else first-fit in slot 3
    # live range of each intermediate: the writer and reader lists are in task order
    spans: dict[int, tuple[int, int]] = {}
    for b in buffers:
        if b.role == "intermediate" and b.id in writers:
            w, r = writers[b.id], readers.get(b.id)
            spans[b.id] = (min(w[0], r[0]), max(w[-1], r[-1])) if r else (w[0], w[-1])
    order = sorted((b for b in buffers if b.id in spans), key=lambda b: spans[b.id][0])
    kernel_read = {v.buffer for acc in accesses for v in acc.kernel_reads}
    streaming = {t for t, acc in enumerate(accesses) if acc.streams}  # tasks of layers that stream weights
    # the cheap tests first: a chained intermediate is most often resident or tile-local too
    eligible = [b for b in order if chain and (
        _tile_local(b, kernel_read, cap)
        or _resident(b, writers[b.id], readers.get(b.id, ()), streaming, kernel_read, cap)
        or _chainable(b, writers[b.id], readers.get(b.id, []), accesses, cap, kernel_read))]
    in_place = {b.id: _in_place_sources(b, writers[b.id], accesses, buffers, spans) for b in eligible}
    sizes = [align_up(b.nbytes) for b in eligible]
    best: dict[int, int] = {}
    best_spill, best_pp = -1, False
    traffic = [size * (1 + len(readers.get(b.id, ()))) for b, size in zip(eligible, sizes)]
    for ping_pong in (False, True):
        pooled = _pack_pool(eligible, sizes, spans, in_place, accesses, buffers, pool_bytes, ping_pong)
        spill = sum(t for b, t in zip(eligible, traffic) if b.id not in pooled)
        if best_spill < 0 or spill < best_spill:
            best, best_spill, best_pp = pooled, spill, ping_pong
        if best_spill == 0:
            break  # everything eligible is on chip: the other packing cannot do better
    if best_spill > 0:
        # Residency is decided in order of first use, so a long-lived tensor that saves little
        # traffic for the pool time it holds (a block's input, read again at its end) can keep out
        # short-lived ones that save more (the tiles between). Leave such tensors in DRAM and
        # pack again; the packing that moves fewer bytes is kept.
        keep_out = _low_value_blockers(eligible, traffic, spans, best)
        if keep_out:
            fewer = [b for b in eligible if b.id not in keep_out]
            fewer_sizes = [size for b, size in zip(eligible, sizes) if b.id not in keep_out]
            pooled = _pack_pool(fewer, fewer_sizes, spans, in_place, accesses, buffers, pool_bytes, best_pp)
            spill = sum(t for b, t in zip(eligible, traffic) if b.id not in pooled)
            if spill < best_spill:
                best, best_spill = pooled, spill
    dram_live: list[tuple[int, int, int]] = []
    dram_top = 0
    for buf in order:
        if buf.id in best:
            placements[buf.id] = Placement("pool", None, best[buf.id])
            continue
        first, last = spans[buf.id]
        size = align_up(buf.nbytes)
        if dram_live:
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


def _low_value_blockers(eligible: list[Buffer], traffic: list[int], spans: dict[int, tuple[int, int]],
                        pooled: dict[int, int]) -> set[int]:
    """Pooled tensors live where an eligible tensor was left out, whose traffic saved per byte
    and task held is lower than that left-out tensor's."""
    def density(b: Buffer, t: int) -> float:
        first, last = spans[b.id]
        return t / (max(b.nbytes, 1) * (last - first + 1))

    held = sorted(((spans[b.id][0], spans[b.id][1], density(b, t), b.id)
                   for b, t in zip(eligible, traffic) if b.id in pooled))
    out = sorted((spans[b.id][0], density(b, t)) for b, t in zip(eligible, traffic) if b.id not in pooled)
    blockers: set[int] = set()
    active: list[tuple[int, float, int]] = []  # (last, density, id) of the held tensors begun
    i = 0
    for first, dens in out:
        while i < len(held) and held[i][0] <= first:
            active.append((held[i][1], held[i][2], held[i][3]))
            i += 1
        active = [a for a in active if a[0] >= first]
        blockers.update(a[2] for a in active if a[1] < dens)
    return blockers


def _pack_pool(eligible: list[Buffer], sizes: list[int], spans: dict[int, tuple[int, int]],
               in_place: dict[int, tuple[int, ...]], accesses: list[Access], buffers: list[Buffer],
               pool_bytes: int, ping_pong: bool) -> dict[int, int]:
    """Pool offsets of the eligible intermediates (``sizes``: their bytes, aligned) that fit, in
    order of first use.

    First fit from the bottom; with ``ping_pong``, a tensor whose writer reads a pool tensor in
    the lower half of the pool is placed from the top and the other way round (double buffering
    across the pool), so a chain of short-lived tensors does not cut the space a long-lived one
    (a residual branch's input) leaves for the next large tensor. The guide gives the test (ch.
    22: the live set against the on-chip budget), not the packing.
    """
    live: list[tuple[int, int, int]] = []  # (last task, offset, size)
    pooled: dict[int, int] = {}
    # Plain loops with early exits: there are thousands of tensors, and most live sets hold one.
    for buf, size in zip(eligible, sizes):
        first, last = spans[buf.id]
        if live:
            live = [a for a in live if a[0] >= first]
        spot = None
        for src in in_place[buf.id]:
            if src in pooled:
                spot = pooled[src]
                break
        if spot is None:
            top = False
            if ping_pong:  # the first pool tensor the writer reads decides
                for v in accesses[first].reads:
                    if v.buffer in pooled and v.buffer != buf.id:
                        top = pooled[v.buffer] + buffers[v.buffer].nbytes / 2 < pool_bytes / 2
                        break
            spot = _last_fit(live, size, pool_bytes) if top else _first_fit(live, size, pool_bytes)
            if spot is None and ping_pong:
                spot = _first_fit(live, size, pool_bytes) if top else _last_fit(live, size, pool_bytes)
        if spot is not None:
            live.append((last, spot, size))
            pooled[buf.id] = spot
    return pooled


def _last_fit(live: list[tuple[int, int, int]], size: int, limit: int) -> int | None:
    """The highest 64-byte-aligned offset where ``size`` bytes fit below ``limit``, or None."""
    merged: list[list[int]] = []  # the live spans as disjoint, sorted unions
    for start, end in sorted((off, align_up(off + sz)) for _, off, sz in live):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    ceiling = limit
    for start, end in reversed(merged):
        spot = (ceiling - size) // 64 * 64
        if spot >= end:
            return spot
        ceiling = min(ceiling, start)
    spot = (ceiling - size) // 64 * 64
    return spot if spot >= 0 else None


def _first_fit(live: list[tuple[int, int, int]], size: int, limit: int | None) -> int | None:
    """The lowest 64-byte-aligned offset where ``size`` bytes fit (below ``limit``), or None."""
    if not live:
        return 0 if limit is None or size <= limit else None
    spans = sorted((off, off + sz) for _, off, sz in live)
    cursor = 0
    for start, end in spans:
        if start - cursor >= size:
            break
        cursor = max(cursor, align_up(end))
    if limit is not None and cursor + size > limit:
        return None
    return cursor
