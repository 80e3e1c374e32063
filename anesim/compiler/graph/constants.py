"""Constant data that is produced only when someone needs the numbers.

A constant is either a given array or a seeded generator. Generated constants cost nothing
until :meth:`ConstantData.array` is called, so a ResNet-50 or ViT-B/16 program with tens of
millions of weights compiles and times without drawing a single one. The same seed and name
always give the same numbers, on every machine (numpy's PCG64 stream).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

InitKind = Literal["normal", "uniform", "he_normal", "xavier_uniform", "zeros", "ones", "fill", "eye"]
INIT_KINDS: tuple[str, ...] = ("normal", "uniform", "he_normal", "xavier_uniform", "zeros", "ones", "fill", "eye")


def derive_seed(seed: int, name: str) -> int:
    """A stable per-constant seed from a program seed and the constant's name."""
    return (int(seed) * 0x9E3779B1 + zlib.crc32(name.encode("utf-8"))) & 0xFFFFFFFF


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: OIHW kernels and (out, in) matrices."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


@dataclass(frozen=True)
class Init:
    """How to generate a constant: a distribution and its parameters."""

    kind: InitKind
    seed: int = 0
    std: float | None = None  # normal: standard deviation (default 1)
    low: float = -1.0  # uniform bounds
    high: float = 1.0
    value: float = 0.0  # fill value; also the mean of 'normal'
    gain: float = 1.0  # multiplier of he_normal / xavier_uniform

    def generate(self, shape: tuple[int, ...]) -> np.ndarray:
        """Draw the constant as float32."""
        # Parameters beyond float32's range give infinities, as in the fp16 the program stores
        # (which holds no more than 65504 anyway), not a warning from numpy.
        with np.errstate(over="ignore", invalid="ignore"):
            return self._draw(shape)

    def _draw(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.kind == "zeros":
            return np.zeros(shape, np.float32)
        if self.kind == "ones":
            return np.ones(shape, np.float32)
        if self.kind == "fill":
            return np.full(shape, self.value, np.float32)
        if self.kind == "eye":
            out = np.zeros(shape, np.float32)
            rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[0], shape[0])
            view = out.reshape(-1, rows, cols) if len(shape) >= 2 else out.reshape(1, 1, -1)
            for block in view:
                np.fill_diagonal(block, 1.0)
            return out
        rng = np.random.Generator(np.random.PCG64(self.seed))
        if self.kind == "normal":
            std = 1.0 if self.std is None else self.std
            return (rng.standard_normal(shape, np.float32) * np.float32(std) + np.float32(self.value))
        interval = self.interval(shape)
        if interval is not None:
            return rng.uniform(*interval, shape).astype(np.float32)
        if self.kind == "he_normal":
            std = self.gain * math.sqrt(2.0 / max(_fans(shape)[0], 1))
            return rng.standard_normal(shape, np.float32) * np.float32(std)
        raise ValueError(f"unknown init kind {self.kind!r}")

    def interval(self, shape: tuple[int, ...]) -> tuple[float, float] | None:
        """The interval a uniform kind draws from (None for the other kinds)."""
        # (+ 0.0 turns a negative zero positive: numpy refuses an interval from 0.0 to -0.0)
        if self.kind == "uniform":
            return self.low + 0.0, self.high + 0.0
        if self.kind == "xavier_uniform":
            fan_in, fan_out = _fans(shape)
            bound = self.gain * math.sqrt(6.0 / max(fan_in + fan_out, 1)) + 0.0
            return -bound + 0.0, bound
        return None


@dataclass(eq=False)
class ConstantData:
    """The numbers of one constant: a given array, a seeded generator or a function of others."""

    shape: tuple[int, ...]
    dtype: str = "fp16"  # the type the program stores: fp16, int8, uint8
    init: Init | None = None
    given: np.ndarray | None = None
    thunk: Callable[[], np.ndarray] | None = None
    description: str = ""
    # How the model stores it compressed, when it came that way: (format, palette bits,
    # a function giving the kernel's codes and side tables). Kernels keep it instead of
    # re-quantising the dense numbers.
    encoding: tuple[str, int, Callable[[], dict[str, np.ndarray] | None]] | None = None
    _cache: np.ndarray | None = field(default=None, repr=False)

    @staticmethod
    def from_array(array: np.ndarray, dtype: str | None = None) -> ConstantData:
        """A constant holding a given array (stored as fp16 unless it is an integer array)."""
        arr = np.asarray(array)
        if dtype is None:
            dtype = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}.get(arr.dtype, "fp16")
        return ConstantData(tuple(int(d) for d in arr.shape), dtype, given=arr, description="given")

    @staticmethod
    def seeded(shape: tuple[int, ...], init: Init, dtype: str = "fp16") -> ConstantData:
        """A constant drawn from ``init`` when first needed."""
        text = init.kind if init.kind not in ("fill",) else f"fill {init.value:g}"
        return ConstantData(tuple(shape), dtype, init=init, description=f"{text}, seed {init.seed}")

    @staticmethod
    def derived(shape: tuple[int, ...], make: Callable[[], np.ndarray], description: str,
                dtype: str = "fp16") -> ConstantData:
        """A constant computed from others (folded scales, transposed weights) when needed."""
        return ConstantData(tuple(shape), dtype, thunk=make, description=description)

    @property
    def is_materialized(self) -> bool:
        """True once the numbers exist in memory (always for given arrays)."""
        return self.given is not None or self._cache is not None

    @property
    def nbytes_stored(self) -> int:
        """Bytes the constant occupies in the program's type."""
        return math.prod(self.shape) * (2 if self.dtype == "fp16" else 1)

    def array(self, cache: bool = False) -> np.ndarray:
        """The numbers, float32 for float constants; generated now if needed."""
        if self.given is not None:
            arr = self.given
        elif self._cache is not None:
            arr = self._cache
        elif self.init is not None:
            arr = self.init.generate(self.shape)
        elif self.thunk is not None:
            with np.errstate(all="ignore"):  # (IEEE infinities and NaNs are the values: a batch
                arr = np.asarray(self.thunk())  # norm's negative variance, a bias past float32)
        else:
            raise ValueError("constant has neither data nor a generator")
        if arr.shape != self.shape:
            arr = arr.reshape(self.shape)
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            with np.errstate(over="ignore"):  # (a float64 beyond float32's range is ±inf, as fp16 holds it)
                arr = arr.astype(np.float32)
        if cache and self.given is None:
            self._cache = arr
        return arr

    def scalar_value(self) -> float | None:
        """The single value of a constant that holds one number everywhere, without drawing."""
        if self.init is not None and self.init.kind in ("zeros", "ones", "fill"):
            return {"zeros": 0.0, "ones": 1.0}.get(self.init.kind, float(self.init.value))
        if math.prod(self.shape) == 1 and (self.given is not None or self.thunk is not None):
            return float(self.array().reshape(-1)[0])
        if self.given is not None:
            flat = np.asarray(self.given).reshape(-1)
            if flat.size and np.all(flat == flat[0]):
                return float(flat[0])
        return None
