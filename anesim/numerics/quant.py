"""Compressed and quantised operands, reconstructed to fp16 before they reach the multiplier.

The engine dequantises an int8/uint8 weight to fp16 on the way in, ``w = RN16(s · (q − z))``
(affine, scale scalar or per output channel), and a palettised weight is an index into an fp16
palette; the multiply that follows is the ordinary fp16 one, so these functions produce fp16
bits that then go through :func:`anesim.numerics.conv.conv2d` or :func:`anesim.numerics.mac.matmul`
unchanged. A sparse weight is a keep-mask plus the packed fp16 non-zeros.
"""

from __future__ import annotations

import numpy as np

from anesim.numerics.fp16 import to_bits


def _along(v: np.ndarray | float | int, ndim: int, axis: int) -> np.ndarray:
    """Broadcast a scalar or a per-channel vector along ``axis`` of an ndim-D array."""
    arr = np.asarray(v)
    if arr.ndim == 0:
        return arr
    shape = [1] * ndim
    shape[axis] = -1
    return arr.reshape(shape)


def _scale_values(scale: np.ndarray | float) -> np.ndarray:
    """A scale (fp16 bits, or numbers rounded to fp16) as float64 values."""
    arr = np.asarray(scale)
    bits = arr if arr.dtype == np.uint16 else to_bits(arr.astype(np.float64))
    return np.asarray(bits).view(np.float16).astype(np.float64)


def dequantize(q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int = 0,
               axis: int = 0) -> np.ndarray:
    """fp16 bits of ``scale · (q − zero_point)`` rounded once; scale/zero point per ``axis``."""
    q = np.asarray(q)
    if q.dtype not in (np.int8, np.uint8):
        raise ValueError(f"dequantize takes int8 or uint8 codes, not {q.dtype}")
    s = _scale_values(scale)
    z = np.asarray(zero_point, np.int64)
    centred = q.astype(np.int64) - _along(z, q.ndim, axis)  # exact in fp16: |q − z| ≤ 255
    with np.errstate(over="ignore"):
        return (_along(s, q.ndim, axis) * centred).astype(np.float16).view(np.uint16)


def quantize(x: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int = 0,
             dtype: type = np.int8, axis: int = 0) -> np.ndarray:
    """int8/uint8 codes of fp16 bits ``x``: round(x / scale) half to even, plus zero point, saturated."""
    info = np.iinfo(dtype)
    v = np.asarray(x, np.uint16).view(np.float16).astype(np.float64)
    v = np.where(np.isnan(v), np.inf, v)  # the input boundary rule: NaN is +inf
    s = _scale_values(scale)
    z = _along(np.asarray(zero_point, np.int64), v.ndim, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        code = np.rint(v / _along(s, v.ndim, axis)) + z
    code = np.where(np.isnan(code), 0, code)  # inf/inf and the like: indeterminate, +0
    return np.clip(code, info.min, info.max).astype(dtype)


def unpack_indices(packed: np.ndarray | bytes, bits: int, count: int) -> np.ndarray:
    """``count`` n-bit palette indices from a byte stream, least significant bits first."""
    if bits not in (1, 2, 3, 4, 6, 8):
        raise ValueError(f"palette indices are 1, 2, 3, 4, 6 or 8 bits, not {bits}")
    raw = np.frombuffer(bytes(packed), np.uint8) if isinstance(packed, (bytes, bytearray)) \
        else np.asarray(packed, np.uint8).reshape(-1)
    needed = -(-count * bits // 8)
    if raw.shape[0] < needed:
        raise ValueError(f"{count} indices of {bits} bits need {needed} bytes, got {raw.shape[0]}")
    stream = np.unpackbits(raw[:needed], bitorder="little")[: count * bits].reshape(count, bits)
    weights = (1 << np.arange(bits)).astype(np.uint16)
    return (stream.astype(np.uint16) * weights).sum(axis=1).astype(np.uint16)


def depalettize(indices: np.ndarray, palette: np.ndarray, axis: int | None = None) -> np.ndarray:
    """fp16 bits ``palette[index]``; a 2-D palette holds one palette per slice along ``axis``."""
    idx = np.asarray(indices).astype(np.int64)
    pal = np.asarray(palette, np.uint16)
    if pal.ndim == 1:
        if idx.size and idx.max() >= pal.shape[0]:
            raise ValueError(f"palette index {int(idx.max())} past a palette of {pal.shape[0]}")
        return pal[idx]
    if axis is None:
        raise ValueError("a per-channel palette needs the channel axis")
    if pal.shape[0] != idx.shape[axis]:
        raise ValueError(f"{pal.shape[0]} palettes for {idx.shape[axis]} channels")
    if idx.size and idx.max() >= pal.shape[1]:
        raise ValueError(f"palette index {int(idx.max())} past a palette of {pal.shape[1]}")
    channel = np.arange(idx.shape[axis]).reshape([-1 if d == axis else 1 for d in range(idx.ndim)])
    return pal[np.broadcast_to(channel, idx.shape), idx]


def desparsify(mask: np.ndarray, nonzeros: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Dense fp16 bits from a keep-mask and the packed non-zeros in row-major scan order.

    ``mask`` is a boolean array of the dense shape, or packed mask bytes (least significant bit
    first) together with ``shape``. Positions the mask drops hold +0.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if shape is None:
            raise ValueError("a packed sparse mask needs the dense shape")
        count = int(np.prod(shape))
        m = np.unpackbits(m.astype(np.uint8).reshape(-1), bitorder="little")[:count].astype(bool)
        m = m.reshape(shape)
    values = np.asarray(nonzeros, np.uint16).reshape(-1)
    kept = int(m.sum())
    if values.shape[0] < kept:
        raise ValueError(f"the mask keeps {kept} values but {values.shape[0]} were given")
    dense = np.zeros(m.shape, np.uint16)
    dense[m] = values[:kept]
    return dense
