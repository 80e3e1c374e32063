"""Kernel weights for the NE stage: formats, quantisation, per-core layout, lazy generation.

Weights are logical OIHW. They reach the engine split by output channel across the cores
(guide ch. 20: a strided round-robin, core ``k`` holds channels ``k, k + N, …``; with output
channel groups of OCG channels the round-robin is over groups, the layout the program model's
``KernelPlacement`` and the H13 decoder use), each channel a 64-byte-padded row of its core's
kernel-DMA buffer (command-stream.md §3.10 and §5). Seeded weights are
drawn only when something reads :attr:`LazyKernel.weights`, so compiling and timing a large
model never touches them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from anesim.program.model import Kernel, align_up

WEIGHT_BITS = {"fp16": 16, "int8": 8, "uint8": 8}


@dataclass(frozen=True)
class KernelSource:
    """Where a task's weights come from: a float OIHW generator and the storage format."""

    shape: tuple[int, int, int, int]  # OIHW
    make: Callable[[], np.ndarray]  # float32 OIHW
    format: str = "fp16"  # fp16, int8, uint8, palette
    palette_bits: int = 0
    description: str = ""
    encoded: Callable[[], dict[str, np.ndarray] | None] | None = None  # the model's own codes
    sparsity: float = 0.0  # fraction pruned to zero: stored as a 1-bit mask plus the nonzeros

    def slice_out(self, start: int, stop: int) -> KernelSource:
        """Output channels [start, stop) only."""
        make = self.make
        o, i, kh, kw = self.shape
        encoded = None
        if self.encoded is not None:
            whole = self.encoded

            def encoded() -> dict[str, np.ndarray] | None:
                parts = whole()
                if parts is None:
                    return None
                return {k: (v[start:stop] if v.ndim and v.shape[0] == o and k != "palette" or
                            (k == "palette" and v.ndim == 2) else v) for k, v in parts.items()}

        return KernelSource((stop - start, i, kh, kw), lambda: make()[start:stop], self.format,
                            self.palette_bits, f"{self.description}[{start}:{stop}]", encoded, self.sparsity)

    def repeated_out(self, times: int) -> KernelSource:
        """The output channels ``times`` over, in order (a depthwise kernel for a batch's images
        taken as channels); for weights given as values, not as a model's own codes."""
        assert self.encoded is None
        make = self.make
        o, i, kh, kw = self.shape
        return KernelSource((o * times, i, kh, kw), lambda: np.tile(make(), (times, 1, 1, 1)), self.format,
                            self.palette_bits, f"{self.description} x{times}", sparsity=self.sparsity)

    def scaled(self, per_channel: np.ndarray) -> KernelSource:
        """The same weights times a per-output-channel factor (batch norm, a following mul)."""
        make = self.make
        factor = np.asarray(per_channel, np.float32).reshape(-1, 1, 1, 1)
        return KernelSource(self.shape, lambda: make() * factor, self.format, self.palette_bits,
                            self.description + " (scaled)", sparsity=self.sparsity)

    @property
    def bits_per_weight(self) -> int:
        """Storage bits of one weight."""
        return self.palette_bits if self.format == "palette" else WEIGHT_BITS[self.format]


