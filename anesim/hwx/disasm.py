"""Readable listing of a decoded program: summary, then task by task, group by group.

Each register line reads ``address  value  Block.Register  Field=value ...  ; meaning``; enum
fields show their label in parentheses, and registers the map does not name show only the raw
value. Header words read ``Header[i]  value  Field=value ...``.
"""

from __future__ import annotations

from typing import Any

from anesim.hwx.container import Container
from anesim.hwx.fields import describe
from anesim.hwx.raw import RawBuffer
from anesim.hwx.regmaps import RegDef
from anesim.hwx.stream_b import reloc_of
from anesim.hwx.summary import Decoded, summarize


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "?"


def _reg_line(reg: RegDef | None, addr: int | None, value: int, indent: str = "    ") -> str:
    where = f"{addr:#07x}  " if addr is not None else ""
    name = reg.name if reg is not None else "(unnamed)"
    text = f"{indent}{where}{value:08x}  {name}"
    fields = describe(reg, value)
    if fields:
        text += f"  {fields}"
    notes = []
    if reg is not None and reg.meaning:
        notes.append(reg.meaning)
    if reg is not None and reg.conf and reg.conf != "V":
        notes.append(f"conf {reg.conf}")
    if notes:
        text += "  ; " + "; ".join(notes)
    return text


def _int(value: Any) -> int:
    return int(value, 0) if isinstance(value, str) else int(value)


def listing(decoded: Decoded) -> str:
    """The full text listing of a decoded .hwx file or raw buffer."""
    s = summarize(decoded)
    regmap = decoded.regmap
    lines = []
    kind = "raw command buffer" if not isinstance(decoded, Container) else ".hwx program"
    lines.append(f"{decoded.file or '<bytes>'}: {s.generation} {kind} (TD version {s.td_version}, encoding {s.encoding}), "
                 f"{s.tasks} task{'s' if s.tasks != 1 else ''}, {len(decoded.data)} bytes")
    if s.compiler:
        lines.append(f"compiler: {s.compiler}")
    if isinstance(decoded, RawBuffer) and decoded.sidecar.source:
        lines.append(f"source: {decoded.sidecar.source}")
    if s.ne_mask is not None:
        lines.append(f"NE core mask: {s.ne_mask:#x} ({bin(s.ne_mask).count('1')} cores)")
    lines.append(f"register map: {regmap.title}")
    for note in s.notes:
        lines.append(f"note: {note}")

    lines.append("")
    lines.append("buffer slots")
    if s.slots:
        for slot, addr in sorted(s.slots.items()):
            lines.append(f"  slot {slot:<3d} {addr:#012x}")
    lines.append("")
    lines.append("tensors")
    for t in s.tensors:
        slot = "?" if t.slot is None else str(t.slot)
        strides = "/".join(str(x) for x in t.strides) if t.strides else "-"
        lines.append(f"  {t.role:<12} slot {slot:<3} {t.name:<20} {_shape(t.shape):<16} {t.dtype:<6} "
                     f"{t.bytes:#x} bytes  strides {strides}")
    lines.append("")
    lines.append("weights")
    for w in s.weights:
        syms = f", {len(w['symbols'])} symbols" if w["symbols"] else ""
        lines.append(f"  {w['section']:<16} at file {w['file_offset']}: {w['bytes']:#x} bytes, "
                     f"{w['nonzero_bytes']} non-zero{syms}")
    for ch in s.channels:
        lines.append(f"  task {ch.task} kernel channel {ch.channel:<2d} (NE core {ch.channel:<2d}): slot {ch.slot} "
                     f"offset {ch.offset:#x}, {ch.bytes:#x} bytes")

    tasks = {t.index: t for t in decoded.stream.tasks}
    stream_doc = decoded.stream.doc
    if stream_doc.get("segment_header"):
        lines.append("")
        lines.append("segment header  " + " ".join(w[2:] for w in stream_doc["segment_header"]))
    for item in stream_doc["items"]:
        lines.append("")
        if item["kind"] == "gap":
            size = item["data"]["size"]
            content = "zero" if "base64" not in item["data"] else "non-zero bytes"
            lines.append(f"gap at stream {item['offset']}: {size:#x} bytes ({content})")
            continue
        task = tasks[item["index"]]
        binding = ", ".join(f"{k} slot {v}" for k, v in s.bindings[task.index].items())
        lines.append(f"task {task.index} at stream {task.offset:#x}, {task.size:#x} bytes" + (f"  [{binding}]" if binding else ""))
        for i, word in enumerate(task.header_words):
            reg = regmap.header[i] if i < len(regmap.header) else None
            lines.append(_reg_line(reg, None, word, "  "))
        for g in item["groups"]:
            regs = g["registers"]
            first = _int(regs[0]["addr"])
            block = g.get("block", "unknown block")
            if "kind" not in g:
                head = ((len(regs) - 1) << 26) | _int(g["addr"])
                lines.append(f"  group at {g['offset']}  {head:08x}  {block}: {len(regs)} word{'s' if len(regs) > 1 else ''} from {first:#x}")
            elif g["kind"] == "dense":
                tag = _int(g.get("tag", 0))
                slot = reloc_of(tag)
                extra = f", tag {tag:#x}" + (f" = relocated from slot {slot}" if slot is not None else "") if tag else ""
                lines.append(f"  dense group at {g['offset']}  {block}: {len(regs)} word{'s' if len(regs) > 1 else ''} from {first:#x}{extra}")
            else:
                lines.append(f"  sparse group at {g['offset']}  {block}: base {first:#x} + {len(regs) - 1} more")
            for r in regs:
                addr = _int(r["addr"])
                value = _int(r["value"]) if "value" in r else _word_of(regmap.lookup(addr), r)
                lines.append(_reg_line(regmap.lookup(addr), addr, value))
    return "\n".join(lines) + "\n"


def _word_of(reg: RegDef | None, r: dict[str, Any]) -> int:
    word = _int(r.get("rest", 0))
    if reg is not None:
        for f in reg.fields:
            word |= r["fields"].get(f.name, 0) << f.lo
    return word
