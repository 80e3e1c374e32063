"""The width-axis crop path: a slice with a non-zero begin offset applies a fixed ×16 gain.

On M1/H13 and A14/H14 a width slice whose begin offset is not zero goes through a crop DMA that
scales by 16 on the way (guide ch. 3). Values come out unchanged unless 16·x overflows the fp16
range: a fill of 4094 passes (4094·16 = 65504), 4096 becomes infinity. Height, channel and
batch offsets, and a zero width offset, take the plain path.
"""

from __future__ import annotations

import numpy as np

from anesim.numerics.fp16 import f16_to_f32, f32_to_f16
from anesim.numerics.rules import WIDTH_SLICE_GAIN


def crop_gain_stage(x: np.ndarray) -> np.ndarray:
    """fp16 bits of the crop DMA's intermediate RN16(16·x), where the overflow happens."""
    v = f16_to_f32(np.asarray(x, np.uint16))
    return f32_to_f16(v * np.float32(WIDTH_SLICE_GAIN))


def width_slice(x: np.ndarray, begin: int, end: int | None = None, step: int = 1,
                crop_gain: bool = True) -> np.ndarray:
    """fp16 bits of ``x[..., begin:end:step]``, with the crop path's overflow when begin ≠ 0."""
    out = np.ascontiguousarray(np.asarray(x, np.uint16)[..., begin:end:step])
    if begin == 0 or not crop_gain:
        return out
    boosted = crop_gain_stage(out)
    overflow = ((boosted & 0x7FFF) == 0x7C00) & ((out & 0x7FFF) < 0x7C00)
    out[overflow] = (out[overflow] & 0x8000) | 0x7C00
    return out
