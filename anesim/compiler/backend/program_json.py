"""The program model as JSON: what ``anesim compile -o X.json`` writes.

Tasks, layouts, NE and planar stages, slots and tensors are written in full; kernel weights are
summarised (format, shape, DMA bytes) unless ``weights=True``, because a ResNet-50 carries 25 M.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, fields, is_dataclass
from typing import Any

import numpy as np

from anesim.program.model import ActivationTable, Kernel, Layout, Program, Task

FORMAT = "anesim-program-model/1"


def _layout(layout: Layout) -> dict[str, Any]:
    return asdict(layout)


def _array(a: np.ndarray | None) -> dict[str, Any] | None:
    if a is None:
        return None
    arr = np.ascontiguousarray(a)
    return {"dtype": str(arr.dtype), "shape": list(arr.shape), "base64": base64.b64encode(arr.tobytes()).decode()}


def _kernel(kernel: Kernel | None, weights: bool) -> dict[str, Any] | None:
    if kernel is None:
        return None
    out: dict[str, Any] = {"format": kernel.format, "shape": list(kernel.shape),
                           "palette_bits": kernel.palette_bits, "dram_bytes": kernel.dram_bytes}
    if weights:
        out["weights"] = _array(kernel.weights)
        for key in ("scale", "zero_point", "palette"):
            out[key] = _array(getattr(kernel, key))
    return out


def _table(table: ActivationTable | None) -> dict[str, Any] | None:
    if table is None:
        return None
    return {"name": table.name, "range_lo": table.range_lo, "range_hi": table.range_hi,
            "value_below": table.value_below, "value_above": table.value_above,
            "reduction": table.reduction, "symmetry": table.symmetry,
            "samples": [int(v) for v in np.asarray(table.samples, np.uint16)]}


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def task_to_dict(task: Task, weights: bool = False) -> dict[str, Any]:
    """One task as plain data."""
    out: dict[str, Any] = {
        "index": task.index, "name": task.name, "cores_used": task.cores_used, "ocg_size": task.ocg_size,
        "tile_height": task.tile_height, "winograd": task.winograd,
        "sources": [_layout(s) for s in task.sources], "result": _layout(task.result),
        "ne": None, "planar": _plain(task.planar) if task.planar is not None else None,
    }
    if task.ne is not None:
        ne = task.ne
        out["ne"] = {
            "op": ne.op, "kernel_hw": list(ne.kernel_hw), "stride_hw": list(ne.stride_hw),
            "padding_tblr": list(ne.padding_tblr), "dilation_hw": list(ne.dilation_hw), "groups": ne.groups,
            "kernel": _kernel(ne.kernel, weights),
            "bias": None if ne.bias is None else [int(v) for v in np.asarray(ne.bias, np.uint16)],
            "post_scale": ne.post_scale, "activation": ne.activation, "table": _table(ne.table),
        }
    return out


def program_to_dict(program: Program, weights: bool = False) -> dict[str, Any]:
    """A whole program as plain data (JSON-ready)."""
    return {
        "format": FORMAT,
        "name": program.name,
        "generation": program.generation,
        "source": program.source,
        "notes": list(program.notes),
        "slots": [{"index": s.index, "size_bytes": s.size_bytes, "role": s.role} for s in program.slots.values()],
        "tensors": [_plain(t) for t in program.tensors.values()],
        "tasks": [task_to_dict(t, weights) for t in program.tasks],
    }
