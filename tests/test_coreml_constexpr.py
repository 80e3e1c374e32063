"""Core ML compressed constants (constexpr_lut_to_dense, constexpr_affine_dequantize) and list
parameters written with coremltools' protobuf classes: MIL's definitions checked, every damaged
or unmodelled form refused with the op named, never a ValueError or a silently changed weight."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from coreml_support import mil_program

from anesim.compiler import compile_file
from anesim.errors import AnesimError, UnsupportedError


@pytest.fixture(scope="module")
def pb():
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    pytest.importorskip("coremltools")
    from coremltools.proto import MIL_pb2, Model_pb2
    return MIL_pb2, Model_pb2


def _typed(pb, value, kind: str, data, dims: list[int]) -> None:
    """Fill a MIL ``Value`` with an immediate tensor of ``kind`` (MIL type name) and ``dims``."""
    mil = pb[0]
    value.type.tensorType.rank = len(dims)
    value.type.tensorType.dataType = getattr(mil, kind)
    for d in dims:
        value.type.tensorType.dimensions.add().constant.size = d
    tensor = value.immediateValue.tensor
    if isinstance(data, bytes):
        tensor.bytes.values = data
    else:
        field = {"FLOAT32": "floats", "INT32": "ints", "STRING": "strings"}[kind]
        getattr(tensor, field).values.extend(data)


def _spec(pb, path: Path, const_op: str | None, attrs: dict, op: str = "conv", params: dict | None = None) -> Path:
    """A model ``x (1, 4, 2, 2) -> op -> y``; with ``const_op``, the op's weight is that constexpr."""
    model, block = mil_program(*pb)
    if const_op:
        const = block.operations.add(type=const_op)
        const.outputs.add(name="w")
        for key, (kind, data, dims) in attrs.items():
            _typed(pb, const.attributes[key], kind, data, dims)
    node = block.operations.add(type=op)
    node.inputs["x"].arguments.add(name="x")
    if const_op:
        node.inputs["weight"].arguments.add(name="w")
    for key, (kind, data, dims) in (params or {}).items():
        _typed(pb, node.inputs[key].arguments.add().value, kind, data, dims)
    node.outputs.add(name="y")
    block.outputs.append("y")
    path.write_bytes(model.SerializeToString())
    return path


LUT = {"lut": ("FLOAT32", [0.0, 1.0, 2.0, 3.0], [4]), "indices": ("UINT8", bytes([0b11100100] * 4), [4]),
       "shape": ("INT32", [4, 4, 1, 1], [4])}
AFFINE = {"quantized_data": ("INT8", bytes(range(16)), [4, 4, 1, 1]), "zero_point": ("INT8", bytes([1]), []),
          "scale": ("FLOAT32", [0.5], []), "axis": ("INT32", [0], [])}


def test_compressed_weights_keep_their_codes(pb, tmp_path: Path) -> None:
    kernel = compile_file(_spec(pb, tmp_path / "lut.mlmodel", "constexpr_lut_to_dense", LUT), "m1") \
        .program.tasks[0].ne.kernel
    assert (kernel.format, kernel.palette_bits) == ("palette", 2)
    assert kernel.weights.reshape(-1).tolist() == [0, 1, 2, 3] * 4
    kernel = compile_file(_spec(pb, tmp_path / "q.mlmodel", "constexpr_affine_dequantize", AFFINE), "m1") \
        .program.tasks[0].ne.kernel
    assert kernel.format == "int8" and kernel.weights.reshape(-1).tolist() == list(range(16))
    assert kernel.zero_point.tolist() == [1] * 4


def test_a_zero_point_the_engine_cannot_hold_runs_the_exact_values_in_fp16(pb, tmp_path: Path) -> None:
    """MIL allows an fp32 zero point; the engine's int8 kernels hold integers: fp16 weights of the
    dequantised values, not a re-quantisation that changes them."""
    attrs = {**AFFINE, "zero_point": ("FLOAT32", [0.25], [])}
    result = compile_file(_spec(pb, tmp_path / "q.mlmodel", "constexpr_affine_dequantize", attrs), "m1")
    kernel = result.program.tasks[0].ne.kernel
    assert kernel.format == "fp16"
    want = ((np.arange(16, dtype=np.float32) - 0.25) * 0.5).astype(np.float16).view(np.uint16)
    assert kernel.weights.reshape(-1).tolist() == want.tolist()


