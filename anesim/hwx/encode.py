"""Bit-exact re-encoder: the JSON form of a decoded program back to the original bytes.

The file is rebuilt from its parts in file order: the Mach-O header (ncmds and sizeofcmds are
recomputed), each load command, then each region - opaque bytes as stored, the command stream
re-encoded task by task from the decoded register fields. A region must start where the previous
one ended and a re-encoded stream must keep its section's size, so edits that would silently
move data elsewhere in the file are refused with a ProgramError.
"""

from __future__ import annotations

import struct
from typing import Any

from anesim.hwx import stream_a, stream_b
from anesim.hwx.container import FORMAT_TAG, HEADER_BYTES
from anesim.hwx.generations import by_name
from anesim.hwx.jsonform import Doc, hexnum
from anesim.hwx.loadcmds import encode_command
from anesim.hwx.regmaps import load_map

MAX_FILE_BYTES = 1 << 30  # refuse to build files over 1 GiB from JSON (no real program is near it)


def encode_stream(doc: Doc, generation: str) -> bytes:
    """The command-stream bytes of a decoded stream for ``generation``."""
    gen = by_name(generation)
    regmap = load_map(gen.regmap)
    encoding = doc.get("encoding").str()
    if encoding != gen.encoding:
        raise doc.get("encoding").error(f"{gen.name} uses encoding {gen.encoding}", found=encoding)
    return stream_a.encode(doc, regmap) if encoding == "A" else stream_b.encode(doc, regmap)


def _regions(doc: Doc, start: int, generation: str) -> list[bytes]:
    parts = []
    pos = start
    for region in doc.get("regions").items():
        offset = region.get("offset").int(0, MAX_FILE_BYTES)
        if offset != pos:
            raise region.get("offset").error("regions must follow one another without gaps or overlaps",
                                              expected=hexnum(pos), found=hexnum(offset))
        if region.has("stream"):
            data = encode_stream(region.get("stream"), generation)
            size = region.get("size").int(0, MAX_FILE_BYTES)
            if len(data) != size:
                raise region.get("stream").error("the command stream no longer fits its section",
                                                 expected=f"{size:#x} bytes", found=f"{len(data):#x} bytes")
        else:
            data = region.get("data").blob(MAX_FILE_BYTES - pos)
        parts.append(data)
        pos += len(data)
    return parts


def encode_doc(value: dict[str, Any] | Doc, file: str | None = None) -> bytes:
    """The original bytes of a program in the JSON form printed by ``anesim disasm --json``."""
    doc = value if isinstance(value, Doc) else Doc(value, "$", file)
    tag = doc.get("format").value
    if tag != FORMAT_TAG:
        raise doc.get("format").error("not a decoded anesim program", expected=FORMAT_TAG, found=tag)
    doc.get("version").int(1, 1)
    generation = doc.get("generation").str()
    doc.get("size", 0).int(0, MAX_FILE_BYTES)
    kind = doc.get("container").str()
    if kind == "hwx":
        h = doc.get("header")
        cmds: list[bytes] = []
        for c in doc.get("load_commands").items():
            cmds.append(encode_command(c, MAX_FILE_BYTES - sum(map(len, cmds))))
        sizeofcmds = sum(len(c) for c in cmds)
        header = struct.pack("<8I", h.get("magic").int(0, 0xFFFFFFFF), h.get("cputype").int(0, 0xFFFFFFFF),
                             h.get("cpusubtype").int(0, 0xFFFFFFFF), h.get("filetype").int(0, 0xFFFFFFFF),
                             len(cmds), sizeofcmds, h.get("flags").int(0, 0xFFFFFFFF), h.get("reserved").int(0, 0xFFFFFFFF))
        parts = [header, *cmds, *_regions(doc, HEADER_BYTES + sizeofcmds, generation)]
    elif kind == "raw":
        parts = _regions(doc, 0, generation)
    else:
        raise doc.get("container").error("unknown container kind", expected="'hwx' or 'raw'", found=kind)
    out = b"".join(parts)
    size = doc.get("size", len(out)).int(0, MAX_FILE_BYTES)
    if size != len(out):
        raise doc.get("size").error("encoded length differs from the recorded file size",
                                    expected=size, found=len(out))
    return out
