"""Compiled H13 programs as Mach-O-shaped ``.hwx`` containers that the decoder reads back.

The writer takes what :func:`anesim.compiler.backend.h13_emit.emit_h13` produced - the task-descriptor
stream, the weights and the program's host buffers - and lays them out the way Apple's v4 H13
compiler does (command-stream.md §2): a 32-byte header (magic 0xBEEFFACE, cputype 0x80,
cpusubtype 4), then the load commands

* ``__PAGEZERO`` (no data), ``__TEXT`` with ``__text`` (the task descriptors, file offset a
  multiple of 0x4000) and ``__const`` (the weights and lookup tables, 64-byte aligned after the
  stream; left out when the program has none);
* one ``__FVMLIB`` segment per host buffer (no file data; protection 1 input, 2 output, 3
  intermediate; section ``__const`` for inputs, ``__data`` otherwise; vmsize rounded to 16 KiB);
* an ``LC_LOADFVMLIB`` binding per input and output (outputs named ``<name>@output``);
* the ``LC_THREAD`` flavour 1 "TD state": the buffer-slot table, the stream address, the first
  task's size in words minus one, the task count and the NE-core mask 0xffff;
* one ``LC_THREAD`` flavour 3 "bind state" per input and output (shape, strides, dtype);
* ``LC_IDENT`` (a banner naming anesim) and ``LC_SYMTAB``: one N_SECT symbol per weight block
  per core (``K<sha256>_ne_<core>``) and per bound buffer, the stabs type catalogue and one
  shape stab per input and output.

The file is built as the decoder's JSON document (opaque regions for the symbol table, stream
and weights) and turned into bytes by the decoder's own encoder, :func:`anesim.hwx.encode_doc`.

Left out: Apple's section relocation entries, the unidentified TD-state words (523, 528, 530 ...),
the ``LC_NOTE`` of some compilers, and symbols for intermediate buffers.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from anesim.compiler.backend.h13 import TD_BYTES
from anesim.compiler.backend.h13_emit import H13Emission, emit_h13
from anesim.compiler.lowering.memory import KERNEL_SLOT
from anesim.errors import UnsupportedError
from anesim.hwx.container import FORMAT_TAG, FORMAT_VERSION, HEADER_BYTES, MAGIC
from anesim.hwx.encode import encode_doc
from anesim.hwx.generations import ANE_CPUTYPE, by_name
from anesim.hwx.jsonform import blob, hexnum
from anesim.hwx.symbols import N_STAB_GSYM, N_STAB_LSYM, NLIST

if TYPE_CHECKING:  # the writers take a compiled result; the result module imports the backend
    from anesim.compiler.result import CompileResult

BASE_ADDR = 0x30000000  # __TEXT's address in the ANE's view (command-stream.md §2.2)
PAGE = 0x4000  # segments and the stream's file offset are 16 KiB aligned
MH_EXECUTE = 2
HEADER_FLAGS = 0x200000
N_SECT_EXT = 0xF
SLOT_TABLE_WORDS = 512
TD_STATE_WORDS = 532  # the flavour-1 body length Apple's H13 files use
BIND_STATE_WORDS = 30  # the flavour-3 body length of the v4 compiler
NE_MASK = 0xFFFF  # 16 NE cores' kernel-DMA channels on H13
TEXT_FLAGS = 0x28  # Apple's files add 0x100 when the section carries relocation entries; ours has none
CONST_FLAGS = 0x26
INPUT_SECTION_FLAGS, DATA_SECTION_FLAGS = 0x21, 0x23
# The stabs type catalogue every sample declares (type id, name, definition).
TYPES = ((1, "void", "1"), (2, "int8", "r2;0;127"), (3, "uint8", "r1;0;255"), (4, "int16", "r1;-32768;32767"),
         (5, "float16", "r1;2;0"), (6, "float", "r1;4;0"))
TYPE_ID = {"fp16": 5, "int8": 2, "uint8": 3}
ELEMENT_BYTES = {"fp16": 2, "int8": 1, "uint8": 1}
PROCEDURE = "net"  # the procedure name the TD and bind states carry
BANNER = "ANEC v1\nanesim compiler (H13 task descriptors, v4 layout)\n\t-t h13\n"


def _up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _padded(text: bytes, unit: int = 8) -> bytes:
    """``text`` NUL-terminated and padded so a load command stays 8-byte aligned."""
    return text + bytes(_up(len(text) + 1, unit) - len(text))


def _nul_tail(used: int) -> bytes:
    """The NULs that end a string after ``used`` bytes of load command, up to an 8-byte multiple."""
    return bytes(_up(used + 1, 8) - used)


def _segment(name: str, vmaddr: int, vmsize: int, fileoff: int, filesize: int, prot: int, flags: int,
             sections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"cmd": "LC_SEGMENT_64", "segname": name, "vmaddr": hexnum(vmaddr), "vmsize": hexnum(vmsize),
            "fileoff": hexnum(fileoff), "filesize": hexnum(filesize), "maxprot": prot, "initprot": prot,
            "flags": hexnum(flags), "sections": sections, "tail": blob(b"")}


def _section(sect: str, seg: str, addr: int, size: int, offset: int, align: int, flags: int) -> dict[str, Any]:
    return {"sectname": sect, "segname": seg, "addr": hexnum(addr), "size": hexnum(size), "offset": hexnum(offset),
            "align": align, "reloff": 0, "nreloc": 0, "flags": hexnum(flags), "reserved1": 0, "reserved2": 0,
            "reserved3": 0}


def _stab(name: str, first_type: int, buf: dict[str, Any]) -> str:
    """``name:t<id>=ar1;0;N;<id>=s<stride>n:...:<dtype>`` as in command-stream.md §2.5."""
    n, c, h, w = (1,) * (4 - len(buf["shape"])) + tuple(buf["shape"])
    esize = ELEMENT_BYTES[buf["dtype"]]
    plane = buf["plane_stride"]
    dims = ((n, plane * c, "n"), (c, plane, "c"), (h, buf["row_stride"], "h"), (w, esize, "w"))
    parts = [f"ar1;0;{extent};{first_type + 1 + i}=s{stride}{axis}" for i, (extent, stride, axis) in enumerate(dims)]
    return f"{name}:t{first_type}=" + ":".join(parts) + f":{TYPE_ID[buf['dtype']]}"


def _bind_state(buf: dict[str, Any], symbol: str, direction: int) -> dict[str, Any]:
    n, c, h, w = (1,) * (4 - len(buf["shape"])) + tuple(buf["shape"])
    body = 16 + 4 * BIND_STATE_WORDS  # strings follow the state words
    names = PROCEDURE.encode() + b"\0"
    words = {"kind": 3, "direction": direction, "name_offset": body, "alias_offset": body + len(names),
             "dtype": TYPE_ID[buf["dtype"]], "n": n, "c": c, "h": h, "w": w, "d": 1, "bytes": buf["bytes"],
             "plane_stride": buf["plane_stride"], "row_stride": buf["row_stride"],
             "element_bytes": ELEMENT_BYTES[buf["dtype"]], "bytes2": buf["bytes"]}
    tail = _padded(names + symbol.encode() + b"\0" + symbol.encode())
    return {"cmd": "LC_THREAD", "flavor": 3, "count": BIND_STATE_WORDS,
            "words": {k: hexnum(v) for k, v in words.items()}, "tail": blob(tail)}


def hwx_document(result: CompileResult, emitted: H13Emission | None = None) -> dict[str, Any]:
    """The decoder's JSON form of the .hwx container of a compiled H13 program."""
    emitted = emitted if emitted is not None else emit_h13(result)
    gen = by_name("H13")
    # emit_h13 refuses tasks that read constants through the tile DMA, so no task reads a
    # constant slot other than the kernels' (slot 1, __TEXT,__const)
    buffers = [b for b in emitted.buffers if b["slot"] != KERNEL_SLOT and b["role"] != "constant"]
    for b in buffers:
        if b["role"] in ("input", "output") and ("shape" not in b or len(b["shape"]) > 4
                                                     or b.get("dtype") not in TYPE_ID):
            raise UnsupportedError(f"buffer '{b['name']}' has no NCHW shape or a dtype the symbol table names",
                                   expected="fp16, int8 or uint8 inputs and outputs")
        if b["role"] not in ("input", "output", "intermediate"):
            raise UnsupportedError(f"buffer slot {b['slot']} holds {b['role']} data that the .hwx writer "
                                   "does not place", expected="input, output and intermediate buffers")
    order = {"input": 0, "output": 1, "intermediate": 2}
    buffers.sort(key=lambda b: (order[b["role"]], b["slot"]))
    command, weights = emitted.command, emitted.weights

    # Address space: __TEXT (stream, then weights) from BASE_ADDR, then one 16 KiB-aligned buffer each.
    const_addr = BASE_ADDR + _up(len(command), 0x40)
    text_vmsize = _up(const_addr - BASE_ADDR + len(weights), PAGE)
    addr = BASE_ADDR + text_vmsize
    placed = []
    for b in buffers:
        vmsize = _up(max(b["bytes"], 1), PAGE)
        symbol = f"{b['name']}@output" if b["role"] == "output" else b["name"]
        placed.append((b, addr, vmsize, symbol))
        addr += vmsize

    # Symbol table: weight blocks per core, bound buffers, the type catalogue, the shape stabs.
    strings = bytearray(b"\0")
    symbols: list[tuple[int, int, int, int, int]] = []  # strx, type, sect, desc, value

    def add(name: str, typ: int, sect: int, desc: int, value: int) -> None:
        symbols.append((len(strings), typ, sect, desc, value))
        strings.extend(name.encode() + b"\0")

    has_const = bool(weights)
    first_buffer_sect = 3 if has_const else 2
    for _, offset, chunks in emitted.weight_blocks:
        digest = hashlib.sha256(b"".join(chunks)).hexdigest().upper()
        at = offset
        for core, chunk in enumerate(chunks):
            add(f"K{digest}_ne_{core}", N_SECT_EXT, 2, 0, const_addr + at)
            at += len(chunk)
    for i, (b, vmaddr, _, symbol) in enumerate(placed):
        if b["role"] != "intermediate":
            add(symbol, N_SECT_EXT, first_buffer_sect + i, 0, vmaddr)
    for type_id, name, definition in TYPES:
        add(f"{name}:t{type_id}={definition}", N_STAB_LSYM, 0, 0, 0)
    next_type = TYPES[-1][0] + 1
    for b, _, _, symbol in placed:
        if b["role"] != "intermediate":
            add(_stab(symbol, next_type, b), N_STAB_GSYM, 0, next_type, 0)
            next_type += 5
    symtab = b"".join(NLIST.pack(*s) for s in symbols)
    strtab = bytes(strings) + bytes(_up(len(strings), 8) - len(strings))

    # Load commands (their size does not depend on the file offsets filled in below).
    def commands(text_off: int, symoff: int, stroff: int) -> list[dict[str, Any]]:
        const_off = text_off + (const_addr - BASE_ADDR)
        text_sections = [_section("__text", "__TEXT", BASE_ADDR, len(command), text_off, 14, TEXT_FLAGS)]
        if has_const:
            text_sections.append(_section("__const", "__TEXT", const_addr, len(weights), const_off, 6, CONST_FLAGS))
        out = [_segment("__PAGEZERO", 0, PAGE, 0, 0, 0, 0x4, []),
               _segment("__TEXT", BASE_ADDR, text_vmsize, text_off, text_vmsize, 5, 0, text_sections)]
        for b, vmaddr, vmsize, _ in placed:
            role = b["role"]
            prot = {"input": 1, "output": 2, "intermediate": 3}[role]
            sect = _section("__const" if role == "input" else "__data", "__FVMLIB", vmaddr, b["bytes"], 0, 14,
                            INPUT_SECTION_FLAGS if role == "input" else DATA_SECTION_FLAGS)
            out.append(_segment("__FVMLIB", vmaddr, vmsize, 0, 0, prot, 0x6 if role != "intermediate" else 0x4, [sect]))
        for b, vmaddr, _, symbol in placed:
            if b["role"] != "intermediate":
                out.append({"cmd": "LC_LOADFVMLIB", "minor_version": 0, "header_addr": hexnum(vmaddr),
                            "name": symbol, "tail": blob(_nul_tail(20 + len(symbol.encode())))})
        state: dict[str, str] = {"0": hexnum(BASE_ADDR)}
        if has_const:
            state["2"] = hexnum(const_addr)
        for b, vmaddr, _, _ in placed:
            state[str(2 * b["slot"])] = hexnum(vmaddr & 0xFFFFFFFF)
            if vmaddr >> 32:
                state[str(2 * b["slot"] + 1)] = hexnum(vmaddr >> 32)
        state.update({"td_addr_lo": hexnum(BASE_ADDR), "td_words": hexnum(TD_BYTES // 4 - 1),
                      "td_count": hexnum(len(emitted.fields)), "ne_mask": hexnum(NE_MASK)})
        out.append({"cmd": "LC_THREAD", "flavor": 1, "count": TD_STATE_WORDS, "words": state,
                    "tail": blob(_padded(PROCEDURE.encode()))})
        for b, _, _, symbol in placed:
            if b["role"] != "intermediate":
                out.append(_bind_state(b, symbol, 1 if b["role"] == "input" else 2))
        out.append({"cmd": "LC_IDENT", "text": BANNER, "tail": blob(_nul_tail(8 + len(BANNER.encode())))})
        out.append({"cmd": "LC_SYMTAB", "symoff": hexnum(symoff), "nsyms": len(symbols), "stroff": hexnum(stroff),
                    "strsize": len(strtab), "tail": blob(b"")})
        return out

    header = {"magic": hexnum(MAGIC), "cputype": hexnum(ANE_CPUTYPE), "cpusubtype": hexnum(gen.cpusubtype),
              "filetype": MH_EXECUTE, "flags": hexnum(HEADER_FLAGS), "reserved": 0}
    probe = {"format": FORMAT_TAG, "version": FORMAT_VERSION, "container": "hwx", "generation": gen.name,
             "header": header, "load_commands": commands(0, 0, 0), "regions": []}
    cmds_end = _commands_end(probe)
    symoff = _up(cmds_end, 8)
    stroff = symoff + len(symtab)
    text_off = _up(stroff + len(strtab), PAGE)
    regions = [
        {"name": "gap", "offset": hexnum(cmds_end), "data": blob(bytes(symoff - cmds_end))},
        {"name": "symbol table", "offset": hexnum(symoff), "data": blob(symtab)},
        {"name": "string table", "offset": hexnum(stroff), "data": blob(strtab)},
        {"name": "gap", "offset": hexnum(stroff + len(strtab)), "data": blob(bytes(text_off - stroff - len(strtab)))},
        {"name": "__TEXT,__text", "offset": hexnum(text_off), "data": blob(command)},
    ]
    pos = text_off + len(command)
    if has_const:
        const_off = text_off + (const_addr - BASE_ADDR)
        regions.append({"name": "gap", "offset": hexnum(pos), "data": blob(bytes(const_off - pos))})
        regions.append({"name": "__TEXT,__const", "offset": hexnum(const_off), "data": blob(weights)})
        pos = const_off + len(weights)
    end = text_off + text_vmsize
    regions.append({"name": "gap", "offset": hexnum(pos), "data": blob(bytes(end - pos))})
    regions = [r for r in regions if r["name"] != "gap" or r["data"]["size"]]
    return {"format": FORMAT_TAG, "version": FORMAT_VERSION, "container": "hwx", "generation": gen.name,
            "size": end, "header": header, "load_commands": commands(text_off, symoff, stroff), "regions": regions}


def _commands_end(doc: dict[str, Any]) -> int:
    from anesim.hwx.jsonform import Doc
    from anesim.hwx.loadcmds import encode_command

    return HEADER_BYTES + sum(len(encode_command(c)) for c in Doc(doc).get("load_commands").items())


def write_hwx(result: CompileResult) -> bytes:
    """The bytes of the .hwx container of a compiled H13 program."""
    return encode_doc(hwx_document(result), "compiled program")

