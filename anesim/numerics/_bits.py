"""LLVM-level helpers for numba: bit casts and the F16C half-precision conversions.

numba's CPU target has no float16 type, so fp16 data travels as ``uint16`` bit patterns and is
widened with these intrinsics. ``fpext``/``fptrunc`` through LLVM's ``half`` compile to the F16C
instructions ``vcvtph2ps``/``vcvtps2ph``; on a CPU without F16C LLVM would emit a libcall that
numba cannot resolve, so callers must only use them when :data:`HAVE_F16C` is true.
"""

from __future__ import annotations

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _host_has_f16c() -> bool:
    """Whether the host CPU advertises the F16C conversion instructions."""
    try:
        return bool(llvm_binding.get_host_cpu_features().get("f16c", False))
    except Exception:  # an exotic platform without feature reporting: be safe
        return False


HAVE_F16C: bool = _host_has_f16c()


@intrinsic
def f32_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret a float32 as its int32 bit pattern."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def bits_f32(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret an int32 bit pattern as a float32."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        value = args[0]
        width = sig.args[0].bitwidth
        if width > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif width < 32:
            value = builder.zext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def h2f_f16c(typingctx, h):  # type: ignore[no-untyped-def]
    """fp16 bits (any integer type, low 16 bits used) to float32, via F16C."""
    if not isinstance(h, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        value = args[0]
        width = sig.args[0].bitwidth
        if width > 16:
            value = builder.trunc(value, ir.IntType(16))
        elif width < 16:
            value = builder.zext(value, ir.IntType(16))
        return builder.fpext(builder.bitcast(value, ir.HalfType()), ir.FloatType())

    return types.float32(h), codegen


@intrinsic
def f2h_f16c(typingctx, f):  # type: ignore[no-untyped-def]
    """float32 to fp16 bits (uint16), rounding to nearest even, via F16C."""
    if f != types.float32:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


@intrinsic
def f64_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret a float64 as its int64 bit pattern."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def bits_f64(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret an int64 bit pattern as a float64."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen
