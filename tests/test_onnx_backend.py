"""The ONNX backend conformance suite (onnx.backend.test.BackendTest) run against anesim.

Every node and simple-model case the installed onnx ships is collected. The cases anesim does
not pass are listed, each with its reason, in tests/onnx_expected_failures.yaml and applied as
expected failures: a listed case that starts to pass fails here until it leaves the list.
Outputs are compared with fp16 tolerances (tests/onnx_support.py, docs/onnx.md "Tolerances").
A deterministic half runs in the default test run, the rest is marked slow.
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


def test_an_attribute_the_engine_lacks_sends_the_node_to_the_host() -> None:
    """A dilated pool has no engine lowering: the host runs it with the onnx reference, exactly."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], dilations=[2, 2])
    model = _node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    rep = AnesimBackend.prepare(model, "m1")
    (y,) = rep.run([x])
    np.testing.assert_array_equal(y, ReferenceEvaluator(model).run(None, {"x": x})[0])  # fp32 on the CPU
    (host,) = rep.compiled.host_ops
    assert "dilations" in host.reason and "node 0 'pool' (MaxPool, opset 18)" in host.node.describe()


def test_integer_arithmetic_runs_on_the_host_and_wraps_like_onnx() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Add", ["a", "b"], ["y"])
    model = _node_model(node, [helper.make_tensor_value_info(n, TensorProto.INT8, [4]) for n in "ab"],
                        [helper.make_tensor_value_info("y", TensorProto.INT8, None)])
    a = np.array([100, -100, 7, 127], np.int8)
    b = np.array([100, -100, 1, 1], np.int8)
    (y,) = AnesimBackend.run_model(model, [a, b], "m5-pro")
    assert y.dtype == np.int8 and y.tolist() == (a + b).tolist()  # wraps: 200 -> -56


def test_rank_5_tensors_live_on_the_host_and_return_to_the_engine() -> None:
    """Unsqueeze to rank 5 and back: the rank-5 value is a host tensor, the rest engine work."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax"], ["u"]),
             helper.make_node("ReduceSum", ["u", "ax"], ["s"], keepdims=0),
             helper.make_node("Sigmoid", ["s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("ax", TensorProto.INT64, [1], [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    rep = AnesimBackend.prepare(model, "m5-pro")
    (y,) = rep.run([x])
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-np.maximum(x, 0))), rtol=2 ** -7, atol=2 ** -8)
    assert {h.node.attrs["source_type"] for h in rep.compiled.host_ops} == {"Unsqueeze", "ReduceSum"}
    assert rep.compiled.dispatches == 2  # relu before the host ops, sigmoid after


def test_random_operators_stay_refused() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Bernoulli", ["x"], ["y"])
    model = _node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(AnesimError, match="random operators are not supported"):
        AnesimBackend.prepare(model, "m1")


def test_cpu_means_the_environment_chip_or_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from anesim.onnx_backend import DEFAULT_CHIP, chip_for_device

    monkeypatch.delenv("ANESIM_ONNX_CHIP", raising=False)
    assert chip_for_device("CPU") == DEFAULT_CHIP == "m5-pro" and chip_for_device("m1") == "m1"
    monkeypatch.setenv("ANESIM_ONNX_CHIP", "m2")
    assert chip_for_device("CPU") == "m2" and AnesimBackend.supports_device("CPU")
    monkeypatch.setenv("ANESIM_ONNX_CHIP", "no-such-chip")
    assert not AnesimBackend.supports_device("CPU")


def test_host_ops_are_timed_as_the_cpu_fallback() -> None:
    """simulate charges host ops at the chip's CPU rates plus a handoff per engine/CPU switch."""
    from onnx import TensorProto, helper

    from anesim.chips import load_chip
    from anesim.timing import simulate

    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("LRN", ["a"], ["b"], size=3),
             helper.make_node("Sigmoid", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    chip = load_chip("m5-pro")
    rep = AnesimBackend.prepare(model, "m5-pro")
    timing = simulate(rep.compiled, chip, trace=False)
    (host,) = timing.host_tasks
    assert host.op == "LRN" and host.kind == "host" and host.unit == "cpu"
    assert timing.handoffs == 2 and timing.units["cpu"].busy_s == pytest.approx(timing.host_s)
    assert timing.host_s == pytest.approx(host.end_s - host.start_s + 2 * chip.cpu.handoff_s.value)
    engine_only = sum(simulate(s.program, chip, trace=False).latency_s for s in rep.compiled.segments)
    assert timing.latency_s == pytest.approx(engine_only + timing.host_s)
    assert timing.to_dict()["host_tasks"][0]["op"] == "LRN"


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


def test_old_dropout_is_training_unless_is_test() -> None:
    """Dropout-6 defaults to training mode (is_test 0): refused, not run as an identity."""
    from onnx import TensorProto, helper

    for attrs, refused in (({}, True), ({"is_test": 1}, False)):
        node = helper.make_node("Dropout", ["x"], ["y"], **attrs)
        model = _node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], opset=6)
        model.ir_version = 3
        if refused:
            with pytest.raises(AnesimError, match="training mode"):
                AnesimBackend.prepare(model, "m1")
        else:
            (y,) = AnesimBackend.run_model(model, [np.ones(4, np.float32)], "m1")
            assert y.tolist() == [1.0] * 4
