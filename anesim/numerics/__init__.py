"""The engine's numerics: fp16 conversion, the MAC reduction rule, and numba kernels.

Everything here works on fp16 *bit patterns* (``uint16`` arrays; ``np.float16`` arrays are
accepted and viewed) and returns fp16 bit patterns. Activations are NCHW (N may be 1), weights
OIHW. Nothing in this package knows about files, programs or timing; the functional engine
calls these functions once per task stage. ``docs/numerics.md`` states the rules and the
assumptions behind them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np

from anesim.numerics.conv import conv2d as _conv2d
from anesim.numerics.fast import MODES as NUMERICS_MODES
from anesim.numerics.fast import blas_owns_cores
from anesim.numerics.fp16 import PATH as FP16_PATH
from anesim.numerics.fp16 import f16_to_f32, f32_to_f16, from_bits, to_bits
from anesim.numerics.lut import BUILDERS as LUT_BUILDERS
from anesim.numerics.lut import Lut, apply_lut, builtin_lut
from anesim.numerics.mac import matmul as _matmul
from anesim.numerics.planar import BINARY_OPS, UNARY_OPS, elementwise, leaky_relu, pool, scale_bias
from anesim.numerics.quant import dequantize, depalettize, desparsify, quantize, unpack_indices
from anesim.numerics.rules import IEEE_PORT_RULES, M1_RULES, TILE_LANES, MacRules
from anesim.numerics.slicing import crop_gain_stage, width_slice

Pair = tuple[int, int]
Padding = int | tuple[int, int] | tuple[int, int, int, int]


def _pair(v: int | tuple[int, int]) -> Pair:
    """An (h, w) pair from an int or a pair."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def _padding(p: Padding) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, an (h, w) pair or a 4-tuple."""
    if isinstance(p, (int, np.integer)):
        return (int(p),) * 4
    if len(p) == 2:
        return int(p[0]), int(p[0]), int(p[1]), int(p[1])
    if len(p) == 4:
        top, bottom, left, right = p
        return int(top), int(bottom), int(left), int(right)
    raise ValueError(f"padding {p!r}: give an int, (h, w) or (top, bottom, left, right)")


def _kernel_threads(mode: str) -> AbstractContextManager[None]:
    """The fast mode's thread arrangement around BLAS (:func:`.fast.blas_owns_cores`), else nothing."""
    return blas_owns_cores() if mode == "fast" else nullcontext()


def _bits(x: np.ndarray) -> np.ndarray:
    """fp16 bit patterns of an fp16 array (uint16 passes through, float16 is viewed)."""
    arr = np.asarray(x)
    if arr.dtype not in (np.uint16, np.float16):
        raise TypeError(f"expected fp16 bit patterns (uint16) or float16, got {arr.dtype}")
    return to_bits(arr)


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None,
           post_scale: np.ndarray | float | None = None, rules: MacRules = M1_RULES,
           mode: str = "exact") -> np.ndarray:
    """fp16 bits of ``a @ b`` (…, M, K) @ (…, K, N) on the MAC array, then scale and bias per column.

    ``mode="fast"`` sums in float32 BLAS instead of under the tile rule (not bit-exact).
    """
    with _kernel_threads(mode):
        y = _matmul(_bits(a), _bits(b), rules, mode)
    if bias is None and post_scale is None:
        return y
    return scale_bias(y, post_scale, None if bias is None else _bits(bias), axis=y.ndim - 1)


def inner_product(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
                  post_scale: np.ndarray | float | None = None,
                  rules: MacRules = M1_RULES, mode: str = "exact") -> np.ndarray:
    """fp16 bits of a fully connected layer: x (N, Cin), w (Cout, Cin) → (N, Cout)."""
    return matmul(x, np.ascontiguousarray(_bits(w).T), bias, post_scale, rules, mode)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None,
           stride: int | Pair = 1, padding: Padding = 0, dilation: int | Pair = 1,
           groups: int = 1, post_scale: np.ndarray | float | None = None,
           rules: MacRules = M1_RULES, pad_value: float = 0.0, mode: str = "exact") -> np.ndarray:
    """fp16 bits of a grouped 2-D convolution x (N,C,H,W) * w (O,C/groups,kh,kw), then scale, bias.

    ``mode="fast"`` sums in float32 BLAS instead of under the tile rule (not bit-exact).
    """
    xb = _bits(x)
    if xb.ndim == 3:
        xb = xb[None]
    with _kernel_threads(mode):
        y = _conv2d(xb, _bits(w), _pair(stride), _padding(padding), _pair(dilation), groups, rules,
                    pad_value, mode)
    if bias is None and post_scale is None:
        return y
    return scale_bias(y, post_scale, None if bias is None else _bits(bias), axis=1)


__all__ = [
    "BINARY_OPS", "FP16_PATH", "NUMERICS_MODES", "IEEE_PORT_RULES", "LUT_BUILDERS", "Lut", "M1_RULES", "MacRules",
    "TILE_LANES", "UNARY_OPS", "apply_lut", "builtin_lut", "conv2d", "crop_gain_stage",
    "depalettize", "dequantize", "desparsify", "elementwise", "f16_to_f32", "f32_to_f16",
    "from_bits", "inner_product", "leaky_relu", "matmul", "pool", "quantize", "scale_bias",
    "to_bits", "unpack_indices", "width_slice",
]
