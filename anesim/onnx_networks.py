"""Network specs: exported ONNX graphs without their weights, and the seeded weights that complete them.

A real exported network is too large to keep in a repository (ResNet-18 holds 45 MB of weights,
ViT-B/16 350 MB), yet its graph — the nodes, attributes, shapes and the small constants that
shape arithmetic reads — is a few kilobytes. A *spec* is that graph: an ONNX model whose large
floating-point initializers carry no data, only their dims, type and a ``doc_string``
``anesim:random {"mean": m, "std": s}`` recording the statistics of the tensor they replace
(one pair per row, ``{"axis": 0, "mean": [...], "std": [...]}``, for convolution kernels and
wherever the rows' scales differ, as where a batch norm is folded into a product).
Small tensors (at most ``EXACT_LIMIT`` elements: biases, norm scales, shape data), integer and
boolean tensors and tensors with infinities keep their exact values; a constant fill is
described with a standard deviation of 0 and so rebuilt exactly.

:func:`materialise` turns a spec back into a complete, valid model whose weights are drawn from
a normal distribution, shifted and scaled so that each row (or the tensor) has exactly the
recorded mean and standard deviation, seeded by the seed and the tensor's name, so the same spec and seed always give the same model (docs/networks.md).
``examples/networks/export.py`` writes the specs from the reference implementations (it needs
torch); materialising needs only numpy and the ``onnx`` package::

    python -m anesim.onnx_networks examples/networks/resnet18.spec.onnx resnet18.onnx --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.limits import check_bytes
from anesim.onnxtensor import require_onnx

TAG = "anesim:random "
# Tensors up to this many elements keep their values: biases, norm scales and shifts, the
# statistics of batch norms, shape data. They are small, and some (variances) must stay positive.
EXACT_LIMIT = 1024
# A convolution kernel, or a tensor whose rows (output channels) differ in scale by more than
# ROW_SPREAD, keeps one mean and standard deviation per row when it has at most ROW_LIMIT rows;
# others keep one pair.
ROW_SPREAD = 1.25
ROW_LIMIT = 4096

_VALUE_FIELDS = ("raw_data", "float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                 "string_data")


def _tagged(tensor: Any) -> bool:
    """True for a tensor whose doc_string holds a spec's statistics (protobuf hands a doc_string
    that is not UTF-8 over as bytes, which is not one)."""
    doc = tensor.doc_string
    return isinstance(doc, str) and doc.startswith(TAG)


def weightless_initializer(model: Any) -> str | None:
    """The name of the first initializer a spec left without values (tagged, empty, not external),
    or None: such a model is a spec, to be completed by :func:`materialise`."""
    for tensor in model.graph.initializer:
        if (_tagged(tensor) and tensor.data_location != 1  # (1: EXTERNAL)
                and not any(len(getattr(tensor, f)) for f in _VALUE_FIELDS)):
            return tensor.name
    return None


def describe(model: Any, exact_limit: int = EXACT_LIMIT) -> Any:
    """A spec of ``model``: a copy whose large, non-constant float initializers keep only their
    dims, type and statistics (mean, standard deviation) in a tagged ``doc_string``."""
    onnx = require_onnx("network specs (ONNX models)")
    from onnx import numpy_helper

    spec = onnx.ModelProto()
    spec.CopyFrom(model)
    for tensor in spec.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise UnsupportedError(f"initializer '{tensor.name}' has external data",
                                   expected="a model with its weights inside the file")
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind != "f" or values.size <= exact_limit:
            continue
        wide = values.astype(np.float64)
        if not np.isfinite(wide).all():
            continue  # masks with infinities keep their values
        # a constant fill (zeros, ones) has std 0 and is rebuilt exactly
        stats: dict[str, Any] = {"mean": float(wide.mean()), "std": float(wide.std())}
        rows = wide.reshape(wide.shape[0], -1) if wide.ndim >= 2 else None
        if rows is not None and rows.shape[0] <= ROW_LIMIT:
            row_std = rows.std(axis=1)
            # per-output-channel scales (a batch norm folded into a convolution) are kept per row
            if wide.ndim == 4 or row_std.min() * ROW_SPREAD < row_std.max():
                stats = {"axis": 0, "mean": _rounded(rows.mean(axis=1)), "std": _rounded(row_std)}
        dims, data_type, name = list(tensor.dims), tensor.data_type, tensor.name
        tensor.Clear()
        tensor.name, tensor.data_type = name, data_type
        tensor.dims.extend(dims)
        tensor.doc_string = TAG + json.dumps(stats, sort_keys=True)
    return spec


def _rounded(values: np.ndarray) -> list[float]:
    """Statistics to four significant digits: enough for a scale, a quarter of the text."""
    return [float(f"{v:.4g}") for v in values]


def _seed_of(name: str, seed: int) -> np.random.Generator:
    """One generator per tensor: the tensor's values depend on the seed and its name only."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def materialise(spec: Any, seed: int = 0, file: str = "<spec>") -> Any:
    """A complete model from a spec: every tagged initializer filled with seeded normal values."""
    onnx = require_onnx("network specs (ONNX models)")
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(spec)
    for tensor in model.graph.initializer:
        if not _tagged(tensor):
            continue
        where = f"initializer '{tensor.name}': doc_string"
        dims = tuple(int(d) for d in tensor.dims)
        try:
            stats = json.loads(tensor.doc_string[len(TAG):])
            per_row = stats.get("axis") == 0
            mean = np.asarray(stats["mean"], np.float64)
            std = np.asarray(stats["std"], np.float64)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProgramError("unreadable weight statistics", file=file, where=where,
                               expected='{"mean": m, "std": s} or per row {"axis": 0, ...}',
                               found=tensor.doc_string[:80]) from None
        want = (dims[0],) if per_row and dims else ()
        if mean.shape != want or std.shape != want:
            raise ProgramError("weight statistics do not match the tensor", file=file, where=where,
                               expected=f"{want[0] if want else 'one'} mean and std", found=(mean.shape, std.shape))
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
            raise ProgramError("weight statistics out of range", file=file, where=where,
                               expected="finite means, standard deviations >= 0")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        if dtype.kind != "f":
            raise ProgramError("weight statistics on a non-float tensor", file=file, where=where,
                               expected="a float type", found=str(dtype))
        check_bytes(int(np.prod(dims)) * 8, file=file, field=f"initializer '{tensor.name}': dims")
        shape = (dims[0], -1) if per_row else (1, -1)
        normal = _seed_of(tensor.name, seed).standard_normal(dims).reshape(shape)
        # Each row (or the tensor) gets exactly the recorded mean and deviation, not just in
        # expectation: a folded batch norm's bias cancels its row's response to the input's
        # mean, which a row drawn with another sum would not (docs/networks.md).
        if normal.shape[1] > 1:
            normal = (normal - normal.mean(axis=1, keepdims=True)) / normal.std(axis=1, keepdims=True)
        else:
            normal = np.zeros_like(normal)
        values = (normal * std.reshape(-1, 1) + mean.reshape(-1, 1)).reshape(dims).astype(dtype)
        tensor.raw_data = values.tobytes()
        tensor.doc_string = ""
    return model


def materialise_file(spec_path: str | Path, out_path: str | Path, seed: int = 0) -> Path:
    """Read a spec file, write the complete model to ``out_path`` (checked by onnx's checker)."""
    onnx = require_onnx("network specs (ONNX models)")
    spec_path, out_path = Path(spec_path), Path(out_path)
    try:
        spec = onnx.load(str(spec_path))
    except (OSError, ValueError) as exc:  # protobuf's DecodeError is a ValueError
        raise ProgramError(f"cannot read the spec: {exc}", file=str(spec_path)) from None
    model = materialise(spec, seed, str(spec_path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ProgramError(f"the materialised model is not valid ONNX: {str(exc).splitlines()[0]}",
                           file=str(spec_path)) from None
    onnx.save(model, str(out_path))
    return out_path


def main(argv: list[str] | None = None) -> int:
    """``python -m anesim.onnx_networks SPEC OUT [--seed N]``."""
    p = argparse.ArgumentParser(prog="python -m anesim.onnx_networks",
                                description="Write a complete ONNX model from a network spec with seeded weights.")
    p.add_argument("spec", help="a network spec (.spec.onnx)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = p.parse_args(argv)
    try:
        materialise_file(args.spec, args.out, args.seed)
    except AnesimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
