"""What the stream decoders hand on: each task's header values and its register writes in order.

The JSON form (``doc``) is what round-trips; the other attributes are conveniences for the
disassembler and for building the program model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anesim.hwx.fields import word_from_json
from anesim.hwx.jsonform import MAX_STREAM_BYTES, Doc, blob
from anesim.hwx.regmaps import RegisterMap


@dataclass
class DecodedTask:
    """One task descriptor as decoded from a command stream."""

    index: int
    offset: int  # byte offset of the task inside the command stream
    size: int  # bytes, header included
    header_words: list[int]
    header: dict[str, int]  # every named header field, e.g. {"TID": 0, "EON": 1, ...}
    writes: list[tuple[int, int]]  # (byte address, value) in stream order
    relocs: list[tuple[int, int, int]] = field(default_factory=list)  # (address, words, slot), encoding B
    doc: dict[str, Any] = field(default_factory=dict)


def header_fields(regmap: RegisterMap, words: list[int]) -> dict[str, int]:
    """Every named field of a task header, by field name."""
    out: dict[str, int] = {}
    for i, word in enumerate(words):
        if i < len(regmap.header):
            for f in regmap.header[i].fields:
                out[f.name] = f.get(word)
    return out


def header_has_ext(regmap: RegisterMap, words: list[int]) -> bool:
    """Whether the header's extension flag (TDE) asks for the optional extra word."""
    w, bit = regmap.ext_flag
    return len(words) > w and bool((words[w] >> bit) & 1)


def gap_item(data: bytes, offset: int) -> dict[str, Any]:
    """Bytes between or after tasks that belong to no task, kept verbatim."""
    return {"kind": "gap", "offset": f"{offset:#x}", "data": blob(data)}


def encode_items(doc: Doc, regmap: RegisterMap, encode_task: Callable[[Doc, RegisterMap], bytes],
                 parts: list[bytes]) -> bytes:
    """A stream's bytes: ``parts`` (its header, if any), then its items, tasks and gaps, in order."""
    for item in doc.get("items").items():
        kind = item.get("kind").str()
        if kind == "task":
            parts.append(encode_task(item, regmap))
        elif kind == "gap":
            parts.append(item.get("data").blob(MAX_STREAM_BYTES - sum(map(len, parts))))
        else:
            raise item.get("kind").error("unknown stream item", expected="'task' or 'gap'", found=kind)
    return b"".join(parts)


def header_from_json(doc: Doc, regmap: RegisterMap) -> list[int]:
    """The header words of a task in JSON form, checked against the extension flag."""
    items = doc.items()
    words = [word_from_json(d, regmap.header[i] if i < len(regmap.header) else None) for i, d in enumerate(items)]
    want = regmap.header_words + (1 if header_has_ext(regmap, words) else 0)
    if len(words) != want:
        raise doc.error("task header has the wrong number of words for its TDE flag", expected=want, found=len(words))
    return words
