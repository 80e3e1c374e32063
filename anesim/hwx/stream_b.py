"""Encoding B task streams (H14 and later): dense and sparse word-address register groups.

The command buffer opens with a 16-byte segment header, then tasks follow back to back, each
padded to a 16-byte boundary. A task header (8 words on H14/H15, 9 on H16+, one more with TDE)
carries the task's own length in words. Groups address registers by *word* index:

* dense (bit 31 clear): ``[20:15] = words - 1``, ``[14:0]`` = first word index, then the
  values of consecutive registers. Bits [30:21] ("tag") are non-zero exactly on writes of DMA
  base addresses; bit 29 set with ``[28:23]`` = a buffer slot is read as "patch this write with
  that slot's address at load time" (derived from the samples; command-stream.md §3.3, Q1).
* sparse (bit 31 set): ``[30:15]`` = 16-bit mask, ``[14:0]`` = base index; writes the base
  register, then register base+1+b for every set bit b, in ascending order.
"""

from __future__ import annotations

from typing import Any

from anesim.hwx.binary import Reader, pack_u32
from anesim.hwx.fields import register_from_json, register_to_json, word_to_json
from anesim.hwx.jsonform import Doc, hexnum
from anesim.hwx.regmaps import RegisterMap
from anesim.hwx.stream_a import Stream
from anesim.hwx.tasks import DecodedTask, encode_items, gap_item, header_fields, header_has_ext, header_from_json

ALIGN = 16


def reloc_of(tag: int) -> int | None:
    """The buffer slot a dense group's tag binds its writes to, or None for untagged writes."""
    return (tag >> 2) & 0x3F if (tag >> 8) & 1 else None


def decode_task(reader: Reader, base: int, offset: int, regmap: RegisterMap, index: int, limit: int) -> DecodedTask:
    """Decode the task at ``base + offset``; it may not extend past ``limit`` (stream length)."""
    at = base + offset
    first = reader.u32(at, "task header")
    size = 4 * ((first >> 16) & 0x7FF)
    hdr_bytes = 4 * regmap.header_words
    if size < hdr_bytes or offset + size > limit:
        raise reader.error(f"task {index} has an impossible length", at,
                           expected=f"{hdr_bytes:#x}..{limit - offset:#x} bytes", found=f"{size:#x} bytes (header {first:#010x})")
    words = reader.words(at, regmap.header_words, "task header")
    if header_has_ext(regmap, words):
        if size < hdr_bytes + 4:
            raise reader.error("task has TDE set but no room for its DTID word", at, found=f"{size:#x} bytes")
        words.append(reader.u32(at + hdr_bytes, "DTID word"))
    pos = 4 * len(words)
    groups: list[dict[str, Any]] = []
    writes: list[tuple[int, int]] = []
    relocs: list[tuple[int, int, int]] = []
    while pos < size:
        head = reader.u32(at + pos, "group header")
        first_word = head & 0x7FFF
        group: dict[str, Any]
        if head >> 31:
            mask = (head >> 15) & 0xFFFF
            addrs = [4 * first_word] + [4 * (first_word + 1 + b) for b in range(16) if (mask >> b) & 1]
            group = {"kind": "sparse", "word": hexnum(first_word)}
        else:
            count = ((head >> 15) & 0x3F) + 1
            addrs = [4 * (first_word + i) for i in range(count)]
            tag = (head >> 21) & 0x3FF
            group = {"kind": "dense", "word": hexnum(first_word)}
            if tag:
                group["tag"] = hexnum(tag)
                slot = reloc_of(tag)
                if slot is not None:
                    relocs.append((addrs[0], count, slot))
        if pos + 4 + 4 * len(addrs) > size:
            raise reader.error(f"register group of task {index} runs past the end of the task", at + pos,
                               expected=f"at most {(size - pos - 4) // 4} words", found=f"{len(addrs)} words (header {head:#010x})")
        values = reader.words(at + pos + 4, len(addrs), "register values")
        group["offset"] = hexnum(offset + pos)
        block = regmap.block_of(addrs[0])
        if block is not None:
            group["block"] = block.name
        group["registers"] = [register_to_json(regmap, a, v) for a, v in zip(addrs, values)]
        writes.extend(zip(addrs, values))
        groups.append(group)
        pos += 4 + 4 * len(addrs)
    header = [word_to_json(regmap.header[i] if i < len(regmap.header) else None, w) for i, w in enumerate(words)]
    doc = {"kind": "task", "index": index, "offset": hexnum(offset), "size": hexnum(size), "header": header, "groups": groups}
    return DecodedTask(index, offset, size, words, header_fields(regmap, words), writes, relocs, doc)


