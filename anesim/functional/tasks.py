"""Run one task on fp16 bit arrays: sources → NE stage → planar stage → result."""

from __future__ import annotations

import math

import numpy as np

import anesim.numerics as numerics
from anesim.errors import UnsupportedError
from anesim.numerics.planar import reduce_rows
from anesim.numerics.rules import IEEE_PORT_RULES, M1_RULES, MacRules
from anesim.program.kernels import weights_from_source
from anesim.program.model import ActivationTable, Kernel, NeStage, PlanarStage, Task

# Where the knots of a range-reduced table lie; the table header's range then only clamps.
_REDUCED_KNOT_SPAN = {
    "exp2": (0.0, 1.0), "recip": (0.5, 1.0), "log2": (0.5, 1.0), "sqrt": (0.0, 2.0), "rsqrt": (0.0, 2.0),
}
_POOL_MODES = {"maxpool": "max", "minpool": "min", "avgpool": "avg"}
_REDUCTIONS = {"reduce_max": "max", "reduce_sum": "sum", "recip_sum": "recip_sum"}
_BINARY_PLANAR = {"add", "sub", "mul", "max", "min", "div"}


def mac_rules(generation: str) -> MacRules:
    """The MAC rounding rule of a generation: the measured H13-class port limit up to H16."""
    digits = "".join(ch for ch in generation if ch.isdigit())
    number = int(digits) if digits else 13
    return M1_RULES if number <= 16 else IEEE_PORT_RULES


def table_to_lut(table: ActivationTable) -> numerics.Lut:
    """The numerics' evaluator for a decoded or compiled activation table."""
    lo, hi = table.range_lo, table.range_hi
    first, last = table.knot_span or _REDUCED_KNOT_SPAN.get(table.reduction, (lo, hi))
    if not (np.isfinite(first) and np.isfinite(last)
            and (last > first or (table.tails is not None and last == first))):
        # the decoder refuses such a table; one built by hand has no knot span to read samples on
        raise UnsupportedError(f"table {table.name!r} has no finite knot span",
                               expected="range_lo < range_hi, both finite", found=f"[{first}, {last}]")
    return numerics.Lut(
        np.asarray(table.samples, np.uint16), x_first=first, x_last=last, lo=lo, hi=hi,
        below=table.value_below, above=table.value_above, symmetry=table.symmetry,
        reduction=table.reduction, name=table.name, tails=table.tails,
    )


def dense_weights(kernel: Kernel) -> np.ndarray:
    """fp16 bits of the kernel in OIHW, reconstructed from its stored format."""
    if kernel.format == "fp16":
        w = np.asarray(kernel.weights, np.uint16)
    elif kernel.format in ("int8", "uint8"):
        scale = kernel.scale if kernel.scale is not None else np.uint16(0x3C00)
        zero = kernel.zero_point if kernel.zero_point is not None else 0
        w = numerics.dequantize(np.asarray(kernel.weights), scale, zero, axis=0)
    elif kernel.format == "palette":
        if kernel.palette is None:
            raise UnsupportedError("a palettised kernel without a palette")
        pal = np.asarray(kernel.palette, np.uint16)
        w = numerics.depalettize(kernel.weights, pal, axis=0 if pal.ndim == 2 else None)
    else:  # pragma: no cover - the model's Literal forbids it
        raise UnsupportedError(f"kernel format {kernel.format!r}")
    if kernel.sparse_mask is not None:
        w = np.where(np.asarray(kernel.sparse_mask, bool), w, np.uint16(0))
    return w


def _weights_from_source(planes: np.ndarray, groups: int) -> np.ndarray:
    """1×1 weights streamed as a second source (:func:`anesim.program.kernels.weights_from_source`)."""
    c_in, height, _ = planes.shape
    if height != 1:
        raise UnsupportedError(f"a weight source must hold one row per input channel, found {height} rows")
    if c_in % groups:
        raise UnsupportedError(f"a weight source of {c_in} channels cannot feed {groups} groups")
    return weights_from_source(planes, groups)


def _ne_stage(ne: NeStage, x: np.ndarray, second: np.ndarray | None, rules: MacRules,
              mode: str = "exact") -> np.ndarray:
    """The MAC array: convolution (or a pass-through), then bias, post-scale and nonlinearity."""
    if ne.op == "conv":
        if ne.kernel is not None:
            weights = dense_weights(ne.kernel)
        elif second is not None:
            weights = _weights_from_source(second, ne.groups)
        else:
            raise UnsupportedError("a convolution task with neither a kernel nor a weight source")
        y = numerics.conv2d(
            x[None], weights, None, ne.stride_hw, ne.padding_tblr, ne.dilation_hw, ne.groups, rules=rules,
            mode=mode,
        )[0]
    elif ne.op == "elementwise":
        if second is None:
            raise UnsupportedError("an NE elementwise task without a second source")
        y = numerics.elementwise("mul", x, second)
    elif ne.op == "bypass":
        y = x
    else:
        raise UnsupportedError(f"NE operation {ne.op!r} is not executed by the functional engine")
    with np.errstate(over="ignore"):  # (a factor past float32's range is the infinity fp16 holds too)
        acc_bias, post_scale = np.float32(ne.acc_bias), np.float32(ne.post_scale)
    if ne.acc_bias != 0.0:  # exact sum in the accumulator, one rounding at the port
        y = numerics.elementwise("add", y, numerics.f32_to_f16(acc_bias))
    if ne.post_scale != 1.0:
        y = numerics.scale_bias(y, post_scale, None, axis=0)
    if ne.bias is not None:
        y = numerics.scale_bias(y, None, np.asarray(ne.bias, np.uint16), axis=0)
    if ne.activation == "relu":
        y = numerics.elementwise("max", y, np.uint16(0))
    elif ne.activation == "lut":
        if ne.table is None:
            raise UnsupportedError("a lookup-table activation without its table")
        y = numerics.apply_lut(y, table_to_lut(ne.table))
    return y


