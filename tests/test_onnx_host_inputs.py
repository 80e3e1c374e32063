"""Engine values handed to a host op's integer inputs: passed when exact, refused otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from anesim.compiler.graph.graph import Node
from anesim.compiler.reference.onnx_host import _as_type
from anesim.errors import CompileError

NODE = Node("gather", "onnx_host", ("x",), "y", {"file": "model.onnx"})


def test_integral_fp16_becomes_int64() -> None:
    out = _as_type(np.array([0.0, 3.0, -2.0], np.float16), np.dtype(np.int64), (3,), NODE, "indices")
    assert out.dtype == np.int64 and out.tolist() == [0, 3, -2]


@pytest.mark.parametrize("value", [2.5, np.inf, np.nan, 300.0])
def test_non_integral_or_out_of_range_is_refused(value: float) -> None:
    arr = np.array([1.0, value], np.float32)
    with pytest.raises(CompileError, match=r"model\.onnx: .*input 'indices', element 1"):
        _as_type(arr, np.dtype(np.int8), (2,), NODE, "indices")


def test_bool_reads_non_zero() -> None:
    out = _as_type(np.array([0.0, 0.5], np.float16), np.dtype(np.bool_), (2,), NODE, "mask")
    assert out.tolist() == [False, True]
