"""Weights an ONNX model stores as 8-bit codes: ``DequantizeLinear`` of a constant.

A ``DequantizeLinear`` whose inputs are all constants folds at import like any other node
(its float values are what every later reader sees), but the codes it came from are kept
beside them. A convolution reading such weights keeps them as the engine's int8 or uint8
kernel, one scale and one zero point per output channel, as the Core ML importer keeps
``constexpr_affine_dequantize`` (docs/onnx.md, "Quantised weights"). Codes the engine's
kernels cannot hold (another axis, blocks, a 1-D convolution), and codes any other operator
reads as fp16 data (a matrix product, a gather, an elementwise op), are held as the dequantised
values (rounded to fp16, as any float weight) with a timing note: they stream as 16 bits each,
twice the bytes the model stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from anesim.compiler.graph.constants import ConstantData
from anesim.program.notes import Note


@dataclass(frozen=True)
class Codes:
    """8-bit weights and their dequantisation: ``(codes - zero) * scale`` along ``axis``."""

    codes: np.ndarray  # int8 or uint8
    scale: np.ndarray  # float32, one value or one per slice of ``axis``
    zero: np.ndarray  # the codes' type, the same size as ``scale``
    axis: int  # (of ``codes``; any, for one scale)
    blocked: bool  # a block size: several scales along the axis


def read_codes(node: Any, values: list[np.ndarray], opset: int, attr: Any) -> Codes | None:
    """The codes of a folded ``DequantizeLinear`` (its input values in order), or None when its
    codes are not 8-bit integers or its scales not float32 (nothing the engine's kernels hold)."""
    q = np.asarray(values[0])
    scale = np.asarray(values[1])
    if q.dtype not in (np.int8, np.uint8) or scale.dtype != np.float32 or q.ndim == 0:
        return None
    zero = np.asarray(values[2]) if len(values) > 2 else np.zeros(scale.shape, q.dtype)
    axis = int(attr("axis", 1)) if opset >= 13 else 1
    blocked = int(attr("block_size", 0) or 0) > 0 if opset >= 21 else False
    if scale.size > 1 and not blocked:
        axis %= q.ndim
    return Codes(q, scale.reshape(-1), zero.reshape(-1).astype(q.dtype), axis, blocked)


class QuantHandlers:
    """Kernels from kept codes (mixed into the ONNX importer)."""

    codes: dict[str, Codes]

    def conv_weight(self, index: int, w: np.ndarray) -> tuple[str, str]:
        """The weight tensor of a convolution reading input ``index`` (``w``: its float values, in
        the 4-D shape the lowering takes) and its format: the model's codes when the engine's
        kernels can hold them, else fp16 (with a timing note when the model stored codes)."""
        found = self.codes.get(self.inp(index))  # type: ignore[attr-defined]
        fmt = "fp16"
        data = ConstantData.from_array(np.asarray(w, np.float32), "fp16")
        if found is not None:
            per_channel = found.scale.size == 1 or (found.axis == 0 and found.scale.size == w.shape[0])
            fits = found.codes.shape == tuple(w.shape) and found.zero.size == found.scale.size
            if per_channel and fits and not found.blocked:
                fmt = "int8" if found.codes.dtype == np.int8 else "uint8"
                data.encoding = (fmt, 0, _encoded(found, w.shape[0]))
            else:
                self.note_dense_codes(self.inp(index), "a convolution keeps 8-bit codes only with one "  # type: ignore[attr-defined]
                                      "scale per output channel, in 2-D")
        name = self.fresh(f"{self.node.name or self.node.output[0]}/weight")  # type: ignore[attr-defined]
        self.b.constant_data(name, data)  # type: ignore[attr-defined]
        return name, fmt

    def note_dense_codes(self, name: str | None, why: str) -> None:
        """A timing note when ``name`` holds 8-bit codes of the model that are held as fp16."""
        found = self.codes.get(name) if name is not None else None
        if found is None:
            return
        self.b.graph.approximations.append(Note(  # type: ignore[attr-defined]
            "timing", f"its {found.codes.dtype} weights (DequantizeLinear) are held as fp16 ({why}): "
            "2x the weight bytes of the model", field=f"{self.where()} '{name}'"))  # type: ignore[attr-defined]


def _encoded(found: Codes, channels: int) -> Any:
    """The kernel's codes and per-output-channel tables, made when the kernel is packed."""
    def encoded(found: Codes = found, channels: int = channels) -> dict[str, np.ndarray]:
        scale = np.broadcast_to(found.scale, (channels,)).astype(np.float16)
        return {"weights": found.codes.copy(), "scale": scale.view(np.uint16).copy(),
                "zero_point": np.broadcast_to(found.zero, (channels,)).copy()}
    return encoded
