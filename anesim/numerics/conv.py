"""2-D convolution lowered to the MAC reduction through im2col, keeping the lane lattice.

The lanes of one output are ordered (kernel row, kernel column, input channel), input channel
innermost, and tiled in fours across that flattened order; :mod:`anesim.numerics.reference`
builds the same lane order with plain loops. Spatial padding supplies ``pad_value`` (zero by
default) as a MAC operand, like the padding constant register.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from anesim.numerics.mac import mode_kernels, reduce_grouped_f32
from anesim.numerics.rules import M1_RULES, MacRules

_MAX_LANE_BYTES = 256 * 1024 * 1024  # cap on one im2col chunk; larger convs run in row bands


def output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                dilation: int) -> int:
    """Output extent of one spatial axis."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _lanes(xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int],
           oy0: int, oy1: int, wo: int) -> np.ndarray:
    """im2col of padded images xp (N,C,Hp,Wp) for output rows oy0..oy1: (K, N*rows*wo)."""
    n, c = xp.shape[:2]
    rows = oy1 - oy0
    out = np.empty((kh, kw, c, n, rows, wo), np.float32)
    for ky in range(kh):
        y0 = oy0 * stride[0] + ky * dilation[0]
        for kx in range(kw):
            x0 = kx * dilation[1]
            window = xp[:, :, y0:y0 + (rows - 1) * stride[0] + 1:stride[0],
                        x0:x0 + (wo - 1) * stride[1] + 1:stride[1]]
            out[ky, kx] = window.transpose(1, 0, 2, 3)
    return out.reshape(kh * kw * c, n * rows * wo)


def conv2d_acc(x: np.ndarray, w: np.ndarray, stride: tuple[int, int] = (1, 1),
               padding: tuple[int, int, int, int] = (0, 0, 0, 0),
               dilation: tuple[int, int] = (1, 1), groups: int = 1,
               rules: MacRules = M1_RULES, pad_value: float = 0.0,
               reduce: Callable[..., np.ndarray] = reduce_grouped_f32) -> np.ndarray:
    """Float32 accumulators (N,O,Ho,Wo) of a grouped convolution of MAC operand values.

    ``reduce`` sums each band of im2col lanes; given one that returns fp16 bits (the port
    included), the result is those bits instead.
    """
    n, c, h, wdt = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups or o % groups:
        raise ValueError(f"conv2d: input channels {c}, weight {w.shape} and groups {groups} disagree")
    og = o // groups
    top, bottom, left, right = padding
    ho = output_size(h, kh, stride[0], top, bottom, dilation[0])
    wo = output_size(wdt, kw, stride[1], left, right, dilation[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv2d: kernel {kh}x{kw} does not fit the padded {h}x{wdt} input")
    xp = np.full((n, c, h + top + bottom, wdt + left + right), pad_value, np.float32)
    xp[:, :, top:top + h, left:left + wdt] = x
    # weights (O, Cg, kh, kw) -> per group (og, kh*kw*cg) in lane order
    a = w.reshape(groups, og, cg, kh, kw).transpose(0, 1, 3, 4, 2).reshape(groups, og, kh * kw * cg)
    lane_count = kh * kw * cg
    bytes_per_row = groups * lane_count * n * wo * 4
    band = max(1, min(ho, _MAX_LANE_BYTES // max(bytes_per_row, 1)))
    out: np.ndarray | None = None
    for oy0 in range(0, ho, band):
        oy1 = min(ho, oy0 + band)
        rows = oy1 - oy0
        b = np.stack([_lanes(xp[:, g * cg:(g + 1) * cg], kh, kw, stride, dilation, oy0, oy1, wo)
                      for g in range(groups)])
        acc = reduce(a, b, rules)  # (G, og, n*rows*wo)
        if out is None:
            out = np.empty((n, o, ho, wo), acc.dtype)
        out[:, :, oy0:oy1, :] = (acc.reshape(groups, og, n, rows, wo)
                                 .transpose(2, 0, 1, 3, 4).reshape(n, o, rows, wo))
    assert out is not None  # ho > 0, so at least one band ran
    return out


def conv2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, int] = (1, 1),
           padding: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: tuple[int, int] = (1, 1),
           groups: int = 1, rules: MacRules = M1_RULES, pad_value: float = 0.0,
           mode: str = "exact") -> np.ndarray:
    """fp16 bits of a grouped convolution of fp16 bits x (N,C,H,W) with w (O,C/groups,kh,kw).

    ``mode="fast"`` sums with float32 BLAS instead of the tile rule (:mod:`anesim.numerics.fast`).
    """
    operand, reduce = mode_kernels(mode)
    # the weights go to lane order (kernel row, kernel column, input channel) as 2-byte bits;
    # viewed back as (O, C/groups, kh, kw), conv2d_acc's own reordering of them copies nothing
    lanes = np.ascontiguousarray(np.asarray(w, dtype=np.uint16).transpose(0, 2, 3, 1))
    wv = operand(lanes, rules).transpose(0, 3, 1, 2)
    # each band goes through the output port as it is reduced (the port is elementwise)
    return conv2d_acc(operand(x, rules), wv, stride, padding, dilation, groups, rules, pad_value, reduce)