@pytest.mark.parametrize("op, change, message", [
    ("lut", {"lut": ("FLOAT32", [], [0])}, "must hold 2, 4, 16, 64 or 256 entries .*found 0"),
    ("lut", {"lut": ("FLOAT32", [0.0, 1.0, 2.0], [3])}, "must hold 2, 4, 16, 64 or 256 entries .*found 3"),
    ("lut", {"lut": ("STRING", ["a", "b"], [2])}, "a palette .lut. must hold numbers"),
    ("lut", {"shape": ("STRING", ["a"], [1])}, "parameter 'shape' must be a list of integers"),
    ("lut", {"indices": ("UINT8", bytes([1]), [1])}, "indices must be packed bytes.*expected 4 uint8"),
    ("lut", {"shape": ("INT32", [4, 4, 100000, 100000], [4])}, "indices must be packed bytes"),
    ("affine", {"axis": ("INT32", [7], [])}, "'axis' must name one axis of quantized_data"),
    ("affine", {"axis": ("STRING", ["a"], [])}, "parameter 'axis' must be a list of integers"),
    ("affine", {"quantized_data": ("FLOAT32", [1.0] * 16, [4, 4, 1, 1])}, "must be a tensor of int8 or uint8"),
    ("affine", {"scale": ("FLOAT32", [0.5] * 3, [3])}, "scale must be a scalar or one float per slice"),
    ("affine", {"scale": ("STRING", ["a"], [])}, "scale must be a scalar or one float per slice"),
    ("affine", {"zero_point": ("INT8", bytes(3), [3])}, "zero_point must be a scalar or one number per slice"),
    ("affine", {"bias": ("FLOAT32", [0.5], [])}, "attribute 'bias' of constexpr_affine_dequantize is not modelled"),
    ("affine", {"axis": None}, "only the iOS 16 form"),
])
def test_damaged_compressed_weights_are_refused(pb, tmp_path: Path, op: str, change: dict, message: str) -> None:
    attrs = {k: v for k, v in {**(LUT if op == "lut" else AFFINE), **change}.items() if v is not None}
    const_op = "constexpr_lut_to_dense" if op == "lut" else "constexpr_affine_dequantize"
    with pytest.raises(UnsupportedError, match=message) as info:
        compile_file(_spec(pb, tmp_path / "bad.mlmodel", const_op, attrs), "m1")
    assert f"'w' ({const_op})" in str(info.value)


@pytest.mark.parametrize("op, params, key", [
    ("transpose", {"perm": ("STRING", ["0", "1", "a", "2"], [4])}, "perm"),
    ("transpose", {"perm": ("FLOAT32", [0, 1, 3, 2.5], [4])}, "perm"),
    ("reshape", {"shape": ("FLOAT32", [float("nan")], [1])}, "shape"),
    ("max_pool", {"kernel_sizes": ("FLOAT32", [1.5, 1], [2]), "strides": ("INT32", [1, 1], [2]),
                  "pad_type": ("STRING", ["valid"], [])}, "kernel_sizes"),
    ("max_pool", {"kernel_sizes": ("FLOAT32", [float("inf"), 1], [2]), "strides": ("INT32", [1, 1], [2]),
                  "pad_type": ("STRING", ["valid"], [])}, "kernel_sizes"),
    ("reduce_mean", {"axes": ("STRING", ["q"], [1])}, "axes"),
])
def test_list_parameters_hold_integers(pb, tmp_path: Path, op: str, params: dict, key: str) -> None:
    """A string escaped as ValueError, an infinity as OverflowError; a fraction was truncated."""
    with pytest.raises(AnesimError, match=rf"\({op}\): parameter '{key}' must be a list of integers"):
        compile_file(_spec(pb, tmp_path / "bad.mlmodel", None, {}, op=op, params=params), "m1")


def test_compressed_weights_read_by_a_matrix_product_give_a_timing_warning(pb, tmp_path: Path, capsys) -> None:
    """A linear layer's palettised weights run as fp16 data: the values are the model's, the
    weight stream is not, and the run says so (a timing note), where a convolution keeps them."""
    from anesim.cli import main

    path = _spec(pb, tmp_path / "fc.mlmodel", "constexpr_lut_to_dense", {**LUT, "shape": ("INT32", [3, 2], [2])},
                 op="linear")
    program = compile_file(path, "m1").program
    (note,) = program.approximations
    assert note.kind == "timing" and "'y' (linear) weight 'w'" in note.field and "8x the weight bytes" in note.message
    assert main(["run", str(path), "--chip", "m1", "--timing-only"]) == 0
    assert "anesim: warning:" in capsys.readouterr().err
    conv = _spec(pb, tmp_path / "conv.mlmodel", "constexpr_lut_to_dense", LUT)
    assert compile_file(conv, "m1").program.approximations == []


def test_a_compiled_model_s_timing_notes_are_errors_under_strict(pb, tmp_path: Path, monkeypatch) -> None:
    """ANESIM_STRICT=1 refuses timing notes, for a compiled model as for a decoded program."""
    import anesim

    path = _spec(pb, tmp_path / "fc.mlmodel", "constexpr_lut_to_dense", {**LUT, "shape": ("INT32", [3, 2], [2])},
                 op="linear")
    assert len(anesim.compile(path, "m1").program.approximations) == 1
    monkeypatch.setenv("ANESIM_STRICT", "1")
    with pytest.raises(AnesimError, match=r"fc.mlmodel: .*read as fp16 by a matrix product.*ANESIM_STRICT=1"):
        anesim.compile(path, "m1")
