"""A plain float32 interpreter of compiled programs: the semantics the compiler assumes.

It reads and writes fp16 tensors through each task's layouts (offsets and strides in DRAM slots
or the pool), so it checks addressing as well as arithmetic. It is not the engine's numerics
(products are not rounded per term, accumulation is float32): the functional engine in
``anesim.execute`` is. Tests use it to check lowering decisions against the numpy reference.

Task semantics (also in ``docs/compiler.md``):

- NE ``conv`` with a kernel: ``act(post_scale * conv(src0, kernel) + bias)`` (the gain/offset
  unit); a kernel with a ``placement`` is read from its slot at run time.
- NE ``conv`` without a kernel and two sources: a 1x1 product whose weights are ``src1`` read
  as planes ``(C=C_in, H=1, W=C_out)`` (a transposed run-time kernel).
- NE ``bypass``: ``act(post_scale * src0 + bias)``.
- planar: ``op(src0, src1)`` or pooling of ``src0``, then ReLU if asked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from anesim.compiler.reference.ops import _conv2d, _pool
from anesim.compiler.reference.tables import evaluate
from anesim.program.kernels import gather_weights, weights_from_source
from anesim.program.model import DTYPE_BYTES, NUMPY_DTYPES, Kernel, Layout, Program, Task

POOL_BYTES = 64 * 1024 * 1024


class Memory:
    """DRAM slots and the pool as byte arrays."""

    def __init__(self, program: Program) -> None:
        self.slots: dict[int, np.ndarray] = {}
        for index, slot in program.slots.items():
            data = slot.data
            buf = np.zeros(max(slot.size_bytes, len(data) if data else 0) + 64, np.uint8)
            if data:
                buf[: len(data)] = np.frombuffer(data, np.uint8)
            self.slots[index] = buf
        self.pool = np.zeros(POOL_BYTES, np.uint8)

    def _base(self, layout: Layout) -> np.ndarray:
        if layout.space == "pool":
            return self.pool
        if layout.slot not in self.slots:
            size = layout.offset_bytes + layout.span_bytes + 64
            self.slots[layout.slot] = np.zeros(size, np.uint8)  # type: ignore[index]
        return self.slots[layout.slot]  # type: ignore[index]

    def view(self, layout: Layout) -> np.ndarray:
        """A writable (groups, C, H, W) numpy view of a layout."""
        base = self._base(layout)
        size = DTYPE_BYTES[layout.dtype]
        end = layout.offset_bytes + layout.span_bytes
        if end > base.size:
            raise IndexError(f"layout reaches byte {end}, past its buffer of {base.size}")
        typed = base.view(NUMPY_DTYPES[layout.dtype]) if size == 2 else base.view(NUMPY_DTYPES[layout.dtype])
        if layout.offset_bytes % size:
            raise ValueError("misaligned layout offset")
        start = typed[layout.offset_bytes // size:]
        strides = (layout.group_stride_bytes, layout.plane_stride_bytes, layout.row_stride_bytes, size)
        shape = (layout.groups, layout.channels, layout.height, layout.width)
        return np.lib.stride_tricks.as_strided(start, shape, strides)

    def read(self, layout: Layout) -> np.ndarray:
        """The tensor at a layout as float32 (C, H, W) of group 0."""
        return self.view(layout)[0].astype(np.float32)

    def write(self, layout: Layout, value: np.ndarray) -> None:
        """Store a float tensor at a layout, rounding to its type."""
        target = self.view(layout)[0]
        with np.errstate(over="ignore", invalid="ignore"):
            target[...] = np.asarray(value, np.float32).astype(target.dtype)


def dequantize(kernel: Kernel) -> np.ndarray:
    """Float OIHW weights of a kernel in any format."""
    w = np.asarray(kernel.weights)
    if kernel.format == "fp16":
        return w.view(np.float16).astype(np.float32)
    if kernel.format in ("int8", "uint8"):
        scale = np.asarray(kernel.scale).view(np.float16).astype(np.float32).reshape(-1, 1, 1, 1)
        zero = np.asarray(kernel.zero_point, np.float32).reshape(-1, 1, 1, 1)
        return (w.astype(np.float32) - zero) * scale
    palette = np.asarray(kernel.palette).view(np.float16).astype(np.float32)
    if palette.ndim == 1:  # one palette shared by every output channel
        return palette[w.astype(np.int64)]
    return np.take_along_axis(palette, w.reshape(w.shape[0], -1).astype(np.int64), axis=1).reshape(w.shape)


def _activation(task: Task, y: np.ndarray) -> np.ndarray:
    ne = task.ne
    assert ne is not None
    if ne.activation == "relu":
        return np.maximum(y, 0)
    if ne.activation == "lut" and ne.table is not None:
        return evaluate(ne.table, y)
    return y


def run_task(task: Task, mem: Memory) -> None:
    """Execute one task."""
    x = mem.read(task.sources[0])
    y = x
    ne = task.ne
    if ne is not None:
        if ne.op == "conv":
            if ne.kernel is not None and ne.kernel.weights is None and ne.kernel.placement is not None:
                place = ne.kernel.placement
                bits = gather_weights(mem.slots[place.slot], place, ne.kernel.format)
                if bits is None:
                    raise IndexError(f"task {task.index}: run-time weights fall outside slot {place.slot}")
                w = bits.view(np.float16).astype(np.float32)
            elif ne.kernel is not None:
                w = dequantize(ne.kernel)
            else:
                w = weights_from_source(mem.read(task.sources[1]), ne.groups)
            attrs = {"stride": ne.stride_hw, "dilation": ne.dilation_hw, "padding": ne.padding_tblr,
                     "groups": ne.groups}
            y = _conv2d(x[None], w, None, attrs)[0]
        y = y * np.float32(ne.post_scale)
        if ne.bias is not None:
            y = y + np.asarray(ne.bias).view(np.float16).astype(np.float32).reshape(-1, 1, 1)
        y = _activation(task, y)
    pl = task.planar
    if pl is not None:
        if pl.op in ("avgpool", "maxpool", "minpool"):
            attrs = {"kernel": pl.pool_hw, "stride": pl.pool_stride_hw, "padding": pl.pool_padding_tblr}
            if pl.op == "minpool":
                y = -_pool(-y[None], attrs, "max")[0]
            else:
                y = _pool(y[None], attrs, "max" if pl.op == "maxpool" else "avg")[0]
        elif pl.op != "copy":
            b = mem.read(task.sources[1])
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                y = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                     "max": np.maximum, "min": np.minimum}[pl.op](y, b)
        if pl.relu:
            y = np.maximum(y, 0)
    mem.write(task.result, y)


def run_program(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute every task; returns the outputs in their logical shapes (float32)."""
    mem = Memory(program)
    for spec in program.inputs:
        if spec.name in inputs:
            layout = spec.layout()
            view = mem.view(layout)
            data = np.asarray(inputs[spec.name]).reshape(view.shape)
            view[...] = data.astype(view.dtype)
    for task in program.tasks:
        run_task(task, mem)
    out = {}
    for spec in program.outputs:
        layout = spec.layout()
        out[spec.name] = mem.view(layout).astype(np.float32).reshape(spec.shape)
    return out
