"""Compressed constants of an ML program, kept in their format for the convolution that reads them
(Core ML importer mixin).

Palettised weights (``constexpr_lut_to_dense``) and 8-bit affine-quantised weights
(``constexpr_affine_dequantize``) in their iOS 16 form, the data as attributes. Every attribute
is checked against MIL's definition of the op (coremltools' ``iOS16/constexpr_ops.py``) before
any array is built: a palette of 2, 4, 16, 64 or 256 entries, ``ceil(n_bits * size / 8)`` bytes
of packed indices, 8-bit integer quantised data, a scale and zero point that are scalars or hold
one entry per slice of ``axis``. An attribute the op does not take is refused, never ignored.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from anesim.compiler.graph.constants import ConstantData

# NUM_PALETTES -> n_bits (MIL: NUM_PALETTES is one of 2, 4, 16, 64, 256)
PALETTE_BITS = {2: 1, 4: 2, 16: 4, 64: 6, 256: 8}
ATTRIBUTES = {"constexpr_lut_to_dense": ("lut", "indices", "shape"),
              "constexpr_affine_dequantize": ("quantized_data", "zero_point", "scale", "axis")}


def _array(v: Any) -> np.ndarray:
    """An attribute's value as an array (a blob's float data read now)."""
    return v.array() if isinstance(v, ConstantData) else np.asarray(v)


def _kind(v: Any) -> str:
    """An attribute value's numpy kind ("f" for float blob data, which is read later)."""
    return "f" if isinstance(v, ConstantData) else np.asarray(v).dtype.kind


def _size(v: Any) -> int:
    return math.prod(v.shape) if isinstance(v, ConstantData) else int(np.asarray(v).size)


