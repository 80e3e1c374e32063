"""Core ML ML programs (``.mlpackage``) -> graphs, without coremltools.

The package's manifest names the model spec (a protobuf ``Model`` whose field 502 is the MIL
``Program``) and its weight file. The spec is read with :mod:`anesim.compiler.protowire` using
the field numbers of coremltools' ``Model.proto`` and ``MIL.proto``; weights are read from
``weight.bin`` on demand (each blob: a 64-byte record ``0xDEADBEEF, dtype, size, offset``;
reference/numba-fp16-and-deps-notes.md §4). Palettised (``constexpr_lut_to_dense``) and
quantised (``constexpr_affine_dequantize``) weights keep their format on the convolution that
uses them. coremltools is only needed to *create* models (the tests do).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from anesim.compiler.builder import Builder
from anesim.compiler.constants import ConstantData
from anesim.compiler.graph import Graph
from anesim.compiler.protowire import Message
from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.jsonfile import read_json
from anesim.weightblob import read_blob

MODEL_FIELD_SPEC_VERSION = 1
MODEL_FIELD_ML_PROGRAM = 502
# MIL DataType enum values (MIL.proto)
FLOAT_TYPES = {10: np.float16, 11: np.float32, 12: np.float64}
INT_TYPES = {21: np.int8, 22: np.int16, 23: np.int32, 24: np.int64, 31: np.uint8, 32: np.uint16,
             33: np.uint32, 34: np.uint64}
BOOL, STRING = 1, 2

UNARY = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "exp": "exp", "erf": "erf",
         "abs": "abs", "square": "square", "silu": "silu", "softplus": "softplus", "gelu": "gelu",
         "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "inverse": "reciprocal", "identity": "identity",
         "cast": "identity"}
BINARY = {"add": "add", "sub": "sub", "mul": "mul", "real_div": "div", "maximum": "max", "minimum": "min"}
REDUCE = {"reduce_mean": "reduce_mean", "reduce_sum": "reduce_sum", "reduce_max": "reduce_max",
          "reduce_min": "reduce_min"}


class _Blobs:
    """Lazy access to the blobs of one weight file."""

    def __init__(self, path: Path, file: str) -> None:
        self.path = path
        self.file = file

    def read(self, offset: int, elements: int | None = None) -> np.ndarray:
        return read_blob(self.path, offset, elements)


def _shape(value_type: Message | None) -> tuple[int, list[int]]:
    """(MIL data type, dimensions) of a ValueType's tensor type."""
    if value_type is None:
        return 0, []
    tensor = value_type.message(1)
    if tensor is None:
        return 0, []
    dims = []
    for dim in tensor.messages(3):
        constant = dim.message(1)
        dims.append(constant.int(1) if constant is not None else -1)
    return tensor.int(1), dims


_REQUIRED = object()  # _arg's default: the parameter must be present


