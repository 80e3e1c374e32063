"""Differential fuzzing of the compiler (anesim.fuzz.graphs): random small graphs compute on the
engine what the numpy reference computes, or are refused; never a wrong value or a traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from anesim.fuzz.graphs import compare, run_graph_case

FAILURES = ("wrong", "escape")


def _cases(seed: int, indices: range | list[int]) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (fp16 overflow to inf is the engine's value)
        return [run_graph_case(seed, i) for i in indices]


def test_a_few_hundred_random_graphs_compute_their_values() -> None:
    cases = _cases(1, range(250))
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed
    # the draws are valid often enough that the fuzzer checks something, guarded ops and norms too
    assert sum(c.status == "ok" for c in cases) >= 150
    computed = {op.split()[0] for c in cases if c.status == "ok" for op in c.ops}
    assert {"log", "sqrt", "rsqrt", "reciprocal", "layer_norm", "rms_norm"} <= computed


def test_a_transposed_product_with_one_contraction_row() -> None:
    """Found by the fuzzer: in AᵀB with a single contraction row, the run-time weights (a row of
    A per contraction index) were read as one output channel of many inputs, and the executor
    stopped on the mismatch."""
    import anesim
    from anesim.compiler import Builder, compile_graph

    rng = np.random.default_rng(0)
    b = Builder("atb")
    x = b.input("x", (1, 9, 1, 9))
    w = rng.uniform(-1, 1, (1, 1, 1, 4)).astype(np.float32)
    b.output(b.op("matmul", [x, b.constant("w", w)], name="y", transpose_a=True))
    graph = b.build()
    xv = rng.uniform(-1, 1, (1, 9, 1, 9)).astype(np.float16)
    got = np.asarray(anesim.execute(compile_graph(graph, "m1"), {"x": xv}, "m1")["y"], np.float32)
    want = np.swapaxes(xv.astype(np.float32), -1, -2) @ w
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)


def test_a_case_replays_alike() -> None:
    first, second = _cases(7, [3])[0], _cases(7, [3])[0]
    assert (first.status, first.detail, first.ops) == (second.status, second.detail, second.ops)


def test_the_comparison_catches_what_it_must() -> None:
    want = np.array([[1.0, -2.0], [0.5, np.inf]], np.float32)
    assert compare(want.copy(), want)[0]
    assert not compare(want.T.copy(), want[:, :1])[0]  # a shape
    assert not compare(want * 1.2, want)[0]  # values
    got = want.copy()
    got[0, 0] = np.nan
    assert not compare(got, want)[0]  # NaN where the reference is finite
    got = want.copy()
    got[1, 1] = 65504.0
    assert not compare(got, want)[0]  # a finite value where the reference is infinite
    nan = np.array([np.nan, 1.0], np.float32)
    assert compare(nan.copy(), nan)[0] and not compare(np.array([0.0, 1.0], np.float32), nan)[0]
    # a float32 reference beyond fp16's range: fp16 rounds it to an infinity of its sign
    big = np.array([100604.4, -75827.6, 65519.0, 1.0], np.float32)
    assert compare(np.array([np.inf, -np.inf, 65504.0, 1.0], np.float32), big)[0]
    assert not compare(np.array([65504.0, -np.inf, 65504.0, 1.0], np.float32), big)[0]
    assert not compare(np.array([-np.inf, -np.inf, 65504.0, 1.0], np.float32), big)[0]
    assert not compare(np.array([np.inf, -np.inf, np.inf, 1.0], np.float32), big)[0]


@pytest.mark.slow
@pytest.mark.cost(9)
@pytest.mark.parametrize("first", range(0, 2000, 500))
def test_two_thousand_random_graphs(first: int) -> None:
    cases = _cases(2, range(first, first + 500))  # (four items, so that test workers share them)
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed[:10]


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx", reason="the ONNX cases need onnx (a test extra)")
    return pytest.importorskip("onnxruntime", reason="the ONNX cases are checked against onnxruntime (a test extra)")


def _onnx_cases(seed: int, indices: range) -> list:
    from anesim.fuzz.onnx_ops import run_onnx_case

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [run_onnx_case(seed, i) for i in indices]


@pytest.mark.cost(5)
def test_single_onnx_operators_with_random_attributes_match_onnx_runtime(ort) -> None:
    cases = _onnx_cases(1, range(200))
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed
    assert sum(c.status == "ok" for c in cases) >= 120


def test_an_onnx_scalar_output_keeps_its_shape(ort, tmp_path) -> None:
    """Found by the ONNX cases: a reduction of every axis without kept dims is a scalar in ONNX,
    held as (1,) by the engine; a run handed it back as (1,)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import anesim

    node = helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                              [numpy_helper.from_array(np.array([0, 1], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "scalar.onnx"))
    got = anesim.execute(anesim.compile(tmp_path / "scalar.onnx", "m1"),
                         {"x": np.arange(6, dtype=np.float32).reshape(1, 6)}, "m1")["y"]
    assert got.shape == () and float(got) == 5.0
    # and in the declared type, as a runtime hands it back (the engine computed it in fp16)
    assert got.dtype == np.float32


def test_onnx_results_come_back_in_their_declared_types(ort, tmp_path) -> None:
    """anesim.execute converts the engine's fp16 to each output's declared type, as the ONNX
    backend always did: a float32 output is float32, a comparison's a bool, an int32 exact."""
    import onnx
    from onnx import TensorProto, helper

    import anesim

    nodes = [helper.make_node("Relu", ["x"], ["f"]), helper.make_node("Greater", ["x", "f"], ["b"]),
             helper.make_node("Cast", ["f"], ["i"], to=TensorProto.INT32)]
    outs = [helper.make_tensor_value_info("f", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("b", TensorProto.BOOL, [2, 3]),
            helper.make_tensor_value_info("i", TensorProto.INT32, [2, 3])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "typed.onnx"))
    x = np.array([[-2.0, 0.0, 1.5], [3.0, -0.5, 7.0]], np.float32)
    got = anesim.execute(anesim.compile(tmp_path / "typed.onnx", "m1"), {"x": x}, "m1")
    want = ort.InferenceSession(str(tmp_path / "typed.onnx")).run(None, {"x": x})
    for name, ref in zip("fbi", want):
        assert got[name].dtype == ref.dtype and np.array_equal(got[name], ref), name


@pytest.mark.slow
@pytest.mark.cost(8)
@pytest.mark.parametrize("first", (0, 500))
def test_a_thousand_onnx_operators(ort, first: int) -> None:
    cases = _onnx_cases(2, range(first, first + 500))
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed[:10]
