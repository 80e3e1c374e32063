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
