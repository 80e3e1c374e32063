"""Every op with an axis computes along the axis it names, for every axis of a rank-4 tensor,
batch included, and for axes of size one: on the engine where a lowering exists, on the host
(the CPU fallback) where it does not. A reduction over the batch axis once fell through to the
width lowering: with a batch of one it reduced the width instead (exit 0, wrong values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import anesim

OPS = ("softmax", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "concat", "slice", "layer_norm",
       "rms_norm")
SHAPES = ([1, 4, 3, 5], [2, 4, 3, 5], [1, 1, 3, 5], [1, 4, 1, 5], [1, 4, 3, 1])


def _expected(op: str, x: np.ndarray, z: np.ndarray, axis: int) -> np.ndarray:
    if op == "softmax":
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    if op.startswith("reduce_"):
        return getattr(np, op[len("reduce_"):])(x, axis=axis, keepdims=True)
    if op == "concat":
        return np.concatenate([x, z], axis=axis)
    if op == "slice":
        index = [slice(None)] * 4
        index[axis] = slice(0, max(1, x.shape[axis] // 2))
        return x[tuple(index)]
    if op == "layer_norm":
        d = x - x.mean(axis=axis, keepdims=True)
        return d / np.sqrt((d ** 2).mean(axis=axis, keepdims=True) + 1e-5)
    return x / np.sqrt((x ** 2).mean(axis=axis, keepdims=True) + 1e-6)  # rms_norm


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", OPS)
def test_an_op_works_along_the_axis_it_names(tmp_path: Path, op: str, shape: list[int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape).astype(np.float16)
    z = rng.uniform(-1, 1, shape).astype(np.float16)
    for axis in (0, 1, 2, 3, -1):
        entry = {"op": op, "in": ["x", "z"] if op == "concat" else "x", "out": "y", "axis": axis}
        if op == "slice":
            entry.update(start=0, end=max(1, shape[axis] // 2))
        inputs = {"x": {"shape": shape}, **({"z": {"shape": shape}} if op == "concat" else {})}
        path = tmp_path / f"{op}{axis}.yaml"
        path.write_text(yaml.safe_dump({"name": "p", "inputs": inputs, "ops": [entry], "outputs": ["y"]}))
        feeds = {"x": x, "z": z} if op == "concat" else {"x": x}
        (got,) = anesim.execute(anesim.compile(path, "m1"), feeds, "m1").values()
        want = _expected(op, x.astype(np.float32), z.astype(np.float32), axis)
        got = np.asarray(got, np.float32)
        assert got.shape == want.shape, (axis, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2, err_msg=f"axis {axis}")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", [op for op in OPS if op.startswith("reduce_")])
def test_a_reduction_that_drops_its_axis_compiles_for_every_axis(tmp_path: Path, op: str, shape: list[int]) -> None:
    """Dropping the reduced axis is a reshape after the reduction: a view where the layout
    allows, the host where it does not (dropping the width of a (1, 4, 3, 5) tensor was refused)."""
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float16)
    for axis in (0, 1, 2, 3, -1):
        path = tmp_path / f"{op}{axis}.yaml"
        entry = {"op": op, "in": "x", "out": "y", "axis": axis, "keepdims": False}
        path.write_text(yaml.safe_dump({"name": "p", "inputs": {"x": {"shape": shape}}, "ops": [entry],
                                        "outputs": ["y"]}))
        (got,) = anesim.execute(anesim.compile(path, "m1"), {"x": x}, "m1").values()
        want = getattr(np, op[len("reduce_"):])(x.astype(np.float32), axis=axis)
        assert np.asarray(got).shape == want.shape, axis
        np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-2, atol=2e-2, err_msg=f"axis {axis}")
