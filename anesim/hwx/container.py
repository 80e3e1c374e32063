"""Reader for the .hwx container: a Mach-O-shaped file with magic 0xBEEFFACE.

Layout (command-stream.md §2): a 32-byte header (cputype 0x80, cpusubtype = generation), load
commands, then file data: ``__TEXT,__text`` holds the command stream (task descriptors),
``__TEXT,__const`` the weights and lookup tables, and the symbol and string tables describe the
tensors. Input, output and scratch buffers are ``__FVMLIB`` segments with no file data. An
LC_THREAD "TD state" (flavour 1, encoding A) or "segment state" (flavour 4, encoding B) holds
the buffer-slot address table, the first task's size, the task count and the NE-core mask.

Every byte of the file lands in the decoded form: header and load commands are decoded field by
field, the command stream task by task, and all other file bytes (weights, symbol and string
tables, padding) are kept as opaque regions in file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anesim.errors import FormatError
from anesim.hwx import stream_a, stream_b
from anesim.hwx.binary import Reader
from anesim.hwx.generations import ANE_CPUTYPE, Generation, by_subtype
from anesim.hwx.jsonform import blob, hexnum
from anesim.hwx.loadcmds import THREAD_WORDS, decode_command
from anesim.hwx.regmaps import RegisterMap, load_map
from anesim.hwx.stream_a import Stream
from anesim.hwx.symbols import Symbol, TensorStab, read_symbols, tensor_stabs

MAGIC = 0xBEEFFACE
HEADER_BYTES = 32
FORMAT_TAG = "anesim-decoded-program"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Section:
    """One section: where it sits in the ANE address space and (if anywhere) in the file."""

    segname: str
    sectname: str
    addr: int
    size: int
    offset: int  # file offset; 0 when the section has no file data
    index: int  # 1-based, as symbols refer to it
    maxprot: int  # of its segment: 1 input, 2 output, 3 scratch for __FVMLIB buffers
    segment_vmsize: int = 0  # of its segment (buffers are bound at this size)

    @property
    def has_data(self) -> bool:
        """Whether the section's bytes are stored in the file."""
        return self.offset != 0 and self.size != 0