class _Importer:
    def __init__(self, program: Message, blobs: _Blobs | None, file: str, name: str) -> None:
        self.program = program
        self.blobs = blobs
        self.file = file
        self.b = Builder(name, source=file)
        self.consts: dict[str, Any] = {}  # name -> numpy value (scalars, shapes, small tensors)
        self.lazy: dict[str, ConstantData] = {}  # name -> lazily read float tensor
        self.formats: dict[str, tuple[str, int]] = {}  # const name -> (weight format, palette bits)
        self.index = 0
        self.op_type = ""
        self.op_name = ""

    def where(self) -> str:
        return f"op {self.index} '{self.op_name}' ({self.op_type})"

    def fail(self, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file=self.file, where=self.where(), **kw)

    # -- values ----------------------------------------------------------------------------

    def _value(self, value: Message | None, name: str) -> Any:
        if value is None:
            raise self.fail("an argument with neither a name nor a value", found=repr(name))
        dtype, dims = _shape(value.message(2))
        immediate = value.message(3)
        if immediate is not None:
            tensor = immediate.message(1)
            if tensor is None:
                raise self.fail("only tensor immediate values are supported")
            return self._tensor_value(tensor, dtype, dims)
        blob = value.message(5)
        if blob is not None:
            if self.blobs is None:
                raise ProgramError("the model refers to a weight file but has none", file=self.file)
            offset = blob.int(2, signed=False)
            shape = tuple(max(d, 1) for d in dims) or (1,)
            if dtype in FLOAT_TYPES:
                blobs = self.blobs
                return ConstantData.derived(shape, lambda: blobs.read(offset, math.prod(shape)).astype(np.float32).reshape(shape),
                                            f"weight.bin @{offset:#x}")
            raw = self.blobs.read(offset)
            return raw.reshape(shape) if raw.size == math.prod(shape) else raw.reshape(-1)
        raise self.fail("a value with neither immediate data nor a blob", found=repr(name))

    def _tensor_value(self, tensor: Message, dtype: int, dims: list[int]) -> Any:
        shape = tuple(dims)
        if tensor.has(1):
            arr = np.asarray(tensor.message(1).packed_fixed(1, "f"), np.float32)  # type: ignore[union-attr]
        elif tensor.has(2):
            arr = np.asarray([v - (1 << 64) if v >= 1 << 63 else v
                              for v in tensor.message(2).packed_varints(1)], np.int64)  # type: ignore[union-attr]
        elif tensor.has(3):
            arr = np.asarray(tensor.message(3).packed_varints(1), bool)  # type: ignore[union-attr]
        elif tensor.has(4):
            strings = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                       for v in tensor.message(4).all(1)]  # type: ignore[union-attr]
            return strings[0] if len(strings) == 1 and not shape else strings
        elif tensor.has(5):
            arr = np.asarray([v - (1 << 64) if v >= 1 << 63 else v
                              for v in tensor.message(5).packed_varints(1)], np.int64)  # type: ignore[union-attr]
        elif tensor.has(6):
            arr = np.asarray(tensor.message(6).packed_fixed(1, "d"), np.float64)  # type: ignore[union-attr]
        elif tensor.has(7):
            raw = tensor.message(7).get(1) or b""  # type: ignore[union-attr]
            np_type = FLOAT_TYPES.get(dtype) or INT_TYPES.get(dtype) or np.uint8
            arr = np.frombuffer(bytes(raw), np_type)
        else:
            arr = np.zeros(0, np.float32)
        if shape and arr.size == math.prod(shape):
            arr = arr.reshape(shape)
        elif not shape and arr.size == 1:
            arr = arr.reshape(())
        return arr

    def tensor(self, name: str) -> str:
        """A graph tensor for a value name (constants become graph constants on first use)."""
        if name in self.b.graph.values:
            return name
        if name in self.lazy:
            self.b.constant_data(name, self.lazy[name])
            return name
        if name in self.consts:
            value = np.asarray(self.consts[name])
            if value.dtype.kind not in "fiub":
                raise self.fail("a non-numeric constant used as a tensor", found=repr(name))
            self.b.constant(name, value.astype(np.float32).reshape(value.shape or (1,)))
            return name
        raise self.fail("unknown value", found=repr(name))

    # -- walk ------------------------------------------------------------------------------

    def run(self) -> Graph:
        functions = {}
        for entry in self.program.messages(2):
            functions[entry.text(1)] = entry.message(2)
        main = functions.get("main")
        if main is None:
            raise ProgramError("the ML program has no 'main' function", file=self.file,
                               found=", ".join(functions) or "no functions")
        opset = main.text(2)
        block = None
        for entry in main.messages(3):
            if entry.text(1) == opset or block is None:
                block = entry.message(2)
        if block is None:
            raise ProgramError("the main function has no block", file=self.file)
        for named in main.messages(1):
            name = named.text(1)
            dtype, dims = _shape(named.message(2))
            if any(d < 1 for d in dims):
                raise ProgramError("inputs need fixed shapes", file=self.file, where=f"input '{name}'",
                                   found=dims)
            self.b.input(name, dims or [1], "uint8" if dtype == 31 else "fp16")
        for self.index, op in enumerate(block.messages(3)):
            self.op_type = op.text(1)
            outputs = [o.text(1) for o in op.messages(3)]
            self.op_name = outputs[0] if outputs else ""
            inputs: dict[str, list[Any]] = {}
            for entry in op.messages(2):
                argument = entry.message(2)
                bindings = []
                for binding in (argument.messages(1) if argument is not None else []):
                    if binding.has(1):
                        bindings.append(("name", binding.text(1)))
                    else:
                        bindings.append(("value", self._value(binding.message(2), entry.text(1))))  # type: ignore[arg-type]
                inputs[entry.text(1)] = bindings
            attributes = {e.text(1): e.message(2) for e in op.messages(5)}
            try:
                self._op(self.op_type, inputs, attributes, outputs)
            except AnesimError as exc:
                if exc.file:
                    raise
                raise type(exc)(exc.problem, file=self.file, where=self.where(), expected=exc.expected,
                                found=exc.found) from None
        for name in [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in block.all(2)]:
            self.b.output(self.tensor(name))
        return self.b.build()

    def _arg(self, inputs: dict[str, list[Any]], key: str, default: Any = _REQUIRED) -> Any:
        """A constant parameter's value (ints, strings, shapes); a missing one without a default is an error."""
        bindings = inputs.get(key)
        if not bindings:
            if default is _REQUIRED:
                raise self.fail(f"the operation has no '{key}' parameter", expected=f"a '{key}' parameter")
            return default
        kind, value = bindings[0]
        if kind == "value":
            return value
        if value in self.consts:
            return self.consts[value]
        raise self.fail(f"parameter '{key}' must be constant", found=repr(value))

    def _ins(self, inputs: dict[str, list[Any]], key: str) -> list[str]:
        names = []
        for kind, value in inputs.get(key, []):
            if kind != "name":
                raise self.fail(f"inline tensor values for '{key}' are not supported")
            names.append(self.tensor(value))
        return names

    def _op(self, op: str, inputs: dict[str, list[Any]], attrs: dict[str, Message], outputs: list[str]) -> None:
        b = self.b
        out = outputs[0] if outputs else ""
        if op == "const":
            if "val" not in attrs:
                raise self.fail("a const without its 'val' attribute")
            value = self._value(attrs["val"], out)
            if isinstance(value, ConstantData):
                self.lazy[out] = value
            else:
                self.consts[out] = value
            return
        if op.startswith("constexpr_"):
            self._constexpr(op, attrs, out)
            return
        if op in UNARY:
            kwargs: dict[str, Any] = {}
            b.op(UNARY[op], self._ins(inputs, "x"), name=out, **kwargs)
        elif op in BINARY:
            b.op(BINARY[op], self._ins(inputs, "x") + self._ins(inputs, "y"), name=out)
        elif op == "leaky_relu":
            b.op("leaky_relu", self._ins(inputs, "x"), name=out, alpha=float(self._arg(inputs, "alpha", 0.01)))
        elif op == "clip":
            b.op("clip", self._ins(inputs, "x"), name=out, min=float(self._arg(inputs, "alpha")),
                 max=float(self._arg(inputs, "beta")))
        elif op == "conv":
            self._conv(inputs, out)
        elif op == "linear":
            x = self._ins(inputs, "x")[0]
            w = self._ins(inputs, "weight")[0]
            bias = self._ins(inputs, "bias") if "bias" in inputs else []
            product = f"{out}.product" if bias else out
            b.op("matmul", [x, w], name=product, transpose_b=True)
            if bias:
                b.op("add", [product, bias[0]], name=out)
        elif op == "matmul":
            b.op("matmul", self._ins(inputs, "x") + self._ins(inputs, "y"), name=out,
                 transpose_a=bool(self._arg(inputs, "transpose_x", False)),
                 transpose_b=bool(self._arg(inputs, "transpose_y", False)))
        elif op == "softmax":
            b.op("softmax", self._ins(inputs, "x"), name=out, axis=int(self._arg(inputs, "axis", -1)))
        elif op == "layer_norm":
            axes = [int(a) for a in np.asarray(self._arg(inputs, "axes")).reshape(-1)]
            if len(axes) != 1:
                raise self.fail("layer_norm over several axes is not supported", found=axes)
            params = self._ins(inputs, "gamma") + self._ins(inputs, "beta")
            b.op("layer_norm", self._ins(inputs, "x") + params, name=out, axis=axes[0],
                 eps=float(self._arg(inputs, "epsilon", 1e-5)))
        elif op == "batch_norm":
            x = self._ins(inputs, "x")
            c = b.graph.info(x[0]).shape[1]
            params = []
            for key, default in (("gamma", 1.0), ("beta", 0.0), ("mean", None), ("variance", None)):
                if key in inputs:
                    params += self._ins(inputs, key)
                else:
                    params.append(b.constant(f"{out}.{key}", np.full(c, default, np.float32)).name)
            b.op("batch_norm", x + params, name=out, eps=float(self._arg(inputs, "epsilon", 1e-5)))
        elif op in ("max_pool", "avg_pool"):
            self._pool(op, inputs, out)
        elif op in REDUCE:
            self._reduce(op, inputs, out)
        elif op in ("reshape", "squeeze", "expand_dims"):
            self._reshape(op, inputs, out)
        elif op == "transpose":
            b.op("transpose", self._ins(inputs, "x"), name=out,
                 perm=[int(p) for p in np.asarray(self._arg(inputs, "perm")).reshape(-1)])
        elif op == "concat":
            if self._arg(inputs, "interleave", False):
                raise self.fail("interleaved concat is not supported")
            b.op("concat", self._ins(inputs, "values"), name=out, axis=int(self._arg(inputs, "axis")))
        elif op == "slice_by_index":
            self._slice(inputs, out)
        else:
            raise self.fail("unsupported operation", found=op)

    def _constexpr(self, op: str, attrs: dict[str, Message], out: str) -> None:
        values = {k: self._value(v, k) for k, v in attrs.items() if k != "name"}

        def materialize(v: Any) -> np.ndarray:
            return v.array() if isinstance(v, ConstantData) else np.asarray(v)

        if op == "constexpr_lut_to_dense":
            lut, indices, shape = values["lut"], values["indices"], values["shape"]
            shape = tuple(int(d) for d in np.asarray(shape).reshape(-1))
            size = int(np.asarray(materialize(lut)).size)
            bits = int(round(math.log2(size)))

            def dense(lut: Any = lut, indices: Any = indices, shape: tuple[int, ...] = shape,
                      bits: int = bits) -> np.ndarray:
                packed = np.asarray(materialize(indices), np.uint8).reshape(-1)
                unpacked = np.unpackbits(packed, bitorder="little").reshape(-1, bits)
                idx = (unpacked * (1 << np.arange(bits))).sum(axis=1)[: math.prod(shape)]
                return np.asarray(materialize(lut), np.float32).reshape(-1)[idx].reshape(shape)

            def encoded(lut: Any = lut, indices: Any = indices, shape: tuple[int, ...] = shape,
                        bits: int = bits) -> dict[str, np.ndarray]:
                packed = np.asarray(materialize(indices), np.uint8).reshape(-1)
                unpacked = np.unpackbits(packed, bitorder="little").reshape(-1, bits)
                idx = (unpacked * (1 << np.arange(bits))).sum(axis=1)[: math.prod(shape)]
                palette = np.asarray(materialize(lut), np.float32).reshape(-1)
                return {"weights": idx.astype(np.uint8).reshape(shape),
                        "palette": palette.astype(np.float16).view(np.uint16)}

            data = ConstantData.derived(shape, dense, f"{bits}-bit palette")
            data.encoding = ("palette", bits, encoded)
            self.lazy[out] = data
            self.formats[out] = ("palette", bits)
        elif op == "constexpr_affine_dequantize":
            q, zero, scale = values["quantized_data"], values["zero_point"], values["scale"]
            axis = int(np.asarray(values.get("axis", 0)).reshape(-1)[0])
            qarr = np.asarray(q)
            shape = tuple(qarr.shape)

            def dense(q: np.ndarray = qarr, zero: Any = zero, scale: Any = scale, axis: int = axis) -> np.ndarray:
                bshape = [1] * q.ndim
                bshape[axis] = -1
                z = np.asarray(materialize(zero), np.float32).reshape(bshape if np.size(materialize(zero)) > 1 else [1])
                s = np.asarray(materialize(scale), np.float32).reshape(bshape if np.size(materialize(scale)) > 1 else [1])
                return (q.astype(np.float32) - z) * s

            fmt = "int8" if qarr.dtype == np.int8 else "uint8"

            def encoded(q: np.ndarray = qarr, zero: Any = zero, scale: Any = scale,
                        axis: int = axis) -> dict[str, np.ndarray] | None:
                if axis != 0:
                    return None  # the engine's scales are per output channel
                o = q.shape[0]
                z = np.broadcast_to(np.asarray(materialize(zero)).reshape(-1), (o,))
                sc = np.broadcast_to(np.asarray(materialize(scale), np.float32).reshape(-1), (o,))
                return {"weights": q.copy(), "scale": sc.astype(np.float16).view(np.uint16).copy(),
                        "zero_point": z.astype(q.dtype).copy()}

            data = ConstantData.derived(shape, dense, "affine dequantized")
            data.encoding = (fmt, 0, encoded)
            self.lazy[out] = data
            self.formats[out] = (fmt, 0)
        else:
            raise self.fail("unsupported operation", found=op)

    def _conv(self, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")
        w_name = inputs["weight"][0][1] if inputs.get("weight") else None
        if w_name is None or (w_name not in self.lazy and w_name not in self.consts):
            raise self.fail("convolution weights must be constant")
        fmt, bits = self.formats.get(w_name, ("fp16", 0))
        weights = self._ins(inputs, "weight") + (self._ins(inputs, "bias") if "bias" in inputs else [])
        pad_type = self._arg(inputs, "pad_type", "valid")
        pads = [int(p) for p in np.asarray(self._arg(inputs, "pad", [0, 0, 0, 0])).reshape(-1)]
        padding: Any = {"valid": 0, "same": "same", "same_lower": "same"}.get(pad_type, pads)
        strides = [int(s) for s in np.asarray(self._arg(inputs, "strides", [1, 1])).reshape(-1)]
        dilations = [int(d) for d in np.asarray(self._arg(inputs, "dilations", [1, 1])).reshape(-1)]
        self.b.op("conv2d", x + weights, name=out, stride=strides, padding=padding, dilation=dilations,
                  groups=int(self._arg(inputs, "groups", 1)), weight_format=fmt, palette_bits=bits or 4)

    def _pool(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        kernel = [int(k) for k in np.asarray(self._arg(inputs, "kernel_sizes")).reshape(-1)]
        strides = [int(s) for s in np.asarray(self._arg(inputs, "strides", kernel)).reshape(-1)]
        pad_type = self._arg(inputs, "pad_type", "valid")
        pads = [int(p) for p in np.asarray(self._arg(inputs, "pad", [0, 0, 0, 0])).reshape(-1)]
        padding: Any = {"valid": 0, "same": "same", "same_lower": "same"}.get(pad_type, pads)
        if self._arg(inputs, "ceil_mode", False):
            raise self.fail("ceil-mode pooling is not supported")
        if op == "avg_pool" and padding != 0 and self._arg(inputs, "exclude_padding_from_average", False):
            raise self.fail("average pooling that excludes padding is not supported")
        self.b.op("max_pool2d" if op == "max_pool" else "avg_pool2d", self._ins(inputs, "x"), name=out,
                  kernel=kernel, stride=strides, padding=padding)

    def _reduce(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        rank = len(self.b.graph.info(x).shape)
        axes = sorted({int(a) % rank for a in np.asarray(self._arg(inputs, "axes")).reshape(-1)})
        keep = bool(self._arg(inputs, "keep_dims", False))
        if rank == 4 and axes == [2, 3] and keep and op in ("reduce_mean", "reduce_max"):
            self.b.op("global_avg_pool" if op == "reduce_mean" else "global_max_pool", [x], name=out)
            return
        current = x
        for k, axis in enumerate(axes):
            last = k == len(axes) - 1
            current = self.b.op(REDUCE[op], [current], name=out if last else f"{out}.axis{axis}",
                                axis=axis, keepdims=True).name
        if not keep:
            shape = [d for i, d in enumerate(self.b.graph.info(x).shape) if i not in axes] or [1]
            info = self.b.graph.values.pop(out)
            node = self.b.graph.nodes[-1]
            node.output = f"{out}.keep"
            self.b.graph.values[node.output] = type(info)(node.output, info.shape)
            self.b.op("reshape", [node.output], name=out, shape=shape)

    def _reshape(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        shape = list(self.b.graph.info(x).shape)
        if op == "reshape":
            target = [int(d) for d in np.asarray(self._arg(inputs, "shape")).reshape(-1)]
        elif op == "squeeze":
            axes = self._arg(inputs, "axes", None)
            drop = ({int(a) % len(shape) for a in np.asarray(axes).reshape(-1)} if axes is not None
                    else {i for i, d in enumerate(shape) if d == 1})
            target = [d for i, d in enumerate(shape) if i not in drop]
        else:
            target = list(shape)
            for axis in sorted(int(a) for a in np.asarray(self._arg(inputs, "axes")).reshape(-1)):
                target.insert(axis % (len(target) + 1), 1)
        self.b.op("reshape", [x], name=out, shape=target or [1])

    def _slice(self, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        shape = self.b.graph.info(x).shape
        rank = len(shape)
        begin = [int(v) for v in np.asarray(self._arg(inputs, "begin")).reshape(-1)]
        end = [int(v) for v in np.asarray(self._arg(inputs, "end")).reshape(-1)]
        stride = [int(v) for v in np.asarray(self._arg(inputs, "stride", [1] * rank)).reshape(-1)]
        bmask = [bool(v) for v in np.asarray(self._arg(inputs, "begin_mask", [False] * rank)).reshape(-1)]
        emask = [bool(v) for v in np.asarray(self._arg(inputs, "end_mask", [False] * rank)).reshape(-1)]
        squeeze = [bool(v) for v in np.asarray(self._arg(inputs, "squeeze_mask", [False] * rank)).reshape(-1)]
        moves = []
        for axis in range(rank):
            start = 0 if bmask[axis] else begin[axis]
            stop = shape[axis] if emask[axis] else end[axis]
            if stride[axis] < 1:
                raise self.fail("negative slice strides are not supported")
            if (start, stop, stride[axis]) != (0, shape[axis], 1):
                moves.append((axis, start, stop, stride[axis]))
        current = x
        final = out if not any(squeeze) else f"{out}.full"
        if not moves:
            self.b.op("identity", [current], name=final)
        for k, (axis, start, stop, step) in enumerate(moves):
            name = final if k == len(moves) - 1 else f"{out}.axis{axis}"
            current = self.b.op("slice", [current], name=name, axis=axis, start=start, end=stop, step=step).name
        if any(squeeze):
            kept = [d for i, d in enumerate(self.b.graph.info(final).shape) if not squeeze[i]] or [1]
            self.b.op("reshape", [final], name=out, shape=kept)


def _spec_path(package: Path) -> tuple[Path, Path | None]:
    manifest = package / "Manifest.json"
    if not manifest.is_file():
        raise ProgramError("not an .mlpackage: no Manifest.json", file=package)
    data = read_json(manifest, ProgramError, "the .mlpackage manifest", 1 << 20)
    try:
        entries = data["itemInfoEntries"]
        root = entries[data["rootModelIdentifier"]]["path"]
        if not isinstance(root, str) or not root or "\0" in root:
            raise TypeError(root)
    except (KeyError, TypeError):
        raise ProgramError("unreadable .mlpackage manifest", file=manifest,
                           expected="itemInfoEntries[rootModelIdentifier].path naming the spec") from None
    spec = package / "Data" / root
    weights = spec.parent / "weights" / "weight.bin"
    return spec, weights if weights.is_file() else None


def load_coreml(path: str | Path) -> Graph:
    """Read a Core ML ML program (.mlpackage, or an .mlmodel spec beside a weights folder)."""
    file = Path(path)
    if file.is_dir():
        spec_path, weights = _spec_path(file)
    elif file.is_file():
        spec_path = file
        candidate = file.parent / "weights" / "weight.bin"
        weights = candidate if candidate.is_file() else None
    else:
        raise ProgramError("no such Core ML model", file=file)
    try:
        data = spec_path.read_bytes()
    except OSError as exc:
        raise ProgramError(f"cannot read the model spec: {exc.strerror}", file=spec_path) from None
    model = Message(data, str(spec_path))
    program = model.message(MODEL_FIELD_ML_PROGRAM)
    if program is None:
        kinds = sorted(model.fields)
        raise UnsupportedError("only ML programs (mlprogram) are supported, not neural-network models",
                               file=spec_path, found=f"spec fields {kinds[:6]}")
    blobs = _Blobs(weights, str(weights)) if weights is not None else None
    name = file.stem if file.suffix else file.name
    return _Importer(program, blobs, str(path), name).run()
