"""Encoding A task streams (M10, H11, T0, H12, H13): count/byte-address register groups.

A task is a fixed header (7 words on the v4-v6 family, 10 on H13, one more when TDE is set)
followed by groups. A group is one word ``[31:26] = words - 1, [25:0] = byte address of the
first register`` and then that many values for consecutive registers. A task's length is not in
the task itself: the first one's comes from the container (LC_THREAD ``td_words``) or the raw
buffer's sidecar, later ones from the previous header's NextSize; NextPointer says where the
next task starts. We follow that chain and walk each task group by group, so compilers that
split or reorder groups (the macOS 26 H13 output) decode the same way as older ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anesim.hwx.binary import Reader, pack_u32
from anesim.hwx.fields import register_from_json, register_to_json, word_to_json
from anesim.hwx.jsonform import Doc, hexnum
from anesim.hwx.regmaps import RegisterMap
from anesim.hwx.tasks import DecodedTask, encode_items, gap_item, header_fields, header_has_ext, header_from_json

MAX_GROUP_WORDS = 64


@dataclass
class Stream:
    """A decoded command stream: its JSON form, its tasks and anything odd noticed on the way."""

    doc: dict[str, Any]
    tasks: list[DecodedTask]
    notes: list[str] = field(default_factory=list)


def decode_task(reader: Reader, base: int, offset: int, size: int, regmap: RegisterMap, index: int) -> DecodedTask:
    """Decode the task of ``size`` bytes at ``base + offset`` group by group."""
    at = base + offset
    hdr_bytes = 4 * regmap.header_words
    if size % 4 or size < hdr_bytes:
        raise reader.error("task length is not a whole number of words at least as long as its header", at,
                           expected=f"a multiple of 4 >= {hdr_bytes:#x}", found=f"{size:#x}")
    reader.need(at, size, f"task {index}")
    words = reader.words(at, regmap.header_words, "task header")
    if header_has_ext(regmap, words):
        if size < hdr_bytes + 4:
            raise reader.error("task has TDE set but no room for its DTID word", at, found=f"{size:#x} bytes")
        words.append(reader.u32(at + hdr_bytes, "DTID word"))
    pos = 4 * len(words)
    groups: list[dict[str, Any]] = []
    writes: list[tuple[int, int]] = []
    while pos < size:
        head = reader.u32(at + pos, "group header")
        count = (head >> 26) + 1
        addr = head & 0x3FFFFFF
        if pos + 4 + 4 * count > size:
            raise reader.error(f"register group of task {index} runs past the end of the task", at + pos,
                               expected=f"at most {(size - pos - 4) // 4} words", found=f"{count} words (header {head:#010x})")
        values = reader.words(at + pos + 4, count, "register values")
        regs = []
        for i, value in enumerate(values):
            regs.append(register_to_json(regmap, addr + 4 * i, value))
            writes.append((addr + 4 * i, value))
        block = regmap.block_of(addr)
        group: dict[str, Any] = {"addr": hexnum(addr), "offset": hexnum(offset + pos)}
        if block is not None:
            group["block"] = block.name
        group["registers"] = regs
        groups.append(group)
        pos += 4 + 4 * count
    header = [word_to_json(regmap.header[i] if i < len(regmap.header) else None, w) for i, w in enumerate(words)]
    doc = {"kind": "task", "index": index, "offset": hexnum(offset), "size": hexnum(size), "header": header, "groups": groups}
    return DecodedTask(index, offset, size, words, header_fields(regmap, words), writes, doc=doc)


def decode(reader: Reader, base: int, length: int, regmap: RegisterMap, first_size: int,
           expected_count: int | None = None) -> Stream:
    """Decode the chain of tasks in the ``length`` bytes at ``base`` (the command buffer)."""
    reader.need(base, length, "command stream")
    items: list[dict[str, Any]] = []
    tasks: list[DecodedTask] = []
    notes: list[str] = []
    offset, size, end = 0, first_size, 0
    # Each task starts after the previous one ends, so the chain is at most length / 4 long.
    while True:
        if offset + size > length:
            raise reader.error(f"task {len(tasks)} runs past the end of the command stream", base + offset,
                               expected=f"{size:#x} bytes", found=f"{length - offset:#x} bytes left")
        task = decode_task(reader, base, offset, size, regmap, len(tasks))
        tasks.append(task)
        items.append(task.doc)
        end = offset + size
        h = task.header
        nxt = h.get("NextPointer", 0)
        if h.get("EON", 0) or nxt == 0:
            break
        if nxt < end or nxt >= length:
            raise reader.error(f"task {task.index} points to a next task that overlaps it or lies outside the stream",
                               base + offset + 4 * _word_of(regmap, "NextPointer"),
                               expected=f"{end:#x} <= NextPointer < {length:#x}", found=f"{nxt:#x}")
        if nxt > end:
            items.append(gap_item(reader.take(base + end, nxt - end), end))
        offset, size = nxt, 4 * (h.get("NextSize", 0) + 1)
    if end < length:
        items.append(gap_item(reader.take(base + end, length - end), end))
    if expected_count is not None and expected_count != len(tasks):
        notes.append(f"the container declares {expected_count} tasks; the chain holds {len(tasks)}")
    doc = {"encoding": "A", "first_task_size": hexnum(first_size), "items": items}
    return Stream(doc, tasks, notes)


def _word_of(regmap: RegisterMap, field_name: str) -> int:
    for reg in regmap.header:
        if any(f.name == field_name for f in reg.fields):
            return reg.addr // 4
    return 0


def encode_task(doc: Doc, regmap: RegisterMap) -> bytes:
    """The bytes of one task in JSON form."""
    out = [*header_from_json(doc.get("header"), regmap)]
    for gdoc in doc.get("groups").items():
        addr = gdoc.get("addr").int(0, 0x3FFFFFF)
        regs = gdoc.get("registers").items()
        if not 1 <= len(regs) <= MAX_GROUP_WORDS:
            raise gdoc.get("registers").error("a group holds 1 to 64 registers", found=len(regs))
        values = []
        for i, rdoc in enumerate(regs):
            raddr, value = register_from_json(rdoc, regmap)
            if raddr != addr + 4 * i:
                raise rdoc.get("addr").error("registers of a group must be consecutive from the group address",
                                             expected=hexnum(addr + 4 * i), found=hexnum(raddr))
            values.append(value)
        out.append(((len(values) - 1) << 26) | addr)
        out.extend(values)
    return pack_u32(out)


def encode(doc: Doc, regmap: RegisterMap) -> bytes:
    """The command stream bytes of a decoded encoding-A stream."""
    return encode_items(doc, regmap, encode_task, [])
