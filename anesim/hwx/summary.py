"""What a decoded program holds, in plain terms: buffer slots, tensors, weights, per-task bindings.

Used by the disassembler's listing, the ``summary`` member of the JSON form (informational;
``anesim asm`` ignores it) and the program-model builder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

from anesim.hwx.container import Container
from anesim.hwx.raw import RawBuffer
from anesim.hwx.regfile import RegisterFile
from anesim.hwx.tasks import DecodedTask

Decoded = Union[Container, RawBuffer]

ROLE_BY_PROT = {1: "input", 2: "output", 3: "intermediate"}
DTYPES = {"float16": "fp16", "fp16": "fp16", "int8": "int8", "uint8": "uint8"}
# Relocated base-address registers (encoding B) and the stream each one feeds.
RELOC_STREAMS = {
    "TileDMASrc.Src1BaseAddrLo": "src1", "TileDMASrc.Src2BaseAddrLo": "src2",
    "TileDMADst.DstBaseAddrLo": "dst", "KernelDMASrc.KernelBaseAddrLo": "kernel",
}


@dataclass
class TensorInfo:
    """A buffer the host binds, with whatever the program declares about its contents."""

    name: str
    role: str
    slot: int | None
    bytes: int
    vmaddr: int | None = None
    shape: tuple[int, ...] = ()
    dtype: str = "fp16"
    strides: tuple[int, ...] = ()  # byte strides matching ``shape``


@dataclass
class KernelChannel:
    """One enabled coefficient-DMA channel of a task: which bytes of the kernel slot feed NE core n."""

    task: int
    channel: int
    slot: int | None
    offset: int
    bytes: int


@dataclass
class Summary:
    """The plain-terms digest of a decoded program."""

    generation: str
    encoding: str
    td_version: int
    tasks: int
    ne_mask: int | None
    compiler: str
    slots: dict[int, int]
    tensors: list[TensorInfo]
    weights: list[dict[str, Any]]
    channels: list[KernelChannel]
    bindings: list[dict[str, int]]  # per task: stream -> slot
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["slots"] = {str(k): f"{v:#x}" for k, v in self.slots.items()}
        if self.ne_mask is not None:
            out["ne_mask"] = f"{self.ne_mask:#x}"
        return out


def task_slots(decoded: Decoded, task: DecodedTask) -> dict[str, int]:
    """The buffer slot each stream of ``task`` reads or writes (src1, src2, dst, kernel)."""
    h = task.header
    out: dict[str, int] = {}
    if decoded.generation.encoding == "A":
        pairs = (("src1", "RBase0", "RBE0"), ("src2", "RBase1", "RBE1"), ("dst", "WBase", "WBE"),
                 ("kernel", "KBase0", "KBE0"), ("src1", "RBase", "RBE"), ("kernel", "KBase", "KBE"))
        for stream, base, enable in pairs:
            if h.get(enable):
                out[stream] = h.get(base, 0)
    else:
        for addr, _, slot in task.relocs:
            reg = decoded.regmap.lookup(addr)
            if reg is not None and reg.name in RELOC_STREAMS:
                out[RELOC_STREAMS[reg.name]] = slot
    return out


def _compiler(container: Container) -> str:
    for c in container.doc["load_commands"]:
        if c["cmd"] == "LC_IDENT" and "text" in c:
            lines = [ln.strip() for ln in c["text"].splitlines() if ln.strip()]
            version = next((ln for ln in lines if ln.startswith("zin_ane_compiler")), "")
            target = next((ln for ln in lines if ln.startswith("-t ")), "")
            return f"{version} ({target})" if target else version
    return ""


def _hwx_tensors(c: Container, slots: dict[int, int]) -> list[TensorInfo]:
    by_addr = {addr: slot for slot, addr in slots.items()}
    names = {addr: name for name, addr in c.bindings}
    out = []
    for s in c.sections:
        if s.segname != "__FVMLIB":
            continue
        raw_name = names.get(s.addr) or next((sym.name for sym in c.symbols if sym.type == 0xF and sym.value == s.addr), "")
        name = raw_name.split("@", 1)[0] or f"buffer{by_addr.get(s.addr, '?')}"
        info = TensorInfo(name, ROLE_BY_PROT.get(s.maxprot, "intermediate"), by_addr.get(s.addr), s.size, s.addr)
        stab = c.stabs.get(raw_name) or c.stabs.get(name)
        if stab is not None:
            info.shape = stab.shape
            info.strides = tuple(d[2] for d in stab.dims)
            info.dtype = DTYPES.get(stab.dtype, stab.dtype)
        out.append(info)
    return out


def _raw_tensors(raw: RawBuffer) -> list[TensorInfo]:
    out = []
    for b in raw.sidecar.buffers:
        strides: tuple[int, ...] = ()
        if len(b.shape) == 4 and b.row_stride and b.plane_stride:
            strides = (b.plane_stride * b.shape[1], b.plane_stride, b.row_stride, 2 if b.dtype == "fp16" else 1)
        out.append(TensorInfo(b.name, b.role, b.slot, b.bytes, None, b.shape, b.dtype, strides))
    return out


def summarize(decoded: Decoded) -> Summary:
    """Digest a decoded .hwx or raw buffer."""
    gen = decoded.generation
    slots = decoded.slot_table()
    if isinstance(decoded, Container):
        tensors = _hwx_tensors(decoded, slots)
        weights = []
        for s in decoded.sections:
            if s.has_data and s is not decoded.text:
                data = decoded.section_bytes(s)
                syms = [sym.name for sym in decoded.symbols if sym.type == 0xF and sym.sect == s.index]
                weights.append({"section": f"{s.segname},{s.sectname}", "vmaddr": f"{s.addr:#x}",
                                "file_offset": f"{s.offset:#x}", "bytes": s.size,
                                "nonzero_bytes": len(data) - data.count(0), "symbols": syms})
        state1 = decoded.thread(1) or []
        state4 = decoded.thread(4) or []
        ne_mask = state1[517] if len(state1) > 517 else (state4[525] if len(state4) > 525 else None)
        compiler = _compiler(decoded)
    else:
        tensors = _raw_tensors(decoded)
        data = decoded.data[decoded.weights_offset:decoded.weights_offset + decoded.weights_size]
        weights = [{"section": "weights", "file_offset": f"{decoded.weights_offset:#x}", "bytes": len(data),
                    "nonzero_bytes": len(data) - data.count(0), "symbols": []}]
        ne_mask = None
        compiler = ""
    regs = RegisterFile(decoded.regmap)
    channels: list[KernelChannel] = []
    bindings = []
    for task in decoded.stream.tasks:
        regs.apply(task.writes)
        binding = task_slots(decoded, task)
        bindings.append(binding)
        for n in range(gen.kernel_channels):
            if regs.field(f"KernelDMASrc.CoeffDMAConfig[{n}]", "En"):
                channels.append(KernelChannel(
                    task.index, n, binding.get("kernel"),
                    64 * regs.field(f"KernelDMASrc.CoeffBaseAddr[{n}]", "Addr"),
                    64 * regs.field(f"KernelDMASrc.CoeffBfrSize[{n}]", "MemBfrSize")))
    return Summary(gen.name, gen.encoding, gen.td_version, len(decoded.stream.tasks), ne_mask, compiler,
                   slots, tensors, weights, channels, bindings, list(decoded.notes))
