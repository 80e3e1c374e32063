"""Gathering OIHW weights out of per-core kernel buffers (static or fetched at run time)."""

from __future__ import annotations

import numpy as np

from anesim.program.model import DTYPE_BYTES, KernelPlacement

_STORAGE = {"fp16": np.uint16, "int8": np.int8, "uint8": np.uint8}


def weights_from_source(planes: np.ndarray, groups: int = 1) -> np.ndarray:
    """OIHW 1x1 weights of a kernel-less convolution from its weight source.

    The source holds C_in channels of one row, each C_out / groups wide: group g's weights are
    channels [g * C_in/groups, (g + 1) * C_in/groups), and w[g * M + m, k] sits at
    [g * C_in/groups + k, 0, m] (for one group, w[o, c] at [c, 0, o]).
    """
    c_in, _, width = planes.shape
    k = c_in // groups
    w = planes[:, 0, :].reshape(groups, k, width).transpose(0, 2, 1)
    return np.ascontiguousarray(w).reshape(groups * width, k, 1, 1)


def kernel_row(placement: KernelPlacement, out_channel: int) -> tuple[int, int]:
    """(core, byte offset inside that core's buffer) of one output channel's weights."""
    p = placement
    core = (out_channel // p.ocg) % p.cores
    row = (out_channel // (p.ocg * p.cores)) * p.ocg + out_channel % p.ocg
    return core, row * p.row_bytes


def gather_weights(buffer: np.ndarray | bytes, placement: KernelPlacement, fmt: str) -> np.ndarray | None:
    """OIHW weights from a slot's bytes, or None when a channel's row falls outside its buffer."""
    data = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, (bytes, bytearray)) else buffer
    cout, cin_g, kh, kw = placement.shape_oihw
    elem = DTYPE_BYTES[fmt]
    need = cin_g * kh * kw * elem
    if cout * need > len(data):  # checked before allocating: counts may come from a damaged file
        return None
    weights = np.zeros((cout, cin_g, kh, kw), dtype=_STORAGE[fmt])
    for o in range(cout):
        core, pos = kernel_row(placement, o)
        if core >= len(placement.core_offsets_bytes) or placement.core_offsets_bytes[core] < 0:
            return None
        start = placement.core_offsets_bytes[core] + pos
        size = placement.core_sizes_bytes[core]  # 0: the program does not state it (H14+ defaults)
        if (size and pos + need > size) or start + need > len(data):
            return None
        weights[o] = np.frombuffer(data[start:start + need].tobytes(), dtype=_STORAGE[fmt]).reshape(cin_g, kh, kw)
    return weights
