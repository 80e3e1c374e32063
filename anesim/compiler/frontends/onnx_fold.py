"""Compile-time evaluation of ONNX nodes whose inputs are all known.

Shape arithmetic (``Shape`` → ``Gather`` → ``Concat`` → ``Reshape``), ``ConstantOfShape``,
``Range``, casts of constants and any other node whose inputs are known is computed here with
the ``onnx`` package's reference implementation, so every attribute means what the ONNX
specification says it means.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import UnsupportedError


def evaluate_node(node: Any, values: list[np.ndarray], names: list[str], opset: int) -> list[np.ndarray]:
    """The outputs of one node from its known inputs (``names``: the node's input slots)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {}
    it = iter(values)
    for name in names:
        if name:
            feeds[name] = next(it)
    evaluator = ReferenceEvaluator(node, opsets={"": opset})
    # IEEE arithmetic's infinities and NaNs are the operator's values (numpy would only warn of
    # them); an average over no elements has none, and stops the fold as the reference's
    # exceptions do.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.filterwarnings("error", message="Mean of empty slice", category=RuntimeWarning)
        return [np.asarray(v) for v in evaluator.run(None, feeds)]


def shape_of(node: Any, shape: tuple[int, ...], opset: int) -> list[np.ndarray]:
    """``Shape`` (with its ``start``/``end``) or ``Size`` of a tensor of static ``shape``."""
    if node.op_type == "Size":
        return [np.asarray(int(np.prod(shape)), np.int64)]
    dummy = np.zeros(shape, np.float32) if int(np.prod(shape)) < 1 << 20 else None
    if dummy is None:
        start, end = 0, len(shape)
        for a in node.attribute:
            if a.name == "start":
                start = a.i
            elif a.name == "end":
                end = a.i
        return [np.asarray(shape[slice(start, end)], np.int64)]
    return evaluate_node(node, [dummy], [node.input[0]], opset)


def element_dtype(elem_type: int, file: str | Path, where: str) -> np.dtype:
    """The numpy dtype of an ONNX element type; one numpy has no dtype for is an UnsupportedError."""
    import onnx  # the importer checked that it is installed

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise UnsupportedError("unknown or unsupported element type", file=str(file), where=where,
                               found=elem_type) from None
