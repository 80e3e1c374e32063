"""Raw H13 command buffers (no container) and the sidecar file that describes them.

A raw buffer is what the Linux driver submits (command-stream.md §1.2, §2.7): task descriptors
from offset 0, chained by NextPointer, then the weights / lookup tables at the next 16-byte
boundary. It carries no names, shapes or buffer sizes, so a small JSON *sidecar* supplies them
(format described in docs/program-format.md)::

    {"format": "anesim-raw-sidecar", "version": 1, "name": "gelu", "generation": "H13",
     "command": {"size": "0x274", "first_task_size": "0x274", "tasks": 1},
     "weights": {"offset": "0x280", "size": "0x80"},
     "buffers": [{"slot": 4, "name": "dst0", "role": "output", "shape": [1, 1, 2560, 1600],
                  "dtype": "fp16", "row_stride": 3200, "plane_stride": 8192000, "bytes": 8192000}, ...]}

Slot 0 is the command buffer and slot 1 the weights, as the driver binds them. Without a sidecar
the loader assumes H13, a first task of 0x274 bytes (the only raw layout published), and derives
the command length from the task chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anesim.errors import FormatError, ProgramError
from anesim.hwx import stream_a
from anesim.hwx.binary import Reader
from anesim.hwx.container import FORMAT_TAG, FORMAT_VERSION
from anesim.hwx.generations import Generation, by_name
from anesim.hwx.jsonform import Doc, blob, hexnum
from anesim.hwx.regmaps import RegisterMap, load_map
from anesim.hwx.stream_a import Stream
from anesim.jsonfile import read_json
from anesim.limits import check_bytes, tensor_bytes
from anesim.program.model import DTYPE_BYTES

SIDECAR_TAG = "anesim-raw-sidecar"
DEFAULT_FIRST_TASK = 0x274
MAX_SIDECAR_BYTES = 1 << 20
ROLES = ("input", "output", "intermediate", "constant")


@dataclass(frozen=True)
class BufferSpec:
    """One buffer slot the sidecar describes."""

    slot: int
    name: str
    role: str
    shape: tuple[int, ...] = ()
    dtype: str = "fp16"
    row_stride: int = 0
    plane_stride: int = 0
    bytes: int = 0


@dataclass
class Sidecar:
    """Everything the sidecar says about a raw buffer."""

    name: str = ""
    source: str = ""  # where the buffer came from (provenance; shown in the listing)
    generation: str = "H13"
    command_size: int | None = None
    first_task_size: int = DEFAULT_FIRST_TASK
    tasks: int | None = None
    weights_offset: int | None = None
    weights_size: int | None = None
    file_size: int | None = None  # the size of the buffer file it describes, when it says
    buffers: list[BufferSpec] = field(default_factory=list)
    doc: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawBuffer:
    """A decoded raw command buffer."""

    file: str | None
    data: bytes
    generation: Generation
    regmap: RegisterMap
    sidecar: Sidecar
    stream: Stream
    command_size: int
    weights_offset: int
    weights_size: int
    doc: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def slot_table(self) -> dict[int, int]:
        """The slots this buffer holds itself - 0 command, 1 weights - as offsets into the file.

        The host binds every other slot (see ``sidecar.buffers``); a raw buffer fixes no address for them.
        """
        return {0: 0, 1: self.weights_offset}


def parse_sidecar(value: dict[str, Any], file: str | None = None) -> Sidecar:
    """Check and read a sidecar document."""
    doc = Doc(value, "$", file).only("format", "version", "name", "generation", "source", "file_size", "command",
                                     "weights", "buffers")
    tag = doc.get("format").value
    if tag != SIDECAR_TAG:
        raise doc.get("format").error("not an anesim raw-buffer sidecar", expected=SIDECAR_TAG, found=tag)
    doc.get("version").int(1, 1)
    sc = Sidecar(doc=value)
    sc.name = doc.get("name", "").str()
    sc.source = doc.get("source", "").str()
    if doc.has("file_size"):
        sc.file_size = doc.get("file_size").int(1, 1 << 40)
    sc.generation = doc.get("generation", "H13").str()
    by_name(sc.generation, file=file, where=f"{doc.path}.generation")
    cmd = doc.get("command", {}).only("size", "first_task_size", "tasks")
    if cmd.has("size"):
        sc.command_size = cmd.get("size").int(4, 1 << 32)
    sc.first_task_size = cmd.get("first_task_size", DEFAULT_FIRST_TASK).int(4, 1 << 16)
    if cmd.has("tasks"):
        sc.tasks = cmd.get("tasks").int(1, 1 << 16)
    if doc.has("weights"):
        doc.get("weights").only("offset", "size")
        sc.weights_offset = doc.get("weights").get("offset").int(0, 1 << 32)
        sc.weights_size = doc.get("weights").get("size").int(0, 1 << 32)
    for b in doc.get("buffers", []).items():
        b.only("slot", "name", "role", "shape", "dtype", "row_stride", "plane_stride", "bytes")
        role = b.get("role").str()
        if role not in ROLES:
            raise b.get("role").error("unknown buffer role", expected=", ".join(ROLES), found=role)
        dtype = b.get("dtype", "fp16").str()
        if dtype not in DTYPE_BYTES:
            raise b.get("dtype").error("unknown buffer type", expected=", ".join(DTYPE_BYTES), found=dtype)
        shape = tuple(d.int(0, 1 << 31) for d in b.get("shape", []).items())
        check_bytes(tensor_bytes(shape, 2), file=file, field=f"{b.get('shape', []).path}")
        sc.buffers.append(BufferSpec(
            b.get("slot").int(2, 255), b.get("name").str(), role, shape, dtype,
            b.get("row_stride", 0).int(0, 1 << 40), b.get("plane_stride", 0).int(0, 1 << 40), b.get("bytes", 0).int(0, 1 << 40)))
    return sc


def load_sidecar(path: str | Path) -> Sidecar:
    """Read a sidecar file; malformed JSON is a ProgramError naming the file."""
    value = read_json(path, ProgramError, "sidecar", MAX_SIDECAR_BYTES)
    return parse_sidecar(value, str(path))


def parse(data: bytes, sidecar: Sidecar | None = None, file: str | None = None) -> RawBuffer:
    """Decode a raw command buffer described by ``sidecar`` (defaults when None)."""
    sc = sidecar or Sidecar()
    gen = by_name(sc.generation, file=file)
    if gen.encoding != "A":
        raise FormatError(f"raw command buffers are only understood for encoding-A generations, not {gen.name}", file=file)
    regmap = load_map(gen.regmap)
    r = Reader(data, file)
    if sc.file_size is not None and sc.file_size != len(data):
        raise r.error("the sidecar describes a file of another size", 0, expected=f"{sc.file_size} bytes",
                      found=f"{len(data)} bytes")
    size = sc.command_size
    if size is None:
        # Walk the chain over the whole file once to find where the last task ends.
        probe = stream_a.decode(r, 0, len(data), regmap, sc.first_task_size)
        last = probe.tasks[-1]
        size = last.offset + last.size
    if size > len(data):
        raise r.error("the sidecar's command size runs past the end of the file", 0,
                      expected=f"<= {len(data):#x}", found=f"{size:#x}")
    stream = stream_a.decode(r, 0, size, regmap, sc.first_task_size, sc.tasks)
    w_off = sc.weights_offset if sc.weights_offset is not None else min(-(-size // 16) * 16, len(data))
    w_size = sc.weights_size if sc.weights_size is not None else len(data) - w_off
    if w_off < size or w_off + w_size > len(data):
        raise r.error("the weights region overlaps the command stream or runs past the end of the file", w_off,
                      expected=f"{size:#x} <= start, end <= {len(data):#x}", found=f"{w_off:#x}+{w_size:#x}")
    regions: list[dict[str, Any]] = [{"name": "command", "offset": "0x0", "size": hexnum(size), "stream": stream.doc}]
    if w_off > size:
        regions.append({"name": "gap", "offset": hexnum(size), "data": blob(data[size:w_off])})
    if w_size:
        regions.append({"name": "weights", "offset": hexnum(w_off), "data": blob(data[w_off:w_off + w_size])})
    if w_off + w_size < len(data):
        regions.append({"name": "gap", "offset": hexnum(w_off + w_size), "data": blob(data[w_off + w_size:])})
    doc = {"format": FORMAT_TAG, "version": FORMAT_VERSION, "container": "raw", "generation": gen.name,
           "size": len(data), "sidecar": sc.doc, "regions": regions}
    return RawBuffer(file, data, gen, regmap, sc, stream, size, w_off, w_size, doc, list(stream.notes))
