"""float32 vectors for the numba kernels, as LLVM ``<LANES x float>`` values.

numba exposes no SIMD type, and left to itself LLVM vectorizes the MAC kernel's column loop
behind run-time aliasing checks and a scalar remainder, and keeps only as many reduction chains
in flight as the source order happens to give it. Writing the hot loop with explicit vectors
fixes the vector width, removes the checks, and lets the kernel software-pipeline the tile
chains across columns (see :mod:`anesim.numerics._mackernels`).

The width is chosen once at import from the host CPU: 16 lanes where it has AVX-512 (32 vector
registers hold the kernel's sixteen broadcast operands and twice as many chains in flight), 8
lanes otherwise (AVX2); ``ANESIM_SIMD_LANES=8`` or ``16`` forces one (the tests run both). Each
lane is one output column with its own chain of roundings, so the width changes the speed and
never a result: a kernel numba's cache compiled at the other width (the cache does not see this
setting; it keys kernels by the host CPU) computes the same bits.

The operations are deliberately few: unaligned load and store at an element index of a 1-D
float32 array, broadcast, add, multiply, and :func:`vtile_add`, the tile rounding rule. Nothing
here contracts or reassociates: every operation rounds exactly as its scalar counterpart.
"""

from __future__ import annotations

import os

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

from anesim.errors import ConfigError


def host_lanes() -> int:
    """float32 lanes per kernel vector on this host: 16 with AVX-512, else 8."""
    try:
        features = llvm_binding.get_host_cpu_features()
    except Exception:  # a platform without feature reporting: the AVX2 width
        return 8
    return 16 if features.get("avx512f", False) else 8


def _lanes(setting: str) -> int:
    """The width ``ANESIM_SIMD_LANES`` asks for (8 or 16), or the host's when it is unset."""
    if not setting:
        return host_lanes()
    if setting.strip() not in ("8", "16"):
        raise ConfigError("bad ANESIM_SIMD_LANES", expected="8 or 16", found=repr(setting))
    return int(setting)


LANES = _lanes(os.environ.get("ANESIM_SIMD_LANES", ""))

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VF32 = ir.VectorType(_F32, LANES)
_VI32 = ir.VectorType(_I32, LANES)

EXP_MASK = 0x7F800000  # the exponent field of a float32
TILE_MAGIC = (12 << 23) | 0x400000  # added to 2**E's bits: 1.5 * 2**(E + 12), quantum 2**(E - 11)


class Float32Vector(types.Type):
    """LANES float32 lanes held in vector registers."""

    def __init__(self) -> None:
        super().__init__(name=f"float32x{LANES}")


float32v = Float32Vector()


@register_model(Float32Vector)
class _Float32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VF32)


def _is_f32_vector_array(arr: types.Type) -> bool:
    """A contiguous 1-D float32 array: lanes are consecutive elements."""
    return (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 1
            and arr.layout == "C")


def _element_pointer(context, builder, arrty, arr, index):  # type: ignore[no-untyped-def]
    """Address of arr[index] (no wraparound, no bounds check) as a vector pointer."""
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), _VF32.as_pointer())


@intrinsic
def vload(typingctx, arr, index):  # type: ignore[no-untyped-def]
    """arr[index : index + LANES] of a 1-D float32 array; the caller keeps it in bounds."""
    if not _is_f32_vector_array(arr) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.load(_element_pointer(context, builder, sig.args[0], args[0], args[1]),
                            align=4)

    return float32v(arr, index), codegen


@intrinsic
def vstore(typingctx, arr, index, value):  # type: ignore[no-untyped-def]
    """arr[index : index + LANES] = value; the caller keeps it in bounds."""
    if (not _is_f32_vector_array(arr) or not isinstance(index, types.Integer)
            or value != float32v):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        builder.store(args[2], _element_pointer(context, builder, sig.args[0], args[0], args[1]),
                      align=4)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def vsplat(typingctx, x):  # type: ignore[no-untyped-def]
    """A float32 in every lane."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        one = builder.insert_element(ir.Constant(_VF32, ir.Undefined), args[0],
                                     ir.Constant(_I32, 0))
        return builder.shuffle_vector(one, ir.Constant(_VF32, ir.Undefined),
                                      ir.Constant(_VI32, [0] * LANES))

    return float32v(x), codegen


@intrinsic
def vadd(typingctx, x, y):  # type: ignore[no-untyped-def]
    """Lane-wise float32 sum, rounded to nearest even."""
    if x != float32v or y != float32v:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.fadd(args[0], args[1])

    return float32v(x, y), codegen


@intrinsic
def vmul(typingctx, x, y):  # type: ignore[no-untyped-def]
    """Lane-wise float32 product, rounded to nearest even."""
    if x != float32v or y != float32v:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.fmul(args[0], args[1])

    return float32v(x, y), codegen


@intrinsic
def vtile_add(typingctx, s, p):  # type: ignore[no-untyped-def]
    """One tile addition in every lane, exactly as ``_mackernels._step`` given p = a*b.

    s + p in float32, then rounded on the grid 2**(E-11) where E is the exponent of the
    larger addend: adding and subtracting 1.5 * 2**(E + 12) uses the adder's nearest-even
    rounding. The exponent field of a non-finite addend wraps the constant to a tiny negative
    number, so infinities and NaN pass through unchanged, as in the scalar kernel.
    """
    if s != float32v or p != float32v:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        s, p = args
        x = builder.fadd(s, p)
        exp = ir.Constant(_VI32, [EXP_MASK] * LANES)
        es = builder.and_(builder.bitcast(s, _VI32), exp)
        ep = builder.and_(builder.bitcast(p, _VI32), exp)
        e = builder.select(builder.icmp_unsigned(">", es, ep), es, ep)
        c = builder.bitcast(builder.add(e, ir.Constant(_VI32, [TILE_MAGIC] * LANES)), _VF32)
        return builder.fsub(builder.fadd(x, c), c)

    return float32v(s, p), codegen
