"""Compiled programs as H13 command buffers: task descriptors, weights and a sidecar.

The buffer has the layout the Linux driver submits and ``anesim.load(path, sidecar=...)``
reads (docs/program-format.md, raw buffers): task descriptors from offset 0, 0x300 apart, each
the seven register groups of the v4-v7 compilers (command-stream.md §3.2), then the weights at
the next 16-byte boundary as slot 1. Register values come from :mod:`anesim.compiler.backend.h13`.

Only what the H13 register map is known to express is written; a task that needs more (a bias
vector - the H13 bias channel is not established - planar pooling, run-time weights, constants
read by the tile DMA, on-chip pool residency) is refused with the reason, rather than encoded
wrongly. :func:`emit_h13` is shared with the ``.hwx`` writer (:mod:`anesim.compiler.backend.h13_hwx`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from anesim.compiler.backend.h13 import TD_BYTES, TD_PITCH, task_fields
from anesim.compiler.lowering.kernels import pack_per_core
from anesim.compiler.lowering.memory import CONSTANT_SLOT, KERNEL_SLOT
from anesim.errors import UnsupportedError
from anesim.hwx.tables import encode_table
from anesim.program.model import Program, Task

if TYPE_CHECKING:  # the writers take a compiled result; the result module imports the backend
    from anesim.compiler.result import CompileResult

# (block, first register address, words): the canonical group order (command-stream.md §3.2)
GROUPS = (("KernelDMASrc", 0x1F800, 62), ("Common", 0x0, 16), ("TileDMASrc", 0x13800, 28),
          ("L2", 0x4800, 18), ("PE", 0x8800, 4), ("NE", 0xC800, 5), ("TileDMADst", 0x17800, 7))
LUT_RECORD = 0x80
PLANAR_OK = ("add", "mul", "max", "min")


def _refuse(task: Task, why: str) -> UnsupportedError:
    return UnsupportedError(f"cannot encode task {task.index} ('{task.name}') for H13: {why}",
                            expected="tasks the H13 register map expresses (see docs/compiler.md)")


def _check(program: Program, task: Task) -> None:
    layouts = list(task.sources) + [task.result]
    if any(layout.space == "pool" for layout in layouts):
        raise _refuse(task, "its data stays in the on-chip pool, whose H13 encoding is not established")
    if any(layout.offset_bytes % 64 for layout in layouts):
        raise _refuse(task, "a tile starts inside a 64-byte DMA granule (the base registers count 64 bytes)")
    if any(layout.slot == CONSTANT_SLOT for layout in layouts):
        raise _refuse(task, "it reads a constant tensor through the tile DMA")
    ne = task.ne
    if ne is not None:
        if ne.bias is not None:
            raise _refuse(task, "it has a bias vector and the H13 bias channel is not established")
        if ne.kernel is not None and ne.kernel.placement is not None or (ne.op == "conv" and ne.kernel is None):
            raise _refuse(task, "its weights are read from a tensor at run time")
        if ne.kernel is not None and ne.kernel.format != "fp16":
            raise _refuse(task, f"{ne.kernel.format} kernels are not written yet")
        if ne.kernel is not None and getattr(ne.kernel, "sparse_mask", None) is not None:
            raise _refuse(task, "its kernel is pruned (sparse) and the H13 sparse-kernel encoding is not established")
        if ne.kernel is not None and ne.activation == "lut":
            raise _refuse(task, "its activation table would share coefficient channel 0 with its kernel; "
                                "where H13 fetches a convolution's table is not established")
    if task.planar is not None and task.planar.op not in PLANAR_OK:
        raise _refuse(task, f"the planar configuration of '{task.planar.op}' is not established")
    if ne is not None and task.planar is not None:
        raise _refuse(task, "it uses the NE and the planar engine together")


def _table_bytes(task: Task) -> bytes:
    words = encode_table(task.ne.table)  # type: ignore[union-attr, arg-type]
    if words is None:
        raise _refuse(task, "its activation table's knot span or fold has no H13 table encoding")
    raw = words.astype("<u2").tobytes()
    return raw + bytes(LUT_RECORD - len(raw))


def _words(fields: dict[str, int], regmap: Any, base: int, count: int) -> list[int]:
    out = []
    for addr in range(base, base + 4 * count, 4):
        reg = regmap.lookup(addr)
        if reg is None:
            out.append(fields.get(f"{addr:#x}", 0) & 0xFFFFFFFF)
        elif reg.fields:
            word = 0
            for f in reg.fields:
                word |= (fields.get(f"{reg.name}.{f.name}", 0) & ((1 << f.width) - 1)) << f.lo
            out.append(word)
        else:
            out.append(fields.get(reg.name, 0) & 0xFFFFFFFF)
    return out


def encode_task(fields: dict[str, int], regmap: Any) -> bytes:
    """One task descriptor: the 10 header words, then the seven register groups."""
    header = []
    for reg in regmap.header[:regmap.header_words]:
        word = 0
        for f in reg.fields:
            word |= (fields.get(f"Header.{f.name}", 0) & ((1 << f.width) - 1)) << f.lo
        header.append(word)
    words = list(header)
    for _, base, count in GROUPS:
        words.append(((count - 1) << 26) | base)
        words.extend(_words(fields, regmap, base, count))
    data = np.asarray(words, "<u4").tobytes()
    assert len(data) == TD_BYTES
    return data


@dataclass
class H13Emission:
    """What the H13 encoder produced for one program: command stream, weights, fields, buffers."""

    command: bytes  # the task descriptors, 0x300 apart from offset 0
    weights: bytes  # every task's kernel (per core) or lookup table, read through slot 1
    fields: list[dict[str, int]]  # the register fields each task descriptor was encoded from
    weight_blocks: list[tuple[int, int, list[bytes]]]  # (task, offset in weights, per-core chunks)
    buffers: list[dict[str, Any]]  # host buffers by slot: name, role, shape, dtype, strides, bytes


def emit_h13(result: CompileResult) -> H13Emission:
    """Encode every task of a compiled single-dispatch H13 program (refusing what H13 cannot express)."""
    from anesim.hwx.regmaps import load_map

    program = result.program
    if program.generation != "H13":
        raise UnsupportedError(f"command buffers are written for H13 only, not {program.generation}",
                               expected="--chip m1 (or another H13 chip), or a .json output")
    if len(result.segments) > 1:
        raise UnsupportedError("the model runs in several segments; a command buffer holds one dispatch")
    regmap = load_map("h13")
    weights = bytearray()
    offsets = []
    blocks: list[tuple[int, int, list[bytes]]] = []
    for task in program.tasks:
        _check(program, task)
        if task.ne is not None and task.ne.kernel is not None:
            offsets.append(len(weights))
            chunks = [bytes(c) for c in pack_per_core(task.ne.kernel, task.cores_used, task.ocg_size)]
            blocks.append((task.index, len(weights), chunks))
            for chunk in chunks:
                weights += chunk
        elif task.ne is not None and task.ne.activation == "lut":
            offsets.append(len(weights))
            blocks.append((task.index, len(weights), [_table_bytes(task)]))
            weights += _table_bytes(task)
        else:
            offsets.append(-1)
    tds = []
    all_fields = []
    for index in range(len(program.tasks)):
        fields = task_fields(program, index, offsets[index])
        if offsets[index] >= 0 and program.tasks[index].ne.kernel is None:  # type: ignore[union-attr]
            fields["KernelDMASrc.CoeffBaseAddr[0].Addr"] = offsets[index] // 64
        all_fields.append(fields)
        tds.append(encode_task(fields, regmap))
    command = bytearray()
    for i, td in enumerate(tds):
        if i:
            command += bytes(TD_PITCH * i - len(command))
        command += td
    buffers = []
    for spec in program.tensors.values():
        layout = spec.layout()
        size = program.slots[spec.slot].size_bytes if spec.slot in program.slots else layout.span_bytes
        buffers.append({"slot": spec.slot, "name": spec.name, "role": spec.role, "shape": list(spec.shape),
                        "dtype": spec.dtype, "row_stride": layout.row_stride_bytes,
                        "plane_stride": layout.plane_stride_bytes, "bytes": size})
    for index, slot in program.slots.items():
        if index not in (KERNEL_SLOT,) and all(b["slot"] != index for b in buffers):
            buffers.append({"slot": index, "name": f"slot{index}", "role": slot.role, "bytes": slot.size_bytes})
    return H13Emission(bytes(command), bytes(weights), all_fields, blocks,
                       sorted(buffers, key=lambda b: b["slot"]))


def encode_raw(result: CompileResult) -> tuple[bytes, dict[str, Any]]:
    """The H13 command buffer of a compiled program and its sidecar document."""
    emitted = emit_h13(result)
    command, weights = emitted.command, emitted.weights
    weights_offset = -(-len(command) // 16) * 16
    data = command + bytes(weights_offset - len(command)) + weights
    sidecar = {
        "format": "anesim-raw-sidecar", "version": 1, "name": result.program.name, "generation": "H13",
        "command": {"size": hex(len(command)), "first_task_size": hex(TD_BYTES), "tasks": len(emitted.fields)},
        "weights": {"offset": hex(weights_offset), "size": hex(len(weights))},
        "buffers": emitted.buffers,
    }
    return data, sidecar
