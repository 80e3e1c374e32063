"""MIL slice_by_index and split as engine slices; parameters of the wrong length or out-of-range axes refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anesim.compiler import Builder
from anesim.compiler.frontends.coreml import _Importer as CoreMLImporter
from anesim.compiler.frontends.coreml_params import Params
from anesim.compiler.frontends.coreml_slices import Slices
from anesim.errors import UnsupportedError


class _Importer(Params, Slices):
    """The importer's side of the mixin: inputs by name, parameters as given, read as it reads them."""

    def __init__(self) -> None:
        self.b = Builder("slices")
        self.b.input("x", (1, 4, 6, 8))

    def _ins(self, inputs: dict[str, Any], key: str) -> list[str]:
        return [inputs[key]]

    def _arg(self, inputs: dict[str, Any], key: str, default: Any = None) -> Any:
        return inputs.get(key, default)

    def fail(self, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file="model.mlpackage", **kw)


def test_slice_by_index_cuts_each_axis() -> None:
    imp = _Importer()
    imp._slice({"x": "x", "begin": [0, 1, 0, 2], "end": [1, 3, 6, -1], "stride": [1, 1, 2, 1]}, "y")
    assert imp.b.graph.info("y").shape == (1, 2, 3, 5)


@pytest.mark.parametrize("key", ["begin", "end", "stride", "squeeze_mask"])
def test_slice_by_index_with_a_list_of_the_wrong_length_is_refused(key: str) -> None:
    imp = _Importer()
    inputs = {"x": "x", "begin": [0, 0, 0, 0], "end": [1, 4, 6, 8]}
    inputs[key] = [1, 1] if key != "squeeze_mask" else [False]
    with pytest.raises(UnsupportedError, match=rf"'{key}' must give one entry per axis .*expected 4 entries"):
        imp._slice(inputs, "y")


def test_split_axis_out_of_range_is_refused_not_wrapped() -> None:
    imp = _Importer()
    imp._split({"x": "x", "axis": -1, "num_splits": 2}, ["a", "b"])
    assert imp.b.graph.info("a").shape == (1, 4, 6, 4)
    with pytest.raises(UnsupportedError, match=r"'axis' names an axis the tensor does not have .*found 7"):
        _Importer()._split({"x": "x", "axis": 7, "num_splits": 2}, ["a", "b"])


class _ShapeImporter(_Importer):
    _reshape = CoreMLImporter._reshape
    reshape_target = CoreMLImporter.reshape_target

    def __init__(self) -> None:
        super().__init__()
        self.b.input("v", (6, 8))


@pytest.mark.parametrize("axes", [[0], [-1], [-1, -2], [0, 3], [2, -1], [-4, 1]])
def test_expand_dims_inserts_where_mil_does(axes: list[int]) -> None:
    """MIL's axes index the output (rank + K) and negatives count from its end, as numpy's do."""
    imp = _ShapeImporter()
    imp._reshape("expand_dims", {"x": "v", "axes": axes}, "y")
    assert imp.b.graph.info("y").shape == np.expand_dims(np.zeros((6, 8)), tuple(axes)).shape


@pytest.mark.parametrize("axes", [[3], [-4], [0, 4]])
def test_expand_dims_axis_out_of_range_is_refused_not_wrapped(axes: list[int]) -> None:
    with pytest.raises(UnsupportedError, match=r"'axes' names an axis the tensor does not have"):
        _ShapeImporter()._reshape("expand_dims", {"x": "v", "axes": axes}, "y")


def test_parameters_of_the_wrong_kind_are_refused() -> None:
    """A MIL parameter read as one string, flag or number: an array or another kind is an error
    (a pad_type damaged into bytes was compared with strings and escaped as a ValueError)."""
    imp = _Importer()
    assert imp._text({"pad_type": "same"}, "pad_type") == "same"
    assert imp._flag({"keep_dims": np.array([True])}, "keep_dims", False) is True
    assert imp._number({"axis": np.int32(-1)}, "axis", whole=True) == -1
    assert imp._number({"alpha": np.float16(0.5)}, "alpha") == 0.5
    for call, message in [
        (lambda: imp._text({"pad_type": np.frombuffer(b"custom", np.uint8)}, "pad_type"), "'pad_type' must be one string"),
        (lambda: imp._flag({"keep_dims": np.array([True, False])}, "keep_dims", False), "'keep_dims' must be one boolean"),
        (lambda: imp._flag({"keep_dims": 1}, "keep_dims", False), "'keep_dims' must be one boolean"),
        (lambda: imp._number({"axis": np.array([1, 2])}, "axis", whole=True), "'axis' must be one integer"),
        (lambda: imp._number({"axis": 1.5}, "axis", whole=True), "'axis' must be one integer"),
        (lambda: imp._number({"alpha": "x"}, "alpha"), "'alpha' must be one number"),
    ]:
        with pytest.raises(UnsupportedError, match=message):
            call()


@pytest.mark.parametrize("key, value", [("begin", ["0", "1", "a", "2"]), ("end", [1, 4, 6.5, 8]),
                                        ("stride", [1, 1, float("nan"), 1]), ("end_mask", ["x"] * 4),
                                        ("squeeze_mask", [0, 0, 1, 0])])
def test_list_parameters_of_the_wrong_kind_are_refused_not_truncated(key: str, value: list) -> None:
    """A list parameter is read as integers (booleans for masks): a string escaped as ValueError,
    a fraction was truncated (6.5 -> 6) and a mask's string read as true."""
    inputs = {"x": "x", "begin": [0, 0, 0, 0], "end": [1, 4, 6, 8], key: np.asarray(value)}
    with pytest.raises(UnsupportedError, match=rf"parameter '{key}' must be a list of (integers|booleans)"):
        _Importer()._slice(inputs, "y")


def test_split_sizes_must_be_integers() -> None:
    for sizes, message in [(["4", "4"], "'split_sizes' must be a list of integers"),
                           ([4.5, 3.5], "'split_sizes' must be a list of integers")]:
        with pytest.raises(UnsupportedError, match=message):
            _Importer()._split({"x": "x", "axis": 3, "split_sizes": np.asarray(sizes)}, ["a", "b"])
    _Importer()._split({"x": "x", "axis": 3, "split_sizes": np.asarray([3, 5])}, ["a", "b"])