def decode(reader: Reader, base: int, length: int, regmap: RegisterMap, segment_header_bytes: int,
           expected_count: int | None = None) -> Stream:
    """Decode the segment header and every task in the ``length`` bytes at ``base``."""
    reader.need(base, length, "command stream")
    if length < segment_header_bytes:
        raise reader.error("command stream is shorter than its segment header", base,
                           expected=f">= {segment_header_bytes} bytes", found=f"{length} bytes")
    seg = reader.words(base, segment_header_bytes // 4, "segment header")
    items: list[dict[str, Any]] = []
    tasks: list[DecodedTask] = []
    offset = segment_header_bytes
    while offset < length:
        if length - offset < 4 or reader.u32(base + offset) == 0:
            # A zero word where a header belongs is padding: it runs to the next non-zero byte,
            # which must start a task on a 16-byte boundary.
            nz = _next_nonzero(reader.data, base + offset, base + length) - base
            if nz < length and nz % ALIGN:
                raise reader.error("expected a task header on a 16-byte boundary", base + nz,
                                   found=f"data at stream offset {nz:#x}")
            items.append(gap_item(reader.take(base + offset, nz - offset), offset))
            offset = nz
            continue
        task = decode_task(reader, base, offset, regmap, len(tasks), length)
        tasks.append(task)
        items.append(task.doc)
        end = offset + task.size
        padded = min(-(-end // ALIGN) * ALIGN, length)
        if padded > end:
            items.append(gap_item(reader.take(base + end, padded - end), end))
        offset = padded
    notes = []
    if expected_count is not None and expected_count != len(tasks):
        notes.append(f"the container declares {expected_count} tasks; the stream holds {len(tasks)}")
    doc = {"encoding": "B", "segment_header": [f"{w:#010x}" for w in seg], "items": items}
    return Stream(doc, tasks, notes)


def _next_nonzero(data: bytes, start: int, stop: int) -> int:
    chunk = data[start:stop]
    stripped = chunk.lstrip(b"\0")
    return stop - len(stripped)


def encode_task(doc: Doc, regmap: RegisterMap) -> bytes:
    """The bytes of one task in JSON form."""
    out = [*header_from_json(doc.get("header"), regmap)]
    for gdoc in doc.get("groups").items():
        kind = gdoc.get("kind").str()
        first = gdoc.get("word").int(0, 0x7FFF)
        regs = [register_from_json(r, regmap) for r in gdoc.get("registers").items()]
        rdocs = gdoc.get("registers").items()
        if not regs:
            raise gdoc.get("registers").error("a group holds at least one register")
        if regs[0][0] != 4 * first:
            raise rdocs[0].get("addr").error("the first register must sit at the group's word index",
                                             expected=hexnum(4 * first), found=hexnum(regs[0][0]))
        if kind == "dense":
            if len(regs) > 64:
                raise gdoc.get("registers").error("a dense group holds at most 64 registers", found=len(regs))
            for i, (addr, _) in enumerate(regs):
                if addr != 4 * (first + i):
                    raise rdocs[i].get("addr").error("dense group registers must be consecutive",
                                                     expected=hexnum(4 * (first + i)), found=hexnum(addr))
            tag = gdoc.get("tag", 0).int(0, 0x3FF)
            head = (tag << 21) | ((len(regs) - 1) << 15) | first
        elif kind == "sparse":
            mask = 0
            prev = -1
            for i, (addr, _) in enumerate(regs[1:], start=1):
                bit = addr // 4 - first - 1
                if addr % 4 or not 0 <= bit < 16 or bit <= prev:
                    raise rdocs[i].get("addr").error("sparse group registers must ascend within 16 words after the base",
                                                     expected=f"{hexnum(4 * (first + 1))}..{hexnum(4 * (first + 16))}",
                                                     found=hexnum(addr))
                mask |= 1 << bit
                prev = bit
            head = (1 << 31) | (mask << 15) | first
        else:
            raise gdoc.get("kind").error("unknown group kind", expected="'dense' or 'sparse'", found=kind)
        out.append(head)
        out.extend(v for _, v in regs)
    declared = (out[0] >> 16) & 0x7FF
    if declared != len(out):
        raise doc.get("header").error("TaskSize in the header does not match the task's encoded length",
                                      expected=f"{len(out)} words", found=f"{declared} words")
    return pack_u32(out)


def encode(doc: Doc, regmap: RegisterMap) -> bytes:
    """The command stream bytes of a decoded encoding-B stream."""
    seg = [d.int(0, 0xFFFFFFFF) for d in doc.get("segment_header").items()]
    return encode_items(doc, regmap, encode_task, [pack_u32(seg)])
