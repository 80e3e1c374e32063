"""Compiler front end: the builder, shape rules, seeded constants and graph rewrites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anesim.compiler import Builder, compile_graph
from anesim.compiler.graph.constants import ConstantData, Init, derive_seed
from anesim.compiler.graph.passes import run_passes
from anesim.compiler.reference import fp16_inputs, run_graph
from anesim.errors import AnesimError, CompileError


def test_conv_and_linear_shapes() -> None:
    b = Builder("shapes")
    x = b.input("x", (1, 3, 32, 32))
    y = b.conv2d(x, 16, kernel=3, stride=2, padding=1)
    assert y.shape == (1, 16, 16, 16)
    z = b.conv2d(y, 16, kernel=3, padding="same", groups=16)
    assert z.shape == (1, 16, 16, 16)
    d = b.conv2d(z, 8, kernel=3, dilation=2)
    assert d.shape == (1, 8, 12, 12)
    p = b.global_avg_pool(d)
    f = b.linear(p, 10, bias=True)
    assert f.shape == (1, 10, 1, 1)
    m = b.matmul(b.input("a", (2, 4, 5)), b.input("c", (2, 5, 3)))
    assert m.shape == (2, 4, 3)


@pytest.mark.parametrize("build, text", [
    (lambda b: b.conv2d(b.input("x", (1, 6, 8, 8)), 4, kernel=3, groups=4), "divisible by groups"),
    (lambda b: b.conv2d(b.input("x", (1, 4, 2, 2)), 4, kernel=5), "larger than the padded input"),
    (lambda b: b.matmul(b.input("a", (3, 4)), b.input("c", (5, 6))), "inner dimensions"),
    (lambda b: b.add(b.input("a", (1, 3, 4, 4)), b.input("c", (1, 2, 4, 4))), "do not broadcast"),
    (lambda b: b.linear(b.input("x", (7, 5)), 3), "channel-first"),
    (lambda b: b.reshape(b.input("x", (1, 3, 4, 4)), (5, -1)), "cannot reshape"),
    (lambda b: b.op("softmax", [b.input("x", (1, 3, 4, 4))], axis=7), "'axis'"),
    (lambda b: b.op("conv2d", [b.input("x", (1, 3, 4, 4))]), "takes 2 to 3 inputs"),
    (lambda b: b.op("frobnicate", [b.input("x", (1, 3, 4, 4))]), "unknown operation"),
])
def test_builder_errors_name_the_op(build, text: str) -> None:
    b = Builder("bad")
    with pytest.raises(AnesimError) as info:
        build(b)
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_seeded_constants_are_lazy_and_deterministic() -> None:
    data = ConstantData.seeded((64, 64, 3, 3), Init("he_normal", seed=7))
    assert not data.is_materialized
    first = data.array()
    assert not data.is_materialized  # not cached unless asked
    assert np.array_equal(first, ConstantData.seeded((64, 64, 3, 3), Init("he_normal", seed=7)).array())
    assert abs(float(first.std()) - np.sqrt(2 / (64 * 9))) < 0.01
    assert derive_seed(0, "a.weight") != derive_seed(0, "b.weight")
    assert derive_seed(1, "a.weight") != derive_seed(0, "a.weight")


def test_compiling_does_not_draw_weights() -> None:
    b = Builder("big", seed=3)
    x = b.input("x", (1, 512, 7, 7))
    y = b.conv2d(x, 1024, kernel=3, padding=1)
    b.output(y)
    g = b.build()
    result = compile_graph(g, "m1")
    assert all(not c.data.is_materialized for c in g.constants.values())
    kernel = result.program.tasks[0].ne.kernel
    assert kernel.shape == (1024, 512, 3, 3)
    assert not kernel.is_materialized
    assert kernel.weights.shape == (1024, 512, 3, 3)  # drawn on demand
    assert kernel.is_materialized


def test_same_seed_same_program_weights() -> None:
    def build(seed: int) -> np.ndarray:
        b = Builder("w", seed=seed)
        b.output(b.conv2d(b.input("x", (1, 4, 4, 4)), 4, kernel=1))
        return compile_graph(b.build(), "m1").program.tasks[0].ne.kernel.weights

    assert np.array_equal(build(1), build(1))
    assert not np.array_equal(build(1), build(2))


def test_batch_norm_folds_into_convolution() -> None:
    b = Builder("bn")
    x = b.input("x", (1, 4, 6, 6))
    y = b.batch_norm(b.conv2d(x, 8, kernel=3, padding=1, bias=True), gamma="uniform", mean="normal",
                     var={"init": "uniform", "low": 0.5, "high": 2.0})
    b.output(b.relu(y))
    g = b.build()
    assert [n.op for n in run_passes(g).nodes] == ["conv2d", "relu"]
    result = compile_graph(g, "m1")
    assert len(result.program.tasks) == 1
    assert result.program.tasks[0].ne.activation == "relu"


def test_transpose_of_left_operand_folds_into_matmul() -> None:
    b = Builder("t")
    a = b.input("a", (1, 2, 5, 4))
    c = b.input("c", (1, 2, 5, 3))
    b.output(b.matmul(b.transpose(a, (0, 1, 3, 2)), c))
    g = run_passes(b.build())
    assert [n.op for n in g.nodes] == ["matmul"]
    assert g.nodes[0].attrs["transpose_a"] is True


def test_constant_subgraphs_fold_lazily() -> None:
    b = Builder("c")
    w = b.constant("w", "normal", shape=(6, 4))
    wt = b.transpose(w, (1, 0))
    x = b.input("x", (3, 6))
    b.output(b.matmul(x, wt, transpose_b=True))
    g = run_passes(b.build())
    assert [n.op for n in g.nodes] == ["matmul"]
    assert not g.constants[wt.name].data.is_materialized
    ins = fp16_inputs(b.graph, 0)
    np.testing.assert_allclose(run_graph(g, ins)[g.outputs[0]], run_graph(b.graph, ins)[g.outputs[0]], rtol=1e-5)


def test_unknown_tensor_is_an_error() -> None:
    b = Builder("u")
    with pytest.raises(CompileError, match="unknown tensor"):
        b.relu("nope")


def test_graph_without_outputs_is_an_error() -> None:
    b = Builder("empty")
    b.input("x", (1, 1, 1, 1))
    with pytest.raises(CompileError, match="no outputs"):
        b.build()


@pytest.mark.parametrize("lo, hi, ops", [
    (-1.0, 3.0, ["clip"]),
    (0.0, 3.4e38, ["max"]),  # (ONNX exporters write FLT_MAX for "no maximum")
    (-1e300, 2.0, ["min"]),
    (-70000.0, 70000.0, ["identity"]),
    (-1.0, 65519.0, ["clip"]),  # (fp16 rounds 65519 to 65504: a bound it holds)
])
def test_a_clip_bound_past_fp16_s_range_is_dropped(lo: float, hi: float, ops: list[str]) -> None:
    """A bound fp16 rounds to an infinity clips nothing an fp16 tensor holds; as a table's range it
    was refused when the program ran (no finite knot span). The values still match the reference."""
    from anesim.chips import load_chip
    from anesim.functional import execute

    b = Builder("clip")
    x = b.input("x", (1, 4, 4, 4))
    b.output(b.clip(b.conv2d(x, 4, 1, name="c"), lo, hi, name="cl"))
    graph = b.build()
    assert [n.op for n in graph.nodes][1:] == ops
    chip = load_chip("m1")
    feeds = {"x": np.random.default_rng(0).uniform(-8, 8, (1, 4, 4, 4)).astype(np.float16)}
    got = compile_graph(graph, chip).execute(feeds, lambda seg, f: execute(seg, f, chip, "exact"))
    want = run_graph(graph, {k: v.astype(np.float32) for k, v in feeds.items()})
    out = graph.outputs[0]
    np.testing.assert_allclose(got[out].astype(np.float32), want[out], atol=0.02)


def test_a_clip_bound_past_the_far_side_is_refused() -> None:
    b = Builder("clip")
    x = b.input("x", (1, 4, 4, 4))
    with pytest.raises(CompileError, match="beyond fp16's range on the far side"):
        b.clip(x, 70000.0, 80000.0)


def test_an_onnx_clip_to_flt_max_is_a_max(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from anesim.compiler import compile_file

    bounds = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 3.4028235e38))]
    graph = helper.make_graph([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], bounds)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert [n.op for n in compile_file(path, "m1").graph.nodes] == ["max"]


def test_ieee_values_of_odd_constants_come_without_numpy_s_warnings() -> None:
    """A batch norm with a negative variance (NaN gain), a bias past float32 and a host op on
    infinities compute what the formulas give; numpy's warnings reached the terminal (fuzzing)."""
    import warnings

    from anesim.chips import load_chip
    from anesim.functional import execute

    b = Builder("odd")
    x = b.input("x", (1, 4, 2, 2))
    y = b.batch_norm(b.conv2d(x, 4, 1, name="c"), var=np.array([1.0, -2.0, 1.0, 1.0], np.float32),
                     name="bn")
    z = b.op("fmod", [b.op("add", [y, b.constant("big", np.full((1, 4, 1, 1), 3e38, np.float32))]), y])
    b.output(z)
    chip = load_chip("m1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = b.build()
        got = compile_graph(graph, chip).execute({"x": np.ones((1, 4, 2, 2), np.float16)},
                                                 lambda seg, f: execute(seg, f, chip, "exact"))
    assert np.isnan(got[graph.outputs[0]][0, 1]).all()
