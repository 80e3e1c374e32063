"""The host (CPU fallback) evaluation of ONNX nodes the engine does not run.

An ``onnx_host`` graph node carries a one-node ONNX model; the host runs it with the ``onnx``
package's reference implementation (``onnx.reference.ReferenceEvaluator``) on its inputs in
their exact ONNX element types, as Core ML's CPU fallback computes such layers in fp32 and
integers exactly. Values that come from the engine are fp16; they are converted to the node's
input types here, and results the engine reads are converted to fp16 where the segment reads
them (:func:`to_engine`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from anesim.compiler.graph.graph import Node
from anesim.errors import CompileError, UnsupportedError


@lru_cache(maxsize=256)
def evaluator(model: bytes) -> Any:
    """The reference evaluator of a serialized one-node model (built once per model)."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(onnx.load_from_string(model))


def _as_type(arr: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], node: Node, name: str) -> np.ndarray:
    """An array (fp16 from the engine, or exact from the host) as the node's input type.

    An engine value read as an integer must already be one, in the type's range: rounding or
    wrapping it would change the host's result on a guess, so it is refused instead.
    """
    arr = np.asarray(arr)
    if arr.dtype != dtype and arr.dtype.kind == "f" and dtype.kind in "iub":
        if dtype == np.bool_:
            arr = arr != 0
        else:
            info = np.iinfo(dtype)
            wide = arr.astype(np.float64)  # (the type's bounds do not fit fp16)
            with np.errstate(invalid="ignore"):
                bad = ~(np.isfinite(wide) & (wide == np.rint(wide)) & (wide >= info.min) & (wide < info.max + 1.0))
            if bad.any():
                first = int(np.flatnonzero(bad.ravel())[0])
                raise CompileError("an engine value read by a host op's integer input is not an integer "
                                   "in its type's range", file=node.attrs.get("file") or None,
                                   where=f"{node.describe()}: input '{name}', element {first}",
                                   expected=f"an integral {dtype.name} value",
                                   found=repr(float(arr.ravel()[first])))
    return arr.astype(dtype, copy=False).reshape(shape)


def evaluate(node: Node, args: list[np.ndarray]) -> dict[str, np.ndarray]:
    """All outputs of the ONNX node behind ``node``, by graph tensor name, in their ONNX types."""
    a = node.attrs
    sess = evaluator(a["model"])
    feeds = {name: _as_type(arr, np.dtype(dt), tuple(shape), node, name)
             for name, arr, dt, shape in zip(sess.input_names, args, a["in_dtypes"], a["in_shapes"])}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # (numpy's own warnings, "Mean of empty slice" among them, are the reference's business:
        # its results are the values, NaN included)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            results = sess.run(None, feeds)
        except Exception as exc:  # the reference raises many types; all mean "cannot evaluate"
            raise CompileError("the host's reference evaluation of an ONNX node failed", file=a.get("file") or None,
                               where=node.describe(), found=f"{type(exc).__name__}: {exc}"[:300]) from None
    return {name: np.asarray(value) for name, value in zip(a["outputs"], results) if name}


def check_result(node: Node, arr: np.ndarray) -> np.ndarray:
    """The result for ``node`` in its declared type and graph shape (a mismatch is an error)."""
    a = node.attrs
    if tuple(arr.shape) != tuple(a["onnx_shape"]) or arr.dtype != np.dtype(a["onnx_dtype"]):
        raise CompileError("a host op's result differs from the shape and type ONNX shape inference gave",
                           file=a.get("file") or None, where=node.describe(),
                           expected=f"{a['onnx_dtype']} {tuple(a['onnx_shape'])}", found=f"{arr.dtype} {arr.shape}")
    return arr.reshape(tuple(a["shape"]))


def run_onnx_host(node: Node, args: list[np.ndarray], env: dict[str, np.ndarray],
                  producers: Mapping[str, Node]) -> None:
    """Evaluate ``node``'s ONNX node once and store every output it has in ``env``."""
    for name, arr in evaluate(node, args).items():
        owner = producers.get(name)
        if owner is not None:
            env[name] = check_result(owner, arr)


def from_engine(arr: np.ndarray, dtype: np.dtype, name: str = "") -> np.ndarray:
    """An engine result (fp16, or uint8) as the model's declared element type: floats widen
    exactly; integers and booleans are exact in fp16 up to 2048 and are rounded to the nearest.

    An integer output holding a value its type cannot (NaN, an infinity, one out of range) is an
    error naming output ``name``: what a runtime would hand back for it is not defined.
    """
    arr = np.asarray(arr)
    if arr.dtype == dtype:
        return arr
    if dtype.kind == "f":
        return arr.astype(dtype)
    if dtype == np.bool_:
        return arr != 0
    rounded = np.rint(arr.astype(np.float64))
    info = np.iinfo(dtype)
    bad = ~np.isfinite(rounded) | (rounded < info.min) | (rounded > info.max)
    if bad.any():
        raise UnsupportedError(f"an {dtype.name} output holds a value its type cannot hold",
                               where=f"output '{name}'" if name else None,
                               expected=f"finite values from {info.min} to {info.max}",
                               found=f"{int(bad.sum())} such, the first {arr.reshape(-1)[np.argmax(bad.reshape(-1))]}")
    return rounded.astype(dtype)


def to_engine(arr: np.ndarray, dtype: str) -> np.ndarray:
    """A host value as the engine stores it: uint8 stays uint8, everything else fp16."""
    arr = np.asarray(arr)
    if dtype == "uint8":
        return arr.astype(np.uint8)
    with np.errstate(over="ignore"):  # (beyond fp16's range is ±inf, as the engine holds it)
        return arr.astype(np.float16)
