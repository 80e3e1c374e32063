"""Regenerate the sidecars in this folder from ../shared/hwx/eiln (run from the checkout root).

Buffer slots, sizes, roles and names come from eiln's anec_*.h headers (``tiles[i]`` in 16 KiB
units, ``types[i]``, the ``// dst0`` comments, tsk/krn sizes, TD count and size); shapes and
strides come from the task registers of the kernel itself (Common.InDim/Cin of the first task,
TileDMASrc/TileDMADst strides). The kernel binaries are not copied here: tests read them from
../shared/hwx/eiln/kernels.tar.gz.

    .venv/bin/python programs/eiln/make_sidecars.py
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared" / "hwx" / "eiln"
TILE = 0x4000
ROLE = {"TILE_SRC": "input", "TILE_DST": "output", "TILE_ITM": "intermediate"}


def parse_headers() -> dict[str, dict]:
    """Model name -> the fields of its ``struct ane_model`` initialiser."""
    models = {}
    for header in sorted(SHARED.glob("anec_*.h")):
        text = header.read_text()
        for m in re.finditer(r"static const struct ane_model ane_\w+ = \{(.*?)\n\};", text, re.S):
            body = m.group(1)
            name = re.search(r'\.name = "(\w+)"', body).group(1)
            fname = re.search(r'ANEC_PATH "([\w/.]+)"', body).group(1)
            ints = {k: int(v, 0) for k, v in re.findall(r"\.(\w+) = (0x[0-9a-fA-F]+|\d+),", body)}
            tiles = {int(i): (int(n), label) for i, n, label in re.findall(r"\.tiles\[(\d+)\] = (\d+), // (\w+)", body)}
            types = {int(i): t for i, t in re.findall(r"\.types\[(\d+)\] = (\w+),", body)}
            models[fname] = {"name": name, "ints": ints, "tiles": tiles, "types": types, "header": header.name}
    return models


def sidecar(path: str, model: dict, data: bytes) -> dict:
    """The sidecar for one kernel."""
    from anesim.hwx.raw import Sidecar, parse

    ints = model["ints"]
    sc = Sidecar(name=model["name"], command_size=ints["tsk_size"], first_task_size=ints["td_size"], tasks=ints["td_count"])
    raw = parse(data, sc, path)
    regs: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, task in enumerate(raw.stream.tasks):
        for addr, value in task.writes:
            regs[addr] = value
        if i == 0:
            first = dict(regs)
    win, hin = first[0x0] & 0x7FFF, (first[0x0] >> 16) & 0x7FFF
    cin = first[0xC] & 0x1FFFF
    src_row, src_plane = first[0x1380C] & ~0x3F, first[0x13810] & ~0x3F
    groups = first.get(0x24, 1) & 0x1FFF
    if hin == 1 and groups > 1:
        # softmax/logsoftmax start with a planar task that walks the rows as groups of one
        # row each (NumGroups rows, TileDMASrc.GroupStride apart): the tensor has that many rows
        hin, src_row = groups, first[0x13818] & ~0x3F
    dst_row, dst_plane = regs[0x17808] & ~0x3F, regs[0x1780C] & ~0x3F
    buffers = []
    for slot, (ntiles, label) in sorted(model["tiles"].items()):
        role = ROLE.get(model["types"].get(slot, ""))
        if role is None:
            continue  # slot 0: the command buffer itself
        buf = {"slot": slot, "name": label, "role": role}
        if role in ("input", "output"):
            row, plane = (src_row, src_plane) if role == "input" else (dst_row, dst_plane)
            buf.update({"shape": [1, cin, hin, win], "dtype": "fp16", "row_stride": row, "plane_stride": plane})
        buf["bytes"] = ntiles * TILE
        buffers.append(buf)
    tsk = ints["tsk_size"]
    w_off = -(-tsk // 16) * 16
    return {
        "format": "anesim-raw-sidecar",
        "version": 1,
        "name": model["name"],
        "generation": "H13",
        "source": f"eiln/ane anec/kernels.tar.gz: {path}; layout from {model['header']}, shapes from the task registers",
        "file_size": len(data),
        "command": {"size": hex(tsk), "first_task_size": hex(ints["td_size"]), "tasks": ints["td_count"]},
        "weights": {"offset": hex(w_off), "size": hex(ints["krn_size"])},
        "buffers": buffers,
    }


def main() -> int:
    """Write one sidecar per kernel in the archive."""
    sys.path.insert(0, str(ROOT))
    models = parse_headers()
    written = 0
    with tarfile.open(SHARED / "kernels.tar.gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.endswith(".bin"):
                continue
            rel = member.name.split("kernels/", 1)[1]
            data = tar.extractfile(member).read()
            doc = sidecar(rel, models[rel], data)
            out = HERE / rel.replace(".bin", ".sidecar.json")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(doc, indent=2) + "\n")
            written += 1
    print(f"wrote {written} sidecars")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