def _unpack(indices: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` ``bits``-bit indices packed LSB first in ``indices``' bytes."""
    unpacked = np.unpackbits(indices.reshape(-1), bitorder="little")[: count * bits].reshape(-1, bits)
    return (unpacked * (1 << np.arange(bits))).sum(axis=1)


class Compressed:
    """Importer mixin: ``constexpr_*`` constants as lazily expanded, format-keeping constant data."""

    lazy: dict[str, ConstantData]  # the importer's; _value, _list_of and fail are too
    formats: dict[str, tuple[str, int]]
    _value: Any
    _list_of: Any
    fail: Any

    def _constexpr(self, op: str, attrs: dict[str, Any], out: str) -> None:
        known = ATTRIBUTES.get(op)
        if known is None:
            raise self.fail("unsupported operation", found=op)
        extra = sorted(k for k in attrs if k != "name" and k not in known)
        if extra:
            raise self.fail(f"attribute '{extra[0]}' of {op} is not modelled", expected=", ".join(known))
        values = {k: self._value(v, k) for k, v in attrs.items() if k != "name"}
        missing = [k for k in known if k not in values]
        if missing:  # (the iOS 18 forms take inputs instead)
            raise self.fail("only the iOS 16 form of this operation (its data as attributes) is supported",
                            expected=", ".join(known), found=", ".join(sorted(values)) or "no attributes")
        if op == "constexpr_lut_to_dense":
            self._palette(values, out)
        else:
            self._affine(values, out)

    def _palette(self, values: dict[str, Any], out: str) -> None:
        lut, indices = values["lut"], values["indices"]
        shape = tuple(int(d) for d in self._list_of(values["shape"], "shape", "iu", "integers"))
        if _kind(lut) not in "iuf":
            raise self.fail("a palette (lut) must hold numbers", found=repr(lut)[:60])
        bits = PALETTE_BITS.get(_size(lut))
        if bits is None:
            raise self.fail("a palette (lut) must hold 2, 4, 16, 64 or 256 entries", found=_size(lut))
        packed = np.asarray(indices)
        need = math.ceil(bits * math.prod(shape) / 8) if all(d > 0 for d in shape) else 0
        if packed.dtype.kind not in "iu" or packed.dtype.itemsize != 1 or packed.size < need:
            raise self.fail("the palette's indices must be packed bytes, ceil(n_bits * size / 8) of them",
                            expected=f"{need} uint8 values", found=f"{packed.size} of {packed.dtype}")
        count = math.prod(shape)

        def dense(lut: Any = lut, packed: np.ndarray = packed) -> np.ndarray:
            idx = _unpack(packed.view(np.uint8), bits, count)
            return _array(lut).astype(np.float32).reshape(-1)[idx].reshape(shape)

        def encoded(lut: Any = lut, packed: np.ndarray = packed) -> dict[str, np.ndarray]:
            idx = _unpack(packed.view(np.uint8), bits, count)
            palette = _array(lut).astype(np.float32).reshape(-1)
            return {"weights": idx.astype(np.uint8).reshape(shape),
                    "palette": palette.astype(np.float16).view(np.uint16)}

        data = ConstantData.derived(shape, dense, f"{bits}-bit palette")
        data.encoding = ("palette", bits, encoded)
        self.lazy[out] = data
        self.formats[out] = ("palette", bits)

    def _affine(self, values: dict[str, Any], out: str) -> None:
        q, zero, scale = values["quantized_data"], values["zero_point"], values["scale"]
        qarr = np.asarray(q)
        if qarr.dtype not in (np.int8, np.uint8) or qarr.ndim == 0:
            raise self.fail("quantized_data must be a tensor of int8 or uint8", found=str(qarr.dtype))
        axes = self._list_of(values["axis"], "axis", "iu", "integers")
        if len(axes) != 1 or not -qarr.ndim <= axes[0] < qarr.ndim:
            raise self.fail("'axis' must name one axis of quantized_data",
                            expected=f"one of -{qarr.ndim} .. {qarr.ndim - 1}", found=axes)
        axis = axes[0] % qarr.ndim
        slices = qarr.shape[axis]
        for key, v, kinds in (("zero_point", zero, "iuf"), ("scale", scale, "f")):
            if _kind(v) not in kinds or _size(v) not in (1, slices):
                raise self.fail(f"{key} must be a scalar or one {'number' if kinds == 'iuf' else 'float'} "
                                f"per slice of axis {axis}", expected=f"1 or {slices} values",
                                found=f"{_size(v)} of kind {_kind(v)}")
        shape = tuple(qarr.shape)
        bshape = [-1 if i == axis else 1 for i in range(qarr.ndim)]

        def per_slice(v: Any) -> np.ndarray:
            a = _array(v).astype(np.float32).reshape(-1)
            return a.reshape(bshape) if a.size > 1 else a

        def dense(q: np.ndarray = qarr) -> np.ndarray:
            return (q.astype(np.float32) - per_slice(zero)) * per_slice(scale)

        data = ConstantData.derived(shape, dense, "affine dequantized")
        # The engine's int8 and uint8 kernels hold one scale and one zero point of the codes' type
        # per output channel: a quantisation along another axis, or with a zero point they cannot
        # hold, runs as fp16 weights of the model's dequantised values (docs/compiler.md §4, Core ML).
        z = np.broadcast_to(_array(zero).astype(np.float64).reshape(-1), (slices,))
        info = np.iinfo(qarr.dtype)
        if axis == 0 and np.all((z == np.round(z)) & (z >= info.min) & (z <= info.max)):
            fmt = "int8" if qarr.dtype == np.int8 else "uint8"

            def encoded(q: np.ndarray = qarr) -> dict[str, np.ndarray]:
                sc = np.broadcast_to(_array(scale).astype(np.float32).reshape(-1), (slices,))
                return {"weights": q.copy(), "scale": sc.astype(np.float16).view(np.uint16).copy(),
                        "zero_point": z.astype(q.dtype)}

            data.encoding = (fmt, 0, encoded)
            self.formats[out] = (fmt, 0)
        self.lazy[out] = data
