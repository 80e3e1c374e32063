"""Engine ops -> tasks of the program model, with slots, layouts and kernels.

Each engine op becomes one task, or several when its weights exceed what one task's kernel DMA
may stream (guide ch. 24 kernel-memory split: the layer is cut by output channels into
sub-layers, each writing its share of the result).

A matrix product whose weights come from a tensor is an NE ``conv`` whose kernel is read at run
time. When the tensor holds one row per output channel (``(C=1, H=C_out, W=C_in)``, the form of
Apple's H13 matmul sample) the kernel is a :class:`KernelPlacement` in the tensor's slot. When
it holds the transpose, planes ``(C=C_in, H=1, W=C_out)``, no placement can describe it and the
task has no kernel and a second source, the weight tensor (``docs/compiler.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from anesim.chips.schema import ChipConfig
from anesim.compiler.lowering.capability import Limits
from anesim.compiler.lowering.eops import EOp, NeSpec, PlanarSpec
from anesim.compiler.lowering.kernels import KernelSource, make_kernel, pack_per_core, per_core_bytes
from anesim.compiler.lowering.memory import (
    CONSTANT_SLOT, KERNEL_SLOT, Access, LazySlot, Placement, pack_tensor, plan_memory,
)
from anesim.compiler.lowering.tile import NePlan, plan, plan_key
from anesim.compiler.lowering.views import Buffer, View
from anesim.frozen import frozen_instance
from anesim.program.model import (
    Kernel, KernelPlacement, Layout, NeStage, PlanarStage, Program, Slot, Task, TensorSpec, align_up,
)


@dataclass
class TaskInfo:
    """What the report needs to know about one emitted task beyond the model."""

    eop_name: str
    where: str
    plan: NePlan
    kernel_offset: int = -1  # byte offset of the task's kernel in slot 1
    fused: tuple[str, ...] = ()


def _fp16_bits(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(values, np.float32).astype(np.float16).view(np.uint16).copy()


def split_for_kernel_cap(eop: EOp, limits: Limits) -> list[EOp]:
    """One op, or several along output channels when its weights exceed the per-task cap."""
    ne = eop.ne
    if ne is None or ne.op == "bypass":
        return [eop]
    cout = eop.dest.c
    if ne.kernel is not None:
        shape = ne.kernel.shape
        bits = ne.kernel.bits_per_weight
    elif eop.weights_view is not None:
        shape = (cout, eop.sources[0].c, 1, 1)
        bits = 16
    else:
        return [eop]
    per_channel = align_up(-(-shape[1] * shape[2] * shape[3] * bits // 8))
    if per_channel * cout <= limits.kernel_task_bytes:
        return [eop]
    # Equal shares, each a multiple of 16 channels when that still fits the cap.
    parts = -(-per_channel * cout // limits.kernel_task_bytes)
    chunk = max(1, -(-cout // parts))
    rounded = -(-chunk // 16) * 16
    if rounded * per_channel <= limits.kernel_task_bytes:
        chunk = rounded
    while chunk * per_channel > limits.kernel_task_bytes and chunk > 1:
        chunk -= 1
    out = []
    for start in range(0, cout, chunk):
        stop = min(cout, start + chunk)
        part = replace(eop, dest=eop.dest._replace(offset=eop.dest.offset + start * eop.dest.sc, c=stop - start))
        sub = replace(ne, fused=list(ne.fused))
        if ne.kernel is not None:
            sub.kernel = ne.kernel.slice_out(start, stop)
        if ne.bias is not None and len(ne.bias) == cout:
            sub.bias = ne.bias[start:stop]
        part.ne = sub
        if eop.weights_view is not None:
            w = eop.weights_view
            if eop.weights_by_row:
                part.weights_view = w._replace(offset=w.offset + start * w.sh, h=stop - start)
            else:
                part.weights_view = w._replace(offset=w.offset + start * w.elem, w=stop - start)
        out.append(part)
    return out


# Task's fields in order; the last, ``fields`` (decoded register fields), is empty for a compiled task.
_TASK_FIELDS = tuple(f.name for f in fields(Task))
assert _TASK_FIELDS[-1] == "fields"
# _Shared.layout unpacks views and placements by position (read for every task): their fields
# must stay in this order.
assert View._fields == ("buffer", "offset", "n", "c", "h", "w", "sn", "sc", "sh", "elem")
assert Placement._fields == ("space", "slot", "offset")


def _task(*values: object) -> Task:
    """``Task(*values)``, made without the frozen dataclass's ``__init__`` (:mod:`anesim.frozen`):
    its per-field ``object.__setattr__`` was a tenth of emitting a model of 8,000 tasks."""
    assert len(values) == len(_TASK_FIELDS) - 1
    return frozen_instance(Task, {**dict(zip(_TASK_FIELDS, values)), "fields": {}})


# Planar ops whose result element i reads only element i of each source.
POINTWISE_PLANAR = ("add", "sub", "mul", "div", "max", "min", "copy", "abs")


def _weight_bytes(eop: EOp) -> int:
    """Bytes of a layer's weight operand: its stored kernel, or the tensor read as weights."""
    if eop.weights_view is not None:
        w = eop.weights_view
        return w.elements * w.elem
    k = eop.ne.kernel if eop.ne is not None else None
    if k is None:
        return 0
    elems = k.shape[0] * k.shape[1] * k.shape[2] * k.shape[3]
    if k.format == "palette":
        return -(-elems * max(1, k.palette_bits) // 8)
    return elems * (1 if k.format in ("int8", "uint8") else 2)


def _access(eop: EOp, streams: bool) -> Access:
    """What a task reads and writes, for the memory plan."""
    w = eop.weights_view
    if w is None:
        return Access(tuple(eop.sources), eop.dest, eop.engine, (), _pointwise(eop), streams)
    return Access((*eop.sources, w), eop.dest, eop.engine, (w,), False, streams)  # never pointwise


def _pointwise(eop: EOp) -> bool:
    """True when every result element depends only on the same element of the sources."""
    if eop.weights_view is not None:
        return False
    if eop.ne is not None and eop.ne.op not in ("elementwise", "bypass"):
        return False
    if eop.planar is not None and eop.planar.op not in POINTWISE_PLANAR:
        return False
    dims = eop.dest.dims
    for v in eop.sources:
        if v.dims != dims:
            return False
    return True


class ProgramEmitter:
    """Assembles a :class:`Program` from lowered buffers and engine ops."""

    def __init__(self, chip: ChipConfig, limits: Limits, buffers: list[Buffer], name: str,
                 generation: str, source: str) -> None:
        self.chip = chip
        self.limits = limits
        self.buffers = buffers
        self.name = name
        self.generation = generation
        self.source = source

    def emit(self, eops: list[EOp], output_order: list[str], input_order: list[str],
             tensor_shapes: dict[str, tuple[int, ...]], notes: list[str],
             cores: int | None = None, chain: bool = True) -> tuple[Program, list[TaskInfo], list[int]]:
        """The program, per-task info, and for each engine op the index of its first task."""
        cores_available = cores or self.limits.cores
        expanded: list[tuple[EOp, NePlan]] = []
        first_task: list[int] = []
        accesses: list[Access] = []
        cap = self.chip.memory.working_set_cap_bytes.value
        plans: dict[tuple, NePlan] = {}  # by plan_key: equal geometry, equal (shared, frozen) plan
        for eop in eops:
            first_task.append(len(expanded))
            if eop.weights_view is None and (eop.ne is None or eop.ne.kernel is None):
                parts, big = (eop,), False  # no weights (most ops of a large model): one task
            else:
                parts = split_for_kernel_cap(eop, self.limits)
                big = _weight_bytes(eop) > cap  # the layer's weights stream (each of its tasks)
            for part in parts:
                key = plan_key(part)
                found = plans.get(key)
                if found is None:
                    found = plans[key] = plan(self.chip, part, cores_available)
                expanded.append((part, found))
                accesses.append(_access(part, big))
        placements, slot_sizes = plan_memory(
            self.buffers, accesses, self.chip.memory.pool_bytes.value,
            self.chip.memory.working_set_cap_bytes.value, output_order, input_order, chain)
        tasks: list[Task] = []
        infos: list[TaskInfo] = []
        kernel_parts: list[tuple[int, object, int, int]] = []
        kernel_top = 0
        shared = _Shared(self, placements)
        for index, (eop, p) in enumerate(expanded):
            ne = None
            kernel_offset = -1
            fused: tuple[str, ...] = ()
            spec = eop.ne
            if spec is not None:
                fused = tuple(spec.fused)
                kernel = make_kernel(spec.kernel, p.cores, p.ocg) if spec.kernel is not None else None
                if kernel is not None:
                    kernel_offset = kernel_top
                    kernel_parts.append((kernel_top, kernel, p.cores, p.ocg))
                    kernel_top = align_up(kernel_top + kernel.dram_bytes)
                elif eop.weights_view is not None and eop.weights_by_row:
                    kernel = self.runtime_kernel(eop, placements)
                bias = None
                if spec.bias is not None:
                    bias = _fp16_bits(np.broadcast_to(spec.bias, (eop.dest.c,)) if spec.bias.size in (1, eop.dest.c)
                                      else spec.bias)
                ne = shared.ne_stage(spec, kernel, bias)
            planar = shared.planar_stage(eop.planar) if eop.planar is not None else None
            views = eop.sources
            if eop.weights_view is not None and (ne is None or ne.kernel is None):
                views = [*views, eop.weights_view]
            kind = (ne.op if ne is not None else planar.op) if (ne or planar) else "copy"  # type: ignore[union-attr]
            tasks.append(_task(index, shared.sources(views), shared.layout(eop.dest), ne, planar,
                               p.cores, p.ocg, p.tile_height, p.winograd, f"{eop.name}:{kind}"))
            infos.append(TaskInfo(eop.name, eop.where, p, kernel_offset, fused))
        slots = self._slots(slot_sizes, placements, kernel_parts, kernel_top)
        tensors = self._tensors(placements, tensor_shapes, output_order, input_order)
        program = Program(self.name, self.generation, tasks, tensors, slots, self.source, list(notes))
        return program, infos, first_task

    def runtime_kernel(self, eop: EOp, placements: dict[int, Placement]) -> Kernel:
        """A kernel read at run time from a tensor holding one row per output channel."""
        w = eop.weights_view
        assert w is not None
        place = placements[w.buffer]
        assert place.space == "dram", "run-time weights are read from DRAM by the kernel DMA"
        shape = (w.h, w.w, 1, 1)
        placement = KernelPlacement(place.slot, (place.offset + w.offset,), (w.h * w.sh,), 1, 1, w.sh,  # type: ignore[arg-type]
                                    shape)
        return Kernel("fp16", None, dram_bytes=w.h * w.w * w.elem, placement=placement)

    def layout(self, view: View, placements: dict[int, Placement]) -> Layout:
        """The program-model layout of a view."""
        buf = self.buffers[view.buffer]
        place = placements[view.buffer]
        plane = view.sc if view.c > 1 else max(view.sc, align_up(view.sh * view.h))
        return Layout(place.space, place.slot, place.offset + view.offset, view.c, view.h, view.w,  # type: ignore[arg-type]
                      buf.dtype, view.sh, plane, 1, plane * view.c, 1, plane * view.c)  # type: ignore[arg-type]

    def _slots(self, sizes: dict[int, int], placements: dict[int, Placement],
               kernel_parts: list[tuple[int, object, int, int]], kernel_top: int) -> dict[int, Slot]:
        slots: dict[int, Slot] = {}
        if kernel_top:
            def pack_kernels(parts: list[tuple[int, object, int, int]] = kernel_parts, size: int = kernel_top) -> bytes:
                blob = bytearray(size)
                for offset, kernel, cores, ocg in parts:
                    if getattr(kernel, "is_sparse", False):
                        continue  # no encoding of pruned kernels is established; the task carries them
                    pos = offset
                    for chunk in pack_per_core(kernel, cores, ocg):  # type: ignore[arg-type]
                        blob[pos:pos + len(chunk)] = chunk
                        pos += len(chunk)
                return bytes(blob)

            slots[KERNEL_SLOT] = LazySlot(KERNEL_SLOT, align_up(kernel_top, 0x4000), "constant", pack_kernels)
        consts = [b for b in self.buffers if b.role == "constant"]
        if consts:
            def pack_consts(bufs: list[Buffer] = consts, size: int = sizes[CONSTANT_SLOT]) -> bytes:
                blob = bytearray(size)
                for buf in bufs:
                    off = placements[buf.id].offset
                    data = pack_tensor(buf.data.array(), buf)  # type: ignore[union-attr]
                    blob[off:off + len(data)] = data
                return bytes(blob)

            slots[CONSTANT_SLOT] = LazySlot(CONSTANT_SLOT, sizes[CONSTANT_SLOT], "constant", pack_consts)
        io_role: dict[int, str] = {}  # the last I/O buffer placed in a slot names its role
        for buf in self.buffers:
            if buf.role in ("input", "output"):
                io_role[placements[buf.id].slot] = buf.role  # type: ignore[index]
        for index, size in sorted(sizes.items()):
            if index not in slots:
                slots[index] = Slot(index, size, io_role.get(index, "intermediate"))  # type: ignore[arg-type]
        return dict(sorted(slots.items()))

    def _tensors(self, placements: dict[int, Placement], shapes: dict[str, tuple[int, ...]],
                 output_order: list[str], input_order: list[str]) -> dict[str, TensorSpec]:
        tensors: dict[str, TensorSpec] = {}
        for buf in self.buffers:
            if buf.role not in ("input", "output"):
                continue
            place = placements[buf.id]
            shape = shapes.get(buf.name, buf.logical_shape)
            tensors[buf.name] = TensorSpec(buf.name, tuple(shape), buf.dtype, buf.role,  # type: ignore[arg-type]
                                           place.slot or 0, place.offset)
        order = {n: i for i, n in enumerate(input_order + output_order)}
        return dict(sorted(tensors.items(), key=lambda kv: order.get(kv[0], len(order))))


class _Shared:
    """The frozen parts of tasks (layouts, stages without weights), each built once and shared
    by every task that uses an equal one: a large model's tasks repeat a few of them thousands
    of times (every attention tile reads and writes the same pool offsets), and building one
    costs more than looking it up."""

    def __init__(self, emitter: ProgramEmitter, placements: dict[int, Placement]) -> None:
        self.emitter = emitter
        self.placements = placements
        self.dtypes = [buf.dtype for buf in emitter.buffers]  # by buffer id
        self.layouts: dict[tuple, Layout] = {}
        self.planars: dict[tuple, PlanarStage] = {}
        self.nes: dict[tuple, NeStage] = {}

    def layout(self, view: View) -> Layout:
        """The program-model layout of a view."""
        buffer, offset, _, c, h, w, _, sc, sh, _ = view  # unpacked at once: read for every task
        space, slot, base = self.placements[buffer]
        key = (space, slot, base + offset, c, h, w, sh, sc, self.dtypes[buffer])
        found = self.layouts.get(key)
        if found is None:
            found = self.layouts[key] = self.emitter.layout(view, self.placements)
        return found

    def sources(self, views: list[View]) -> tuple[Layout, ...]:
        """The layouts of a task's sources, distinct objects within the task (the timing tells
        a task's first source from the others by identity)."""
        if len(views) == 1:
            return (self.layout(views[0]),)
        out: list[Layout] = []
        for view in views:
            found = self.layout(view)
            for other in out:
                if found is other:
                    found = self.emitter.layout(view, self.placements)
                    break
            out.append(found)
        return tuple(out)

    def planar_stage(self, sp: PlanarSpec) -> PlanarStage:
        """The planar stage of an op."""
        key = (sp.op, sp.relu, sp.pool_hw, sp.pool_stride_hw, sp.pool_padding_tblr)
        found = self.planars.get(key)
        if found is None:
            found = self.planars[key] = PlanarStage(
                sp.op, relu=sp.relu, pool_hw=sp.pool_hw,  # type: ignore[arg-type]
                pool_stride_hw=sp.pool_stride_hw, pool_padding_tblr=sp.pool_padding_tblr)
        return found

    def ne_stage(self, spec: NeSpec, kernel: Kernel | None, bias: np.ndarray | None) -> NeStage:
        """The NE stage of an op; shared only when it has no weights and no bias."""
        def make() -> NeStage:
            return NeStage(spec.op, spec.kernel_hw, spec.stride_hw, spec.padding_tblr,  # type: ignore[arg-type]
                           spec.dilation_hw, spec.groups, kernel, bias, float(spec.post_scale),
                           spec.activation, spec.table)  # type: ignore[arg-type]

        if kernel is not None or bias is not None:
            return make()
        # the table by identity: the cached stage holds it, so the id is not reused meanwhile
        scale = float(spec.post_scale)
        key = (spec.op, spec.kernel_hw, spec.stride_hw, spec.padding_tblr, spec.dilation_hw, spec.groups,
               scale, math.copysign(1.0, scale), spec.activation, id(spec.table))  # -0.0 == 0.0
        found = self.nes.get(key)
        if found is None:
            found = self.nes[key] = make()
        return found


def kernel_bytes_per_core(kernel: KernelSource, cores: int) -> list[int]:
    """Kernel-DMA buffer sizes of each core (for reports)."""
    return per_core_bytes(kernel.shape, kernel.bits_per_weight, cores)
