"""H13 raw command buffers built from register fields, through the JSON form and the encoder.

A :class:`TaskRegs` names register fields (``"NE.MACCfg.OpMode": 4``) and header fields; every
other register of the seven canonical groups (command-stream.md §3.2) is written as zero, as a
task descriptor of the v7 compilers writes every word. The tasks are laid out 0x274 bytes apart
and chained by NextPointer, then the kernel data (tables, weights) follows as slot 1, and a
sidecar (docs/program-format.md) names the host buffers. The bytes come out of
:func:`anesim.hwx.encode.encode_doc`, the encoder behind ``anesim asm``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anesim.hwx.container import FORMAT_TAG
from anesim.hwx.encode import encode_doc
from anesim.hwx.jsonform import blob, hexnum
from anesim.hwx.raw import SIDECAR_TAG
from anesim.hwx.regmaps import RegDef, load_map

GENERATION = "H13"
# (first register address, words) of the canonical groups, in stream order (command-stream.md §3.2)
GROUPS = ((0x1F800, 62), (0x0, 16), (0x13800, 28), (0x4800, 18), (0x8800, 4), (0xC800, 5), (0x17800, 7))
TASK_BYTES = 4 * (10 + sum(1 + n for _, n in GROUPS))  # 0x274, the eiln kernels' task size
WEIGHTS_ALIGN = 16


@dataclass
class Buffer:
    """A host buffer the sidecar declares: an NCHW fp16 (or int) tensor in a slot."""

    slot: int
    name: str
    role: str
    shape: tuple[int, int, int, int]
    dtype: str = "fp16"

    @property
    def row_stride(self) -> int:
        """Bytes per row, padded to 64."""
        size = 2 if self.dtype == "fp16" else 1
        return -(-self.shape[3] * size // 64) * 64

    @property
    def plane_stride(self) -> int:
        """Bytes per channel plane."""
        return self.row_stride * self.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole buffer."""
        return self.plane_stride * self.shape[1] * self.shape[0]

    def to_json(self) -> dict[str, Any]:
        """The sidecar entry."""
        return {"slot": self.slot, "name": self.name, "role": self.role, "shape": list(self.shape),
                "dtype": self.dtype, "row_stride": self.row_stride, "plane_stride": self.plane_stride,
                "bytes": self.nbytes}


@dataclass
class TaskRegs:
    """One task: register fields by 'Register.Field' (or whole words by 'Register') and header fields."""

    fields: dict[str, int] = field(default_factory=dict)
    header: dict[str, int] = field(default_factory=dict)


def _pack(reg: RegDef, values: dict[str, int], where: str) -> int:
    by_name = {f.name: f for f in reg.fields}
    word = 0
    for name, value in values.items():
        if name == "":
            word |= value
            continue
        fdef = by_name.get(name)
        if fdef is None:
            raise KeyError(f"{where}: {reg.name} has no field {name!r}")
        if not 0 <= value < (1 << fdef.width):
            raise ValueError(f"{where}: {reg.name}.{name} = {value} does not fit {fdef.width} bits")
        word |= value << fdef.lo
    return word


def _by_register(fields: dict[str, int], where: str) -> dict[str, dict[str, int]]:
    regmap = load_map("h13")
    out: dict[str, dict[str, int]] = {}
    for key, value in fields.items():
        if regmap.by_name(key) is not None:
            out.setdefault(key, {})[""] = value
            continue
        reg, _, fld = key.rpartition(".")
        if regmap.by_name(reg) is None:
            raise KeyError(f"{where}: no register {reg!r} in the H13 map")
        out.setdefault(reg, {})[fld] = value
    return out


def task_doc(task: TaskRegs, index: int, last: bool) -> dict[str, Any]:
    """The JSON form of one task (as ``anesim disasm --json`` prints it)."""
    regmap = load_map("h13")
    where = f"task {index}"
    header_fields = {"TID": index, "EON": int(last), "NextSize": 0 if last else TASK_BYTES // 4 - 1,
                     "NextPointer": 0 if last else (index + 1) * TASK_BYTES, **task.header}
    header = []
    for reg in regmap.header[:regmap.header_words]:
        mine = {f.name: header_fields[f.name] for f in reg.fields if f.name in header_fields}
        header.append({"name": reg.name, "value": hexnum(_pack(reg, mine, where))})
    wanted = _by_register(task.fields, where)
    groups = []
    for base, words in GROUPS:
        regs = []
        for i in range(words):
            addr = base + 4 * i
            reg = regmap.lookup(addr)
            value = _pack(reg, wanted.pop(reg.name), where) if reg is not None and reg.name in wanted else 0
            regs.append({"addr": hexnum(addr), "value": f"{value:#010x}"})
        groups.append({"addr": hexnum(base), "registers": regs})
    if wanted:
        raise KeyError(f"{where}: registers outside the canonical groups: {sorted(wanted)}")
    return {"kind": "task", "index": index, "offset": hexnum(index * TASK_BYTES), "size": hexnum(TASK_BYTES),
            "header": header, "groups": groups}


def program_doc(name: str, tasks: list[TaskRegs], data: bytes, buffers: list[Buffer]) -> dict[str, Any]:
    """The JSON form of a whole raw program (command stream, padding, kernel data) with its sidecar."""
    command = TASK_BYTES * len(tasks)
    w_off = -(-command // WEIGHTS_ALIGN) * WEIGHTS_ALIGN
    data = data or bytes(64)
    size = w_off + len(data)
    sidecar = {"format": SIDECAR_TAG, "version": 1, "name": name, "generation": GENERATION,
               "source": "generated by anesim.opsuite", "file_size": size,
               "command": {"size": hexnum(command), "first_task_size": hexnum(TASK_BYTES), "tasks": len(tasks)},
               "weights": {"offset": hexnum(w_off), "size": hexnum(len(data))},
               "buffers": [b.to_json() for b in buffers]}
    regions: list[dict[str, Any]] = [{
        "name": "command", "offset": "0x0", "size": hexnum(command),
        "stream": {"encoding": "A", "first_task_size": hexnum(TASK_BYTES),
                   "items": [task_doc(t, i, i == len(tasks) - 1) for i, t in enumerate(tasks)]}}]
    if w_off > command:
        regions.append({"name": "padding", "offset": hexnum(command), "data": blob(bytes(w_off - command))})
    regions.append({"name": "weights", "offset": hexnum(w_off), "data": blob(data)})
    return {"format": FORMAT_TAG, "version": 1, "container": "raw", "generation": GENERATION, "size": size,
            "sidecar": sidecar, "regions": regions}


def write_program(directory: Path, name: str, tasks: list[TaskRegs], data: bytes,
                  buffers: list[Buffer]) -> tuple[Path, Path]:
    """Encode a program into DIR/NAME.bin and its sidecar DIR/NAME.sidecar.json."""
    doc = program_doc(name, tasks, data, buffers)
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / f"{name}.bin"
    sidecar = directory / f"{name}.sidecar.json"
    binary.write_bytes(encode_doc(doc, str(binary)))
    sidecar.write_text(json.dumps(doc["sidecar"], indent=1) + "\n", encoding="utf-8")
    return binary, sidecar


def f16_bits(value: float) -> int:
    """The fp16 bit pattern of a value (round to nearest even)."""
    with np.errstate(over="ignore"):
        return int(np.array([value], np.float64).astype(np.float16).view(np.uint16)[0])


def f32_bits(value: float) -> int:
    """The fp32 bit pattern of a value."""
    return int(np.array([value], np.float32).view(np.uint32)[0])