def core_of(channel: int, cores: int, ocg: int = 1) -> int:
    """The core holding an output channel: groups of OCG channels round-robin over the cores."""
    return (channel // ocg) % cores


def core_channels(cout: int, cores: int, ocg: int = 1) -> list[int]:
    """How many output channels each core holds (``c mod cores`` when OCG is 1)."""
    counts = [0] * cores
    full, rest = divmod(cout, ocg * cores)
    for k in range(cores):
        counts[k] = full * ocg + max(0, min(ocg, rest - k * ocg))
    return counts


def row_bytes(shape: tuple[int, int, int, int], bits: int) -> int:
    """Bytes of one output channel's weights in a core buffer, padded to 64."""
    o, i, kh, kw = shape
    return align_up(-(-i * kh * kw * bits // 8))


def per_core_bytes(shape: tuple[int, int, int, int], bits: int, cores: int, ocg: int = 1) -> list[int]:
    """Kernel-DMA buffer size of each core: its channels' rows (at least 64 bytes)."""
    row = row_bytes(shape, bits)
    return [max(n * row, 64) for n in core_channels(shape[0], cores, ocg)]


def _fp16_bits(array: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(array, np.float32).astype(np.float16).view(np.uint16)


def quantize(w: np.ndarray, fmt: str, palette_bits: int = 0) -> dict[str, np.ndarray | None]:
    """Codes and side tables for one weight format (per output channel)."""
    o = w.shape[0]
    flat = w.reshape(o, -1).astype(np.float32)
    if fmt == "fp16":
        return {"weights": _fp16_bits(w)}
    if fmt == "int8":
        scale = np.abs(flat).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        codes = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
        return {"weights": codes.reshape(w.shape), "scale": _fp16_bits(scale),
                "zero_point": np.zeros(o, np.int8)}
    if fmt == "uint8":
        lo, hi = flat.min(axis=1), flat.max(axis=1)
        lo = np.minimum(lo, 0.0)
        hi = np.maximum(hi, 0.0)
        scale = (hi - lo) / 255.0
        scale[scale == 0] = 1.0
        zero = np.clip(np.rint(-lo / scale), 0, 255)
        codes = np.clip(np.rint(flat / scale[:, None]) + zero[:, None], 0, 255).astype(np.uint8)
        return {"weights": codes.reshape(w.shape), "scale": _fp16_bits(scale),
                "zero_point": zero.astype(np.uint8)}
    if fmt == "palette":
        levels = 1 << palette_bits
        # A per-channel palette at the quantiles of the channel's weights: cheap and close to
        # what k-means palettisation gives for bell-shaped weights.
        q = (np.arange(levels, dtype=np.float64) + 0.5) / levels
        palette = np.quantile(flat, q, axis=1).T.astype(np.float32)  # (o, levels)
        mids = (palette[:, 1:] + palette[:, :-1]) / 2.0
        index = np.empty(flat.shape, np.uint8)
        for ch in range(o):
            index[ch] = np.searchsorted(mids[ch], flat[ch])
        return {"weights": index.reshape(w.shape), "palette": _fp16_bits(palette)}
    raise ValueError(f"unknown weight format {fmt!r}")


class LazyKernel(Kernel):
    """A :class:`Kernel` whose codes are computed from its source on first access."""

    def __init__(self, source: KernelSource, dram_bytes: int) -> None:
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_parts", None)
        fmt = source.format
        super().__init__(format=fmt, weights=None, palette_bits=source.palette_bits,  # type: ignore[arg-type]
                         dram_bytes=dram_bytes)

    def _materialize(self) -> dict[str, np.ndarray | None]:
        parts = object.__getattribute__(self, "_parts")
        if parts is None:
            source: KernelSource = object.__getattribute__(self, "_source")
            parts = source.encoded() if source.encoded is not None else None
            if parts is None:
                w = np.asarray(source.make(), np.float32).reshape(source.shape)
                parts = quantize(w, source.format, source.palette_bits)
            object.__setattr__(self, "_parts", parts)
        return parts

    @property  # type: ignore[override]
    def weights(self) -> np.ndarray:
        """The weight codes (generated now if needed)."""
        return self._materialize()["weights"]  # type: ignore[return-value]

    @weights.setter
    def weights(self, value: np.ndarray | None) -> None:
        if value is not None:
            object.__setattr__(self, "_parts", {"weights": value})

    def _side(self, key: str) -> np.ndarray | None:
        return self._materialize().get(key)

    @property  # type: ignore[override]
    def scale(self) -> np.ndarray | None:
        """Per-channel dequantisation scale (fp16 bits), for int8/uint8."""
        if self.format not in ("int8", "uint8"):
            return None
        return self._side("scale")

    @scale.setter
    def scale(self, value: np.ndarray | None) -> None:
        pass

    @property  # type: ignore[override]
    def zero_point(self) -> np.ndarray | None:
        """Per-channel zero point, for int8/uint8."""
        if self.format not in ("int8", "uint8"):
            return None
        return self._side("zero_point")

    @zero_point.setter
    def zero_point(self, value: np.ndarray | None) -> None:
        pass

    @property  # type: ignore[override]
    def palette(self) -> np.ndarray | None:
        """Per-channel palette (fp16 bits), for palettised weights."""
        if self.format != "palette":
            return None
        return self._side("palette")

    @palette.setter
    def palette(self, value: np.ndarray | None) -> None:
        pass

    @property
    def is_sparse(self) -> bool:
        """True for a pruned kernel (known without generating the weights)."""
        return bool(object.__getattribute__(self, "_source").sparsity)

    @property  # type: ignore[override]
    def sparse_mask(self) -> np.ndarray | None:
        """Where the weights are nonzero, for a pruned kernel (None for a dense one)."""
        source: KernelSource = object.__getattribute__(self, "_source")
        if not source.sparsity:
            return None
        return np.asarray(self.weights) != 0

    @sparse_mask.setter
    def sparse_mask(self, value: np.ndarray | None) -> None:
        pass

    @property
    def shape(self) -> tuple[int, ...]:
        """OIHW shape, known without generating the weights."""
        return object.__getattribute__(self, "_source").shape

    @property
    def is_materialized(self) -> bool:
        """True once the codes exist in memory."""
        return object.__getattribute__(self, "_parts") is not None

    def __repr__(self) -> str:
        return f"LazyKernel({self.format}, shape={self.shape}, dram_bytes={self.dram_bytes})"


def make_kernel(source: KernelSource, cores: int, ocg: int = 1) -> LazyKernel:
    """The program-model kernel for one task, sized for the cores and OCG it runs with.

    A pruned kernel moves a 1-bit mask per weight and the expected count of nonzero fp16
    values, each core's share padded to 64 bytes.
    """
    o = source.shape[0]
    if source.sparsity:
        per_weight_bits = 1.0 + 16.0 * (1.0 - source.sparsity)
        elements = math.prod(source.shape[1:])
        total = sum(max(64, align_up(math.ceil(n * elements * per_weight_bits / 8)))
                    for n in core_channels(o, cores, ocg))
        return LazyKernel(source, total)
    total = sum(per_core_bytes(source.shape, source.bits_per_weight, cores, ocg))
    if source.format == "palette":
        total += align_up(o * (1 << source.palette_bits) * 2)
    elif source.format in ("int8", "uint8"):
        total += align_up(o * 2) + align_up(o)
    return LazyKernel(source, total)


def pack_per_core(kernel: Kernel, cores: int, ocg: int = 1) -> list[bytes]:
    """Each core's kernel-DMA buffer, laid out as :class:`~anesim.program.model.KernelPlacement`
    describes: output channel ``o`` on core ``(o // ocg) % cores``, one 64-byte-padded row each."""
    w = np.asarray(kernel.weights)
    bits = 16 if kernel.format == "fp16" else (kernel.palette_bits if kernel.format == "palette" else 8)
    shape = tuple(w.shape)
    row = row_bytes(shape, bits)  # type: ignore[arg-type]
    sizes = per_core_bytes(shape, bits, cores, ocg)  # type: ignore[arg-type]
    out = [bytearray(size) for size in sizes]
    for o in range(shape[0]):
        core = core_of(o, cores, ocg)
        index = (o // (ocg * cores)) * ocg + o % ocg
        part = w[o]
        if bits >= 8:
            raw = part.astype({16: np.uint16, 8: w.dtype}[bits]).tobytes()
        else:
            codes = part.reshape(-1).astype(np.uint8)
            per_byte = 8 // bits
            pad = (-len(codes)) % per_byte
            codes = np.concatenate([codes, np.zeros(pad, np.uint8)]).reshape(-1, per_byte)
            shifts = (np.arange(per_byte) * bits).astype(np.uint8)
            raw = np.bitwise_or.reduce(codes << shifts, axis=1).astype(np.uint8).tobytes()
        out[core][index * row: index * row + len(raw)] = raw
    return [bytes(b) for b in out]


def weight_elements(shape: tuple[int, ...]) -> int:
    """Number of weights."""
    return math.prod(shape)
