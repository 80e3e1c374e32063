"""The ONNX backend conformance suite (onnx.backend.test.BackendTest) run against anesim.

Every node and simple-model case the installed onnx ships is collected. The cases anesim does
not pass are listed, each with its reason, in tests/onnx_expected_failures.yaml and applied as
expected failures: a listed case that starts to pass fails here until it leaves the list.
Outputs are compared with fp16 tolerances (tests/onnx_support.py, docs/onnx.md "Tolerances").
The whole suite runs in the default test run (about a minute on 2 cores).
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import onnx_support  # noqa: E402
from onnx.backend.test import BackendTest  # noqa: E402

from anesim.errors import AnesimError  # noqa: E402
from anesim.onnx_backend import AnesimBackend  # noqa: E402


class Fp16BackendTest(BackendTest):
    """The ONNX runner, comparing as the suite does but with tolerances for fp16 execution."""

    @classmethod
    def assert_similar_outputs(cls, ref_outputs, outputs, rtol, atol, model_dir=None) -> None:  # noqa: ARG003
        onnx_support.compare(list(ref_outputs), tuple(outputs))


def _expected() -> dict[str, str]:
    import yaml

    return yaml.safe_load(onnx_support.EXPECTED_FAILURES.read_text()) or {}


EXPECTED = _expected()
backend_test = Fp16BackendTest(AnesimBackend, __name__)
for _name in EXPECTED:
    backend_test.xfail(f"^{re.escape(_name)}_cpu$")
# The node and simple-model cases ship with onnx; the real and PyTorch-converted models are
# downloads and are not collected.
CATEGORIES = ("OnnxBackendNodeModelTest", "OnnxBackendSimpleModelTest")

# The default run takes a deterministic half of the cases (by a hash of the name); the other
# half is marked slow (run with -m slow, or by the CI slow job and the benchmark).
def _default(name: str) -> bool:
    return zlib.crc32(name.encode()) % 2 == 0


for _cls_name, _cls in backend_test.test_cases.items():
    if _cls_name not in CATEGORIES:
        continue
    for _attr in [a for a in vars(_cls) if a.startswith("test_")]:
        if not _default(_attr):
            setattr(_cls, _attr, pytest.mark.slow(getattr(_cls, _attr)))
    globals()[_cls_name] = _cls
del _cls, _cls_name, _attr


def test_expected_failures_have_reasons() -> None:
    """Every listed case names why; none is an unexplained failure."""
    for name, reason in EXPECTED.items():
        assert reason.startswith(("refused: ", "fp16: ")), f"{name}: {reason}"


def _node_model(node, inputs, outputs, opset=None):
    from onnx import helper

    graph = helper.make_graph([node], "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset or 18)])


def test_an_unsupported_attribute_names_node_op_attribute_and_opset() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], dilations=[2, 2])
    model = _node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(AnesimError) as err:
        AnesimBackend.prepare(model, "m1")
    text = str(err.value)
    assert "node 0 'pool' (MaxPool, opset 18)" in text and "dilations" in text


def test_an_unread_attribute_is_refused_not_ignored() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"], name="act", bogus=3)
    model = _node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(AnesimError, match="attribute 'bogus' is not supported"):
        AnesimBackend.prepare(model, "m1")


def test_backend_api_runs_a_node_on_a_chip_and_keeps_types() -> None:
    from onnx import helper

    node = helper.make_node("Greater", ["a", "b"], ["y"])
    a = np.array([[1.0, 2.0, 3.0]], np.float32)
    b = np.array([[2.0, 2.0, 2.0]], np.float32)
    (y,) = AnesimBackend.run_node(node, [a, b], device="m5-pro")
    assert y.dtype == np.bool_ and y.tolist() == [[False, False, True]]
    assert AnesimBackend.supports_device("CPU") and AnesimBackend.supports_device("m1")
    assert not AnesimBackend.supports_device("CUDA")


def test_shape_arithmetic_folds_and_reshape_runs_on_the_engine() -> None:
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "last"], ["n"], axis=0),
             helper.make_node("Concat", ["minus1", "n"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    inits = [helper.make_tensor("last", TensorProto.INT64, [1], [-1]),
             helper.make_tensor("minus1", TensorProto.INT64, [1], [-1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    rep = AnesimBackend.prepare(model, "m1")
    (y,) = rep.run([x])
    np.testing.assert_array_equal(y, x.reshape(6, 4))
    assert not rep.compiled.host_ops  # (2, 3, 4) -> (6, 4) keeps the width axis: a view


def _ort(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _rel(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / (np.abs(want).max() + 1e-12))


def test_a_conv_block_matches_onnxruntime() -> None:
    """Conv, batch norm, ReLU, ceil-mode max pool, nearest upsample, transposed conv, pad."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             "b": rng.standard_normal(8).astype(np.float32) * 0.1,
             "g": rng.uniform(0.5, 1.5, 8).astype(np.float32), "beta": rng.standard_normal(8).astype(np.float32),
             "mean": rng.standard_normal(8).astype(np.float32) * 0.1, "var": rng.uniform(0.5, 2, 8).astype(np.float32),
             "scales": np.array([1, 1, 2, 2], np.float32), "wt": rng.standard_normal((8, 4, 2, 2)).astype(np.float32) * 0.3,
             "pads": np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             helper.make_node("Resize", ["p", "", "scales"], ["u"], mode="nearest"),
             helper.make_node("ConvTranspose", ["u", "wt"], ["t"], strides=[2, 2]),
             helper.make_node("Pad", ["t", "pads"], ["y"], mode="reflect")]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 17, 17])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((1, 3, 17, 17)).astype(np.float32)
    (want,) = _ort(model, {"x": x})
    (got,) = AnesimBackend.run_model(model, [x], "m5-pro")
    assert got.shape == want.shape
    assert _rel(got, want) < 1e-2  # fp16 storage and products: about 2^-8 of the output's range


def test_features_last_attention_with_einsum_matches_onnxruntime() -> None:
    """Multi-head attention as exported: projections, heads by Reshape/Transpose, Einsum, Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    s, d, h = 8, 16, 2
    inits = {k: rng.standard_normal((d, d)).astype(np.float32) / 4 for k in ("wq", "wk", "wv")}
    inits["heads"] = np.array([1, s, h, d // h], np.int64)
    inits["merged"] = np.array([1, s, d], np.int64)
    nodes = [helper.make_node("MatMul", ["x", f"w{n}"], [n]) for n in "qkv"]
    for n in "qkv":
        nodes += [helper.make_node("Reshape", [n, "heads"], [f"{n}4"]),
                  helper.make_node("Transpose", [f"{n}4"], [f"{n}h"], perm=[0, 2, 1, 3])]
    nodes += [helper.make_node("Einsum", ["qh", "kh"], ["scores"], equation="bhid,bhjd->bhij"),
              helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
              helper.make_node("Einsum", ["p", "vh"], ["o"], equation="bhij,bhjd->bhid"),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merged"], ["y"])]
    graph = helper.make_graph(nodes, "attn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, s, d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((1, s, d)).astype(np.float32)
    (want,) = _ort(model, {"x": x})
    (got,) = AnesimBackend.run_model(model, [x], "m5-pro")
    assert _rel(got, want) < 1e-2
