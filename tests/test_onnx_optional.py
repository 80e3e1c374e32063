"""The onnx package is an optional extra: without it, ONNX readers refuse with the install hint."""

from __future__ import annotations

import sys

import pytest

from anesim.errors import UnsupportedError
from anesim.onnxtensor import require_onnx


def test_missing_onnx_is_one_error_with_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(UnsupportedError, match=r"reading ONNX models needs the onnx package .*anesim\[onnx\]"):
        require_onnx("reading ONNX models")