def _scalar(y: np.ndarray, op: str, value: float) -> np.ndarray:
    return numerics.elementwise(op, y, numerics.f32_to_f16(np.float32(value)))


def _planar_stage(pe: PlanarStage, a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The planar engine: pre-scale, the operation, then scale, bias, final scale and relu."""
    if pe.pre_scale != 1.0:
        a = _scalar(a, "mul", pe.pre_scale)
    if pe.op in _POOL_MODES:
        # An average divides by the whole window, padding included: the window size is fixed per
        # task (docs/compiler.md §6), as the compiler and its reference interpreter assume.
        y = numerics.pool(a, _POOL_MODES[pe.op], pe.pool_hw, pe.pool_stride_hw, pe.pool_padding_tblr,
                          include_pad=True)
    elif pe.op in _BINARY_PLANAR:
        if b is None:
            raise UnsupportedError(f"planar {pe.op} needs a second source")
        y = numerics.elementwise(pe.op, a, b)
    elif pe.op == "sqsum":
        if b is None:
            raise UnsupportedError("planar sqsum needs a second source")
        y = numerics.elementwise("square", numerics.elementwise("add", a, b))
    elif pe.op in _REDUCTIONS:
        y = reduce_rows(a, _REDUCTIONS[pe.op])
    elif pe.op == "abs":
        y = numerics.elementwise("abs", a)
    elif pe.op == "copy":
        y = a
    else:
        raise UnsupportedError(f"planar operation {pe.op!r} is not executed by the functional engine")
    if pe.scale != 1.0:
        y = _scalar(y, "mul", pe.scale)
    if pe.bias != 0.0:
        y = _scalar(y, "add", pe.bias)
    if pe.final_scale != 1.0:
        y = _scalar(y, "mul", pe.final_scale)
    if pe.relu:
        y = numerics.elementwise("max", y, np.uint16(0))
    return y


def run_task(task: Task, sources: list[np.ndarray], rules: MacRules, mode: str = "exact") -> np.ndarray:
    """fp16 bits of a task's result, (channels, height, width), from its sources' fp16 bits.

    ``mode`` is the numerics mode of the MAC reductions: "exact" (the engine's rule, bit for bit)
    or "fast" (float32 BLAS sums, rounded once per output; docs/numerics.md).
    """
    x = sources[0]
    second = sources[1] if len(sources) > 1 else None
    r = task.result
    shape = (r.groups * r.depth * r.channels, r.height, r.width)
    early = _pointwise_shape(task, x, second)
    if early is not None:  # (a damaged task may hold a source far larger than its destination)
        _check_fits(task, early, shape, r.elements)
    y = x
    if task.ne is not None:
        y = _ne_stage(task.ne, x, second, rules, mode)
        consumed = task.ne.op == "elementwise" or (task.ne.op == "conv" and task.ne.kernel is None)
        second = None if consumed else second
    if task.planar is not None:
        y = _planar_stage(task.planar, y, second)
    if y.shape != shape:
        if _check_fits(task, y.shape, shape, r.elements) == "reshape":
            y = y.reshape(shape)
        else:  # one value per row read back across a wider row
            y = np.ascontiguousarray(np.broadcast_to(y, shape))
    return y


def _check_fits(task: Task, got: tuple[int, ...], shape: tuple[int, ...], elements: int) -> str:
    """How a result of shape ``got`` lands in the destination ``shape``: as it is, "reshape" (the
    same count) or "broadcast"; any other shape is an UnsupportedError."""
    if tuple(got) == shape:
        return "same"
    if math.prod(got) == elements:
        return "reshape"
    if _broadcasts(tuple(got), shape):
        return "broadcast"
    raise UnsupportedError(f"task {task.index} computes a {tuple(got)} result for a {shape} destination")


def _pointwise_shape(task: Task, x: np.ndarray, second: np.ndarray | None) -> tuple[int, ...] | None:
    """The result shape of a task whose stages keep their operands' shape (a pass-through or
    product on the NE, a pointwise planar operation), known before anything is computed; None
    for the others, or where the operands do not broadcast (the stage itself says so)."""
    ne, pe = task.ne, task.planar
    if ne is not None and ne.op not in ("bypass", "elementwise"):
        return None
    if pe is not None and pe.op not in _BINARY_PLANAR | {"sqsum", "abs", "copy"}:
        return None
    joined = (ne is not None and ne.op == "elementwise") or (pe is not None and pe.op in _BINARY_PLANAR | {"sqsum"})
    try:
        return np.broadcast_shapes(x.shape, second.shape) if joined and second is not None else x.shape
    except ValueError:
        return None


def _broadcasts(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether numpy broadcasting stretches ``got`` to ``want``."""
    try:
        return np.broadcast_shapes(got, want) == want
    except ValueError:
        return False


def as_fp16_bits(values: np.ndarray) -> np.ndarray:
    """fp16 bits of a source tile in any of the engine's storage formats (int values are exact)."""
    if values.dtype == np.uint16:
        return values
    return values.astype(np.float16).view(np.uint16)


def from_fp16_bits(bits: np.ndarray, dtype: str) -> np.ndarray:
    """A result in its destination's storage format; int outputs round half to even and saturate."""
    if dtype == "fp16":
        return bits
    info = np.iinfo(np.int8 if dtype == "int8" else np.uint8)
    v = bits.view(np.float16).astype(np.float64)
    v = np.nan_to_num(np.rint(v), nan=0.0, posinf=info.max, neginf=info.min)
    return np.clip(v, info.min, info.max).astype(np.int8 if dtype == "int8" else np.uint8)


