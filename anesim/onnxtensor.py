"""ONNX helpers shared by the readers of ONNX files: the optional package, and initializers as arrays.

The ``onnx`` package is an optional extra; :func:`require_onnx` imports it or refuses with the
install hint. An initializer becomes a numpy array with its stated dims checked against its data
before conversion.

``onnx.numpy_helper.to_array`` trusts ``dims``: a tensor that states more elements than its data
holds fails deep inside numpy, and one stating a huge shape is allocated before anything
compares it with the data. Here the element count the dims state must be non-negative, within
the memory limit, and equal to what the tensor's data holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import ProgramError, UnsupportedError
from anesim.limits import check_bytes


def require_onnx(purpose: str) -> Any:
    """The ``onnx`` module; without it, an UnsupportedError naming ``purpose`` and the extra to install."""
    try:
        import onnx
    except ImportError:
        raise UnsupportedError(f"{purpose} needs the onnx package", expected="pip install 'anesim[onnx]'") from None
    return onnx


def load_model(path: str | Path) -> Any:
    """``onnx.load`` of a file (its external data included); what it cannot read is a ProgramError
    naming the file and what onnx found (a missing or short external data file, a path out of
    the model's folder, a damaged protobuf)."""
    onnx = require_onnx("reading ONNX models")
    try:
        return onnx.load(str(path))
    except FileNotFoundError:
        raise ProgramError("no such ONNX file", file=path) from None
    except Exception as exc:  # onnx raises several protobuf, IO and validation error types
        text = " ".join(str(exc).split())
        found = f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
        raise ProgramError("cannot read ONNX model", file=path, found=found) from None


# TensorProto data field holding each element type's values when raw_data is absent (onnx.proto)
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def initializer_array(tensor: Any, file: str) -> np.ndarray:
    """The array of an ONNX ``TensorProto``; a tensor whose dims and data disagree is a ProgramError."""
    from onnx import helper, numpy_helper

    where = f"initializer '{tensor.name}'"
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise ProgramError("negative tensor dimension", file=file, where=f"{where}: dims", found=dims)
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    except (KeyError, TypeError, ValueError):
        raise ProgramError("unknown tensor data type", file=file, where=f"{where}: data_type",
                           found=tensor.data_type) from None
    elements = 1
    for d in dims:
        elements *= d
    check_bytes(elements * max(dtype.itemsize, 1), file=file, field=f"{where}: dims")
    if tensor.HasField("raw_data"):
        # sub-byte types (int4, uint4, float4) pack two elements to a byte
        packed = tensor.data_type in _packed_types()
        held = len(tensor.raw_data) * 2 if packed else len(tensor.raw_data) // max(dtype.itemsize, 1)
        exact = (len(tensor.raw_data) * 2 in (elements, elements + 1)) if packed else \
            len(tensor.raw_data) == elements * dtype.itemsize
    else:
        held = max(len(getattr(tensor, name)) for name in _TYPED_FIELDS)
        exact = held == elements or (tensor.data_type in _packed_types() and held == -(-elements // 2))
    if not exact:
        raise ProgramError("tensor data does not match its dims", file=file, where=f"{where}: dims",
                           expected=f"{elements:,} elements of {dtype}", found=f"data for {held:,}")
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ProgramError(f"unreadable tensor data: {exc}", file=file, where=where) from None


def _packed_types() -> set[int]:
    from onnx import TensorProto

    return {getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n)}
