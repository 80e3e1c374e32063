"""MIL slice_by_index as engine slices: per-axis parameters, and refusing lists of the wrong length."""

from __future__ import annotations

from typing import Any

import pytest

from anesim.compiler import Builder
from anesim.compiler.frontends.coreml_slices import Slices
from anesim.errors import UnsupportedError


class _Importer(Slices):
    """The importer's side of the mixin: inputs by name, parameters as given."""

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
