"""ONNX weights stored as 8-bit codes (DequantizeLinear of a constant): kept by convolutions,
noted where a product reads them as fp16."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs the onnx package")
from onnx import TensorProto, helper, numpy_helper

from anesim.compiler import compile_graph
from anesim.compiler.frontends.onnx import import_onnx
from anesim.onnx_backend import AnesimBackend

RNG = np.random.default_rng(3)
CODES = RNG.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
SCALES = RNG.uniform(0.002, 0.02, 8).astype(np.float32)


def _model(dq_inputs, dq_attrs, consumer, inits, opset=17, out_shape=None):
    nodes = [helper.make_node("DequantizeLinear", dq_inputs, ["w"], **dq_attrs), consumer]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _compiled(model):
    imported = import_onnx(model, "q.onnx")
    return compile_graph(imported.graph, "m1")


def _conv_task(result):
    return next(t for t in result.program.tasks if t.ne is not None and t.ne.kernel is not None)


def _ort(model, x):
    ort = pytest.importorskip("onnxruntime", reason="the reference outputs come from onnxruntime (a test extra)")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _rel(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / (np.abs(want).max() + 1e-12))


def test_a_convolution_keeps_per_channel_int8_codes():
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    model = _model(["wq", "ws", "wz"], {"axis": 0}, conv,
                   {"wq": CODES, "ws": SCALES, "wz": np.zeros(8, np.int8)})
    result = _compiled(model)
    kernel = _conv_task(result).ne.kernel
    assert kernel.format == "int8"
    assert not result.program.approximations
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    (got,) = AnesimBackend.run_model(model, [x], "m1")
    assert _rel(got, _ort(model, x)) < 1e-2


def test_uint8_codes_with_one_zero_point_keep_their_type():
    codes = RNG.integers(0, 256, (8, 4, 3, 3)).astype(np.uint8)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    # opset 10: one scale and one zero point, no axis
    model = _model(["wq", "ws", "wz"], {}, conv,
                   {"wq": codes, "ws": np.array(0.01, np.float32), "wz": np.array(128, np.uint8)}, opset=10)
    result = _compiled(model)
    assert _conv_task(result).ne.kernel.format == "uint8"
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    (got,) = AnesimBackend.run_model(model, [x], "m1")
    assert _rel(got, _ort(model, x)) < 1e-2


def test_codes_along_the_input_axis_run_as_fp16_with_a_timing_note():
    codes = RNG.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    model = _model(["wq", "ws"], {"axis": 1}, conv, {"wq": codes, "ws": SCALES[:4]})
    result = _compiled(model)
    assert _conv_task(result).ne.kernel.format == "fp16"
    (note,) = result.program.approximations
    assert note.kind == "timing" and "'w'" in note.field and "2x the weight bytes" in note.message
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    (got,) = AnesimBackend.run_model(model, [x], "m1")
    assert _rel(got, _ort(model, x)) < 1e-2


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_a_matrix_product_reading_codes_carries_a_timing_note(op):
    codes = RNG.integers(-127, 128, (8, 16)).astype(np.int8)
    node = helper.make_node(op, ["x2", "w"], ["y"])
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
             helper.make_node("Reshape", ["x", "shape"], ["x2"]), node]
    graph = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(codes, "wq"),
                               numpy_helper.from_array(RNG.uniform(0.01, 0.02, 16).astype(np.float32), "ws"),
                               numpy_helper.from_array(np.array([32, 8], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = _compiled(model)
    notes = [n for n in result.program.approximations if n.kind == "timing"]
    assert len(notes) == 1 and "'w'" in notes[0].field and op in notes[0].message
    x = RNG.standard_normal((1, 4, 8, 8)).astype(np.float32)
    (got,) = AnesimBackend.run_model(model, [x], "m1")
    assert _rel(got, _ort(model, x)) < 1e-2


def test_float_weights_carry_no_note():
    w = RNG.standard_normal((8, 4, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w0"], ["y"], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Identity", ["wf"], ["w0"]), conv]
    graph = helper.make_graph(nodes, "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "wf")])
    result = _compiled(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert _conv_task(result).ne.kernel.format == "fp16"
    assert not result.program.approximations


def test_codes_read_as_data_by_an_elementwise_op_carry_a_timing_note():
    table = RNG.integers(-127, 128, (16, 8)).astype(np.int8)
    nodes = [helper.make_node("DequantizeLinear", ["tq", "ts"], ["table"], axis=0),
             helper.make_node("Add", ["x", "table"], ["y"])]
    graph = helper.make_graph(nodes, "add", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 8])],
                              [numpy_helper.from_array(table, "tq"),
                               numpy_helper.from_array(RNG.uniform(0.01, 0.02, 16).astype(np.float32), "ts")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = _compiled(model)
    notes = [n for n in result.program.approximations if n.kind == "timing"]
    assert len(notes) == 1 and "'table'" in notes[0].field and "Add" in notes[0].message



@pytest.mark.parametrize("opset", [13, 17])
def test_quantised_activations_run_on_the_host_as_onnxruntime_computes_them(opset):
    # (the QDQ form quantisation tools write: QuantizeLinear/DequantizeLinear around each input;
    # the installed reference implements them below opset 19 only through its version-19 class)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
                              [numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
                               numpy_helper.from_array(np.array(128, np.uint8), "xz"),
                               numpy_helper.from_array(CODES, "wq"), numpy_helper.from_array(SCALES, "ws"),
                               numpy_helper.from_array(np.zeros(8, np.int8), "wz")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    result = _compiled(model)
    assert [h.node.attrs["model"] is not None for h in result.segments[0].host_before] == [True, True]
    assert _conv_task(result).ne.kernel.format == "int8"
    x = RNG.uniform(-2, 2, (1, 4, 8, 8)).astype(np.float32)
    (got,) = AnesimBackend.run_model(model, [x], "m1")
    assert _rel(got, _ort(model, x)) < 1e-2
