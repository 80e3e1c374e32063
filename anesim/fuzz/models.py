"""Small seed models for the ONNX and Core ML fuzzers, built with each format's own protobuf API.

ONNX seeds are built with ``onnx.helper``; the Core ML seed is an ML program written with
coremltools' generated protobuf classes (``coremltools.proto``) plus a ``weight.bin`` blob file
in coremltools' storage layout, so neither needs the converters.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

BLOB_SENTINEL = 0xDEADBEEF
BLOB_FP16 = 1


def onnx_seeds() -> list[Any]:
    """Four small ONNX models: a CNN, an MLP with softmax, a residual block with a reshape, and a CNN
    with 8-bit weights (DequantizeLinear)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)

    def init(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)

    def model(nodes: list[Any], x: list[int], y: list[int], inits: list[Any], name: str) -> Any:
        graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, y)], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    cnn = model([
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("GlobalAveragePool", ["p1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flat"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1, name="fc"),
    ], [1, 4, 8, 8], [1, 6], [init("w1", 8, 4, 3, 3), init("b1", 8), init("w2", 6, 8), init("b2", 6)], "cnn")
    mlp = model([
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
        helper.make_node("Sigmoid", ["hb"], ["s"], name="act"),
        helper.make_node("MatMul", ["s", "w2"], ["z"], name="mm2"),
        helper.make_node("Softmax", ["z"], ["y"], axis=-1, name="softmax"),
    ], [1, 4, 16], [1, 4, 8], [init("w1", 16, 32), init("b1", 32), init("w2", 32, 8)], "mlp")
    block = model([
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1], group=2, name="grouped"),
        helper.make_node("Add", ["c1", "x"], ["a"], name="residual"),
        helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape"),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1], name="transpose"),
    ], [1, 8, 4, 4], [1, 16, 8], [init("w1", 8, 4, 1, 1),
                                  numpy_helper.from_array(np.array([1, 8, 16], np.int64), "shape")], "block")
    codes = numpy_helper.from_array(rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8), "w1q")
    quantised = model([  # 8-bit weights: per output channel for the convolution, one scale for the product
        helper.make_node("DequantizeLinear", ["w1q", "w1s", "w1z"], ["w1"], axis=0, name="dq1"),
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("GlobalAveragePool", ["c1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flat"),
        helper.make_node("DequantizeLinear", ["w2q", "w2s"], ["w2"], name="dq2"),
        helper.make_node("Gemm", ["f", "w2"], ["y"], name="fc"),
    ], [1, 4, 8, 8], [1, 6], [codes, numpy_helper.from_array(np.full(8, 0.01, np.float32), "w1s"),
                              numpy_helper.from_array(np.zeros(8, np.int8), "w1z"),
                              numpy_helper.from_array(rng.integers(0, 256, (8, 6)).astype(np.uint8), "w2q"),
                              numpy_helper.from_array(np.array(0.02, np.float32), "w2s")], "quantised")
    return [cnn, mlp, block, quantised]


def _tensor_type(proto: Any, dtype: int, dims: list[int] | None) -> Any:
    value_type = proto.ValueType()
    value_type.tensorType.dataType = dtype
    if dims is not None:
        value_type.tensorType.rank = len(dims)
        for d in dims:
            value_type.tensorType.dimensions.add().constant.size = d
    return value_type


def coreml_seed(folder: Path) -> Path:
    """Write a small .mlpackage (fp16 conv from weight.bin, bias, relu, average pool) into ``folder``."""
    from coremltools.proto import MIL_pb2 as mil
    from coremltools.proto import Model_pb2

    fp16, fp32, int32, string = mil.FLOAT16, mil.FLOAT32, mil.INT32, mil.STRING
    weights = (np.random.default_rng(3).standard_normal((8, 4, 3, 3)) * 0.2).astype(np.float16)
    model = Model_pb2.Model()
    model.specificationVersion = 8
    for name, dims, io in (("x", [1, 4, 8, 8], model.description.input),
                           ("y", [1, 8, 4, 4], model.description.output)):
        feature = io.add()
        feature.name = name
        feature.type.multiArrayType.shape.extend(dims)
        feature.type.multiArrayType.dataType = Model_pb2.ArrayFeatureType.FLOAT16
    program = model.mlProgram
    program.version = 1
    main = program.functions["main"]
    arg = main.inputs.add()
    arg.name = "x"
    arg.type.CopyFrom(_tensor_type(mil, fp16, [1, 4, 8, 8]))
    main.opset = "CoreML7"
    block = main.block_specializations["CoreML7"]
    block.outputs.append("y")

    def const(name: str, dtype: int, dims: list[int] | None, **value: Any) -> None:
        op = block.operations.add()
        op.type = "const"
        out = op.outputs.add()
        out.name = name
        out.type.CopyFrom(_tensor_type(mil, dtype, dims))
        val = op.attributes["val"]
        val.type.CopyFrom(out.type)
        if "blob" in value:
            val.blobFileValue.fileName = "@model_path/weights/weight.bin"
            val.blobFileValue.offset = value["blob"]
        elif "ints" in value:
            val.immediateValue.tensor.ints.values.extend(value["ints"])
        elif "floats" in value:
            val.immediateValue.tensor.floats.values.extend(value["floats"])
        else:
            val.immediateValue.tensor.strings.values.append(value["string"])

    def op(kind: str, out_name: str, **args: str) -> None:
        node = block.operations.add()
        node.type = kind
        for key, ref in args.items():
            node.inputs[key].arguments.add().name = ref
        out = node.outputs.add()
        out.name = out_name
        out.type.CopyFrom(_tensor_type(mil, fp16, None))

    const("strides", int32, [2], ints=[1, 1])
    const("pad_type", string, None, string="custom")
    const("pad", int32, [4], ints=[1, 1, 1, 1])
    const("dilations", int32, [2], ints=[1, 1])
    const("groups", int32, [], ints=[1])
    const("w", fp16, list(weights.shape), blob=64)
    const("b", fp32, [8], floats=[0.05 * i for i in range(8)])
    op("conv", "c", x="x", weight="w", bias="b", strides="strides", pad_type="pad_type", pad="pad",
       dilations="dilations", groups="groups")
    op("relu", "r", x="c")
    const("kernel_sizes", int32, [2], ints=[2, 2])
    const("pool_strides", int32, [2], ints=[2, 2])
    const("pool_pad_type", string, None, string="valid")
    op("avg_pool", "y", x="r", kernel_sizes="kernel_sizes", strides="pool_strides", pad_type="pool_pad_type")

    package = folder / "seed.mlpackage"
    data_dir = package / "Data" / "com.apple.CoreML"
    (data_dir / "weights").mkdir(parents=True, exist_ok=True)
    (data_dir / "model.mlmodel").write_bytes(model.SerializeToString(deterministic=True))
    payload = weights.tobytes()
    header = struct.pack("<II", 1, 2).ljust(64, b"\0")
    meta = struct.pack("<IIQQ", BLOB_SENTINEL, BLOB_FP16, len(payload), 128).ljust(64, b"\0")
    (data_dir / "weights" / "weight.bin").write_bytes(header + meta + payload)
    manifest = {"fileFormatVersion": "1.0.0", "rootModelIdentifier": "spec",
                "itemInfoEntries": {"spec": {"author": "com.apple.CoreML", "name": "model.mlmodel",
                                             "path": "com.apple.CoreML/model.mlmodel"},
                                    "weights": {"author": "com.apple.CoreML", "name": "weights",
                                                "path": "com.apple.CoreML/weights"}}}
    (package / "Manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return package
