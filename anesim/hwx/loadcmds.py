"""The load commands of an .hwx container, each decoded to JSON and encoded back byte for byte.

Kinds understood (command-stream.md §2.2-2.4): LC_SEGMENT_64 (segments and their sections),
LC_THREAD (flavour 1 "TD state", 4 "segment state", 3 "bind state"), the name bindings 0x40
and LC_LOADFVMLIB (0x6), LC_IDENT (the compiler banner) and LC_SYMTAB. Anything else, or a
binding or banner whose layout is unusual, is kept as raw bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from anesim.hwx.binary import Reader
from anesim.hwx.jsonform import Doc, blob, fixed_name, hexnum, name_bytes

LC_SYMTAB = 0x2
LC_THREAD = 0x4
LC_UNIXTHREAD = 0x5
LC_LOADFVMLIB = 0x6
LC_IDENT = 0x8
LC_SEGMENT_64 = 0x19
LC_ANE_MAPPED_REGION = 0x40

CMD_NAMES = {
    LC_SYMTAB: "LC_SYMTAB", LC_THREAD: "LC_THREAD", LC_UNIXTHREAD: "LC_UNIXTHREAD",
    LC_LOADFVMLIB: "LC_LOADFVMLIB", LC_IDENT: "LC_IDENT", LC_SEGMENT_64: "LC_SEGMENT_64",
    LC_ANE_MAPPED_REGION: "LC_ANE_MAPPED_REGION", 0x31: "LC_NOTE",
}
_CMD_BY_NAME = {v: k for k, v in CMD_NAMES.items()}

SEGMENT = struct.Struct("<16s4Q2i2I")  # after cmd, cmdsize: 64 bytes
SECTION = struct.Struct("<16s16s2Q8I")  # 80 bytes
_SECTION_KEYS = ("addr", "size", "offset", "align", "reloff", "nreloc", "flags", "reserved1", "reserved2", "reserved3")

# Names of the LC_THREAD state words we understand, per flavour (word index -> name).
THREAD_WORDS: dict[int, dict[int, str]] = {
    1: {512: "td_addr_lo", 513: "td_addr_hi", 514: "td_words", 515: "td_count", 517: "ne_mask"},
    4: {512: "seg_addr_lo", 513: "seg_addr_hi", 514: "sect_index_lo", 515: "sect_index_hi",
        516: "seg_header_words", 517: "seg_words", 518: "seg_id", 519: "first_td_id", 520: "td_count",
        521: "next_segment_count", 522: "next_segment_id0", 523: "next_segment_id1", 524: "ane", 525: "ne_mask"},
    3: {0: "kind", 1: "direction", 2: "name_offset", 4: "alias_offset", 5: "dtype", 6: "n", 7: "c", 8: "h",
        9: "w", 10: "d", 16: "bytes", 18: "plane_stride", 20: "row_stride", 22: "element_bytes", 24: "bytes2"},
}
MAX_THREAD_WORDS = 1 << 16
MAX_COMMAND_BYTES = 1 << 24  # real load commands are a few kilobytes


def cmd_name(cmd: int) -> str:
    """The symbolic name of a load command, or its number in hex."""
    return CMD_NAMES.get(cmd, hexnum(cmd))


def decode_command(reader: Reader, offset: int, cmd: int, size: int) -> dict[str, Any]:
    """The JSON form of the load command of ``size`` bytes at ``offset``."""
    body = reader.take(offset, size, "load command")
    if cmd == LC_SEGMENT_64:
        return _decode_segment(reader, offset, body)
    if cmd in (LC_THREAD, LC_UNIXTHREAD):
        return _decode_thread(reader, offset, cmd, body)
    if cmd == LC_SYMTAB and size >= 24:
        symoff, nsyms, stroff, strsize = struct.unpack_from("<4I", body, 8)
        return {"cmd": "LC_SYMTAB", "symoff": hexnum(symoff), "nsyms": nsyms, "stroff": hexnum(stroff),
                "strsize": strsize, "tail": blob(body[24:])}
    if cmd in (LC_ANE_MAPPED_REGION, LC_LOADFVMLIB):
        out = _decode_binding(cmd, body)
        if out is not None:
            return out
    if cmd == LC_IDENT:
        end = body.find(b"\0", 8)
        end = size if end < 0 else end
        try:
            text = body[8:end].decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            return {"cmd": "LC_IDENT", "text": text, "tail": blob(body[end:])}
    return {"cmd": cmd_name(cmd), "raw": blob(body[8:])}


def _decode_segment(reader: Reader, offset: int, body: bytes) -> dict[str, Any]:
    if len(body) < 72:
        raise reader.error("LC_SEGMENT_64 is shorter than its fixed part", offset, expected=">= 72 bytes", found=len(body))
    name, vmaddr, vmsize, fileoff, filesize, maxprot, initprot, nsects, flags = SEGMENT.unpack_from(body, 8)
    if 72 + 80 * nsects > len(body):
        raise reader.error("segment claims more sections than its load command holds", offset + 64,
                           expected=f"<= {(len(body) - 72) // 80} sections", found=nsects)
    sections = []
    for i in range(nsects):
        fields = SECTION.unpack_from(body, 72 + 80 * i)
        sect = {"sectname": fixed_name(fields[0]), "segname": fixed_name(fields[1])}
        for key, value in zip(_SECTION_KEYS, fields[2:]):
            sect[key] = hexnum(value) if key in ("addr", "size", "offset", "flags") else value
        sections.append(sect)
    return {"cmd": "LC_SEGMENT_64", "segname": fixed_name(name), "vmaddr": hexnum(vmaddr), "vmsize": hexnum(vmsize),
            "fileoff": hexnum(fileoff), "filesize": hexnum(filesize), "maxprot": maxprot, "initprot": initprot,
            "flags": hexnum(flags), "sections": sections, "tail": blob(body[72 + 80 * nsects:])}


def _decode_thread(reader: Reader, offset: int, cmd: int, body: bytes) -> dict[str, Any]:
    if len(body) < 16:
        raise reader.error("LC_THREAD is shorter than its flavour and count", offset, expected=">= 16 bytes", found=len(body))
    flavor, count = struct.unpack_from("<2I", body, 8)
    if 16 + 4 * count > len(body):
        raise reader.error("thread state claims more words than its load command holds", offset + 12,
                           expected=f"<= {(len(body) - 16) // 4} words", found=count)
    state = struct.unpack_from(f"<{count}I", body, 16)
    names = THREAD_WORDS.get(flavor, {})
    words = {names.get(i, str(i)): hexnum(v) for i, v in enumerate(state) if v}
    return {"cmd": cmd_name(cmd), "flavor": flavor, "count": count, "words": words, "tail": blob(body[16 + 4 * count:])}


def _decode_binding(cmd: int, body: bytes) -> dict[str, Any] | None:
    # 0x40: {u64 name_offset, u64 vmaddr, name}; LC_LOADFVMLIB: {u32 name_offset, u32 minor, u32 header_addr, name}
    fixed = 24 if cmd == LC_ANE_MAPPED_REGION else 20
    if len(body) < fixed:
        return None
    if cmd == LC_ANE_MAPPED_REGION:
        name_off, vmaddr = struct.unpack_from("<2Q", body, 8)
        out: dict[str, Any] = {"cmd": cmd_name(cmd), "vmaddr": hexnum(vmaddr)}
    else:
        name_off, minor, header_addr = struct.unpack_from("<3I", body, 8)
        out = {"cmd": cmd_name(cmd), "minor_version": minor, "header_addr": hexnum(header_addr)}
    if not fixed <= name_off < len(body):
        return None
    end = body.find(b"\0", name_off)
    end = len(body) if end < 0 else end
    try:
        name = body[name_off:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if name_off > fixed:
        out["pad"] = blob(body[fixed:name_off])
    out["name"] = name
    out["tail"] = blob(body[end:])
    return out


def encode_command(doc: Doc, budget: int = MAX_COMMAND_BYTES) -> bytes:
    """The bytes of one load command in JSON form (cmd and cmdsize included).

    Opaque parts may add up to at most ``budget`` bytes, checked before anything is allocated.
    """
    budget = min(budget, MAX_COMMAND_BYTES)
    kind = doc.get("cmd").value
    cmd = _CMD_BY_NAME.get(kind) if isinstance(kind, str) and not kind.startswith("0x") else doc.get("cmd").int(0, 0xFFFFFFFF)
    if cmd is None:
        raise doc.get("cmd").error("unknown load command name", expected=", ".join(_CMD_BY_NAME))
    if doc.has("raw"):
        payload = doc.get("raw").blob(budget)
    elif cmd == LC_SEGMENT_64:
        payload = _encode_segment(doc, budget)
    elif cmd in (LC_THREAD, LC_UNIXTHREAD):
        payload = _encode_thread(doc, budget)
    elif cmd == LC_SYMTAB:
        payload = struct.pack("<4I", doc.get("symoff").int(0, 0xFFFFFFFF), doc.get("nsyms").int(0, 0xFFFFFFFF),
                              doc.get("stroff").int(0, 0xFFFFFFFF), doc.get("strsize").int(0, 0xFFFFFFFF)) + doc.get("tail").blob(budget)
    elif cmd in (LC_ANE_MAPPED_REGION, LC_LOADFVMLIB):
        payload = _encode_binding(cmd, doc, budget)
    elif cmd == LC_IDENT:
        payload = doc.get("text").str().encode("utf-8") + doc.get("tail").blob(budget)
    else:
        raise doc.error("load command has neither 'raw' nor a known layout")
    return struct.pack("<2I", cmd, 8 + len(payload)) + payload


def _encode_segment(doc: Doc, budget: int) -> bytes:
    sections = doc.get("sections").items()
    out = [SEGMENT.pack(name_bytes(doc.get("segname"), 16), doc.get("vmaddr").int(), doc.get("vmsize").int(),
                        doc.get("fileoff").int(), doc.get("filesize").int(), doc.get("maxprot").int(-(1 << 31), (1 << 31) - 1),
                        doc.get("initprot").int(-(1 << 31), (1 << 31) - 1), len(sections), doc.get("flags").int(0, 0xFFFFFFFF))]
    for s in sections:
        values = [s.get(k).int(0, (1 << 64) - 1 if k in ("addr", "size") else 0xFFFFFFFF) for k in _SECTION_KEYS]
        out.append(SECTION.pack(name_bytes(s.get("sectname"), 16), name_bytes(s.get("segname"), 16), *values))
    out.append(doc.get("tail").blob(budget))
    return b"".join(out)


def _encode_thread(doc: Doc, budget: int) -> bytes:
    flavor = doc.get("flavor").int(0, 0xFFFFFFFF)
    count = doc.get("count").int(0, MAX_THREAD_WORDS)
    index_of = {v: k for k, v in THREAD_WORDS.get(flavor, {}).items()}
    state = [0] * count
    for key, value in doc.get("words").mapping():
        if key in index_of:
            i = index_of[key]
        elif key.isdigit():
            i = int(key)
        else:
            raise value.error(f"unknown thread-state word {key!r}", expected=", ".join(index_of) or "a word index")
        if i >= count:
            raise value.error("thread-state word beyond 'count'", expected=f"< {count}", found=i)
        state[i] = value.int(0, 0xFFFFFFFF)
    return struct.pack(f"<2I{count}I", flavor, count, *state) + doc.get("tail").blob(budget)


def _encode_binding(cmd: int, doc: Doc, budget: int) -> bytes:
    pad = doc.get("pad").blob(budget) if doc.has("pad") else b""
    fixed = 24 if cmd == LC_ANE_MAPPED_REGION else 20
    name_off = fixed + len(pad)
    if cmd == LC_ANE_MAPPED_REGION:
        head = struct.pack("<2Q", name_off, doc.get("vmaddr").int())
    else:
        head = struct.pack("<3I", name_off, doc.get("minor_version").int(0, 0xFFFFFFFF), doc.get("header_addr").int(0, 0xFFFFFFFF))
    return head + pad + doc.get("name").str().encode("utf-8") + doc.get("tail").blob(budget)