@dataclass
class Container:
    """A decoded .hwx file."""

    file: str | None
    data: bytes
    generation: Generation
    regmap: RegisterMap
    doc: dict[str, Any]
    stream: Stream
    sections: list[Section]
    text: Section
    threads: list[tuple[int, list[int]]]  # (flavour, state words)
    bindings: list[tuple[str, int]]  # (name, vmaddr) from LC_ANE_MAPPED_REGION / LC_LOADFVMLIB
    symbols: list[Symbol] = field(default_factory=list)
    stabs: dict[str, TensorStab] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def thread(self, flavor: int) -> list[int] | None:
        """The state words of the first LC_THREAD of ``flavor``."""
        for fl, words in self.threads:
            if fl == flavor:
                return words
        return None

    def slot_table(self) -> dict[int, int]:
        """Buffer slot -> ANE virtual address, from the TD-state or segment-state thread."""
        words = self.thread(1)
        pitch = 2  # flavour 1: one u64 per slot
        if words is None:
            words, pitch = self.thread(4), 4  # flavour 4: entries 16 bytes apart (derived, §2.4)
        if words is None:
            return {}
        out = {}
        for slot in range(min(len(words), 512) // pitch):  # words 0-511 hold the table
            lo = words[pitch * slot]
            hi = words[pitch * slot + 1]
            if lo or hi:
                out[slot] = (hi << 32) | lo
        return out

    def section_at(self, vmaddr: int) -> Section | None:
        """The section whose address range holds ``vmaddr``."""
        for s in self.sections:
            if s.addr <= vmaddr < s.addr + max(s.size, 1):
                return s
        return None

    def section_bytes(self, section: Section) -> bytes:
        """The file bytes of a section (empty when it has none)."""
        return self.data[section.offset:section.offset + section.size] if section.has_data else b""


def _num(value: Any) -> int:
    return int(value, 0) if isinstance(value, str) else int(value)


def parse(data: bytes, file: str | None = None) -> Container:
    """Decode a whole .hwx file; any inconsistency is a FormatError naming file and byte offset."""
    r = Reader(data, file)
    r.need(0, HEADER_BYTES, "Mach-O header")
    magic, cputype, subtype, filetype, ncmds, sizeofcmds, flags, reserved = r.words(0, 8, "Mach-O header")
    if magic != MAGIC:
        raise r.error("not an ANE program: wrong magic", 0, expected=hexnum(MAGIC), found=hexnum(magic))
    if cputype != ANE_CPUTYPE:
        raise r.error("not an ANE program: wrong cputype", 4, expected=hexnum(ANE_CPUTYPE), found=hexnum(cputype))
    gen = by_subtype(subtype, file=file)
    regmap = load_map(gen.regmap)
    cmds_end = HEADER_BYTES + sizeofcmds
    r.need(HEADER_BYTES, sizeofcmds, "load commands (sizeofcmds)")
    if 8 * ncmds > sizeofcmds:
        raise r.error("more load commands than sizeofcmds can hold", 0x10,
                      expected=f"<= {sizeofcmds // 8}", found=ncmds)
    commands = []
    off = HEADER_BYTES
    for i in range(ncmds):
        r.need(off, 8, f"load command {i}")
        cmd, size = r.u32(off), r.u32(off + 4)
        if size < 8 or off + size > cmds_end:
            raise r.error(f"load command {i} has a size outside the load-command area", off + 4,
                          expected=f"8..{cmds_end - off} bytes", found=size)
        commands.append((off, decode_command(r, off, cmd, size)))
        off += size
    if off != cmds_end:
        raise r.error("load commands do not fill sizeofcmds", off, expected=f"end at {cmds_end:#x}", found=f"{off:#x}")

    sections: list[Section] = []
    threads: list[tuple[int, list[int]]] = []
    bindings: list[tuple[str, int]] = []
    symtab = None
    for off, c in commands:
        kind = c["cmd"]
        if kind == "LC_SEGMENT_64":
            fileoff, filesize = _num(c["fileoff"]), _num(c["filesize"])
            if filesize and fileoff + filesize > len(data):
                raise r.error(f"segment {c['segname']} runs past the end of the file", off + 40,
                              expected=f"end <= {len(data):#x}", found=f"{fileoff:#x}+{filesize:#x}")
            for s in c["sections"]:
                name = s["sectname"] if isinstance(s["sectname"], str) else "?"
                seg = s["segname"] if isinstance(s["segname"], str) else "?"
                sections.append(Section(seg, name, _num(s["addr"]), _num(s["size"]), _num(s["offset"]),
                                        len(sections) + 1, c["maxprot"], _num(c["vmsize"])))
        elif kind in ("LC_THREAD", "LC_UNIXTHREAD"):
            names = {v: k for k, v in THREAD_WORDS.get(c["flavor"], {}).items()}
            words = [0] * c["count"]
            for key, value in c["words"].items():
                words[names[key] if key in names else int(key)] = _num(value)
            threads.append((c["flavor"], words))
        elif kind in ("LC_ANE_MAPPED_REGION", "LC_LOADFVMLIB") and "name" in c:
            bindings.append((c["name"], _num(c.get("vmaddr", c.get("header_addr", 0)))))
        elif kind == "LC_SYMTAB" and "symoff" in c:
            symtab = (off, _num(c["symoff"]), c["nsyms"], _num(c["stroff"]), c["strsize"])

    # File ranges that hold data: the header, every section with bytes, the symbol and string tables.
    ranges: list[tuple[int, int, str, int]] = [(0, cmds_end, "header and load commands", 0)]
    for s in sections:
        if s.has_data:
            ranges.append((s.offset, s.offset + s.size, f"{s.segname},{s.sectname}", s.index))
    if symtab is not None:
        lc_off, symoff, nsyms, stroff, strsize = symtab
        if nsyms:
            ranges.append((symoff, symoff + 16 * nsyms, "symbol table", -1))
        if strsize:
            ranges.append((stroff, stroff + strsize, "string table", -2))
    for start, end, what, _ in ranges:
        if end > len(data):
            raise r.error(f"{what} runs past the end of the file", start,
                          expected=f"end <= {len(data):#x}", found=f"{start:#x}..{end:#x}")
    ranges.sort()
    for (s0, e0, w0, _), (s1, e1, w1, _) in zip(ranges, ranges[1:]):
        if s1 < e0:
            raise r.error(f"overlapping sections: {w1} starts inside {w0}", s1,
                          expected=f"start >= {e0:#x}", found=f"{s1:#x}")

    texts = [s for s in sections if s.segname == "__TEXT" and s.sectname == "__text"]
    if not texts:
        raise FormatError("no __TEXT,__text section (the command stream)", file=file, where="load commands")
    text = texts[0]
    if not text.has_data:
        raise FormatError("the __TEXT,__text section has no file data", file=file, where="load commands")

    notes: list[str] = []
    if gen.encoding == "A":
        state = next((w for fl, w in threads if fl == 1), None)
        if state is None or len(state) < 516:
            raise FormatError("no TD state (LC_THREAD flavour 1) to size the first task", file=file, where="load commands")
        stream = stream_a.decode(r, text.offset, text.size, regmap, 4 * (state[514] + 1), state[515])
    else:
        state = next((w for fl, w in threads if fl == 4), None)
        count = state[520] if state is not None and len(state) > 520 else None
        stream = stream_b.decode(r, text.offset, text.size, regmap, gen.segment_header_bytes, count)
    notes.extend(stream.notes)

    symbols: list[Symbol] = []
    if symtab is not None:
        lc_off, symoff, nsyms, stroff, strsize = symtab
        symbols = read_symbols(r, symoff, nsyms, stroff, strsize)

    regions = []
    pos = cmds_end
    for start, end, what, index in ranges[1:]:
        if start > pos:
            regions.append({"name": "gap", "offset": hexnum(pos), "data": blob(data[pos:start])})
        if index == text.index:
            regions.append({"name": what, "offset": hexnum(start), "size": hexnum(end - start), "stream": stream.doc})
        else:
            regions.append({"name": what, "offset": hexnum(start), "data": blob(data[start:end])})
        pos = end
    if pos < len(data):
        regions.append({"name": "gap", "offset": hexnum(pos), "data": blob(data[pos:])})

    doc: dict[str, Any] = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "container": "hwx",
        "generation": gen.name,
        "size": len(data),
        "header": {"magic": hexnum(magic), "cputype": hexnum(cputype), "cpusubtype": hexnum(subtype),
                   "filetype": filetype, "flags": hexnum(flags), "reserved": reserved},
        "load_commands": [c for _, c in commands],
        "regions": regions,
    }
    return Container(file, data, gen, regmap, doc, stream, sections, text, threads, bindings,
                     symbols, tensor_stabs(symbols), notes)
