"""Core ML ML programs (``.mlpackage``) -> graphs, through coremltools' protobuf classes.

The package's manifest (``Manifest.json``, read as bounded JSON) names the model spec, a
``Model`` message of coremltools' ``Model.proto`` whose ``mlProgram`` is a MIL ``Program``; the
spec is parsed with the generated classes coremltools ships (``coremltools.proto.Model_pb2``,
``MIL_pb2``). Weights stay in their blob file until a convolution's kernel is needed and are
read with coremltools' ``libmilstoragepython`` blob reader (the one its own MIL loader uses),
which checks each blob's sentinel, type and bounds; :mod:`anesim.weightblob` first checks the
record's size and offset against the file and the memory limit. Palettised (``constexpr_lut_to_dense``) and
quantised (``constexpr_affine_dequantize``) weights keep their format on the convolution that
uses them.

coremltools is an optional extra (``pip install 'anesim[coreml]'``); nothing else in anesim
imports it. The package's manifest is read by :mod:`.coreml_package`, an op's parameters with
their types checked by :mod:`.coreml_params`, compressed weights by :mod:`.coreml_constexpr`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.frontends.coreml_constexpr import Compressed
from anesim.compiler.frontends.coreml_package import INSTALL, Blobs, main_block
from anesim.compiler.frontends.coreml_package import spec_path as package_spec
from anesim.compiler.frontends.coreml_params import Params
from anesim.compiler.frontends.coreml_rank5 import FOLD_RANK, Rank5, fold
from anesim.compiler.frontends.coreml_shapes import Shapes, check_description, declared_output_types
from anesim.compiler.frontends.coreml_shapes import tensor_type as _shape
from anesim.compiler.frontends.coreml_slices import Slices
from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Graph
from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.program.notes import Note


UNARY = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "exp": "exp", "erf": "erf",
         "abs": "abs", "square": "square", "silu": "silu", "softplus": "softplus", "gelu": "gelu",
         "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "inverse": "reciprocal", "identity": "identity",
         "cast": "identity"}
BINARY = {"add": "add", "sub": "sub", "mul": "mul", "real_div": "div", "maximum": "max", "minimum": "min"}
REDUCE = {"reduce_mean": "reduce_mean", "reduce_sum": "reduce_sum", "reduce_max": "reduce_max",
          "reduce_min": "reduce_min"}
# MIL data types (MIL.proto ``DataType``) as numpy types.
FLOAT_TYPES = {"FLOAT16": np.float16, "FLOAT32": np.float32, "FLOAT64": np.float64}
INT_TYPES = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
             "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64}


def _coremltools() -> SimpleNamespace:
    """coremltools' protobuf classes, or an error that says how to install them."""
    # On Linux, importing coremltools warns that its Core ML runtime bindings (macOS only) are
    # missing; reading a spec does not need them, so the warnings are kept out of the output.
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from coremltools.proto import FeatureTypes_pb2, MIL_pb2, Model_pb2
        from google.protobuf.message import DecodeError
    except ImportError:
        raise UnsupportedError("reading Core ML models needs the coremltools package",
                               expected=INSTALL) from None
    finally:
        log.setLevel(level)
    types = {value: name for name, value in MIL_pb2.DataType.items()}
    arrays = {value: name for name, value in FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}
    return SimpleNamespace(Model_pb2=Model_pb2, MIL_pb2=MIL_pb2, DecodeError=DecodeError, type_name=types,
                           array_type_name=arrays)


class _Read(dict):  # type: ignore[type-arg]
    """An op's parameters, remembering which the importer looked at."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)


class _Importer(Params, Compressed, Rank5, Slices, Shapes):
    def __init__(self, ct: SimpleNamespace, program: Any, blobs: Blobs, file: str, name: str) -> None:
        self.ct = ct
        self.program = program
        self.blobs = blobs
        self.file = file
        self.b = Builder(name, source=file)
        self.consts: dict[str, Any] = {}  # name -> numpy value (scalars, shapes, small tensors)
        self.lazy: dict[str, ConstantData] = {}  # name -> lazily read float tensor
        self.formats: dict[str, tuple[str, int]] = {}  # const name -> (weight format, palette bits)
        self.folded: dict[str, tuple[int, ...]] = {}  # rank-5 values, held folded (coreml_rank5)
        self.out_shape: list[int] = []
        self.index = 0
        self.op_type = ""
        self.op_name = ""

    def where(self) -> str:
        return f"op {self.index} '{self.op_name}' ({self.op_type})"

    def fail(self, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file=self.file, where=self.where(), **kw)

    def malformed(self, problem: str, **kw: Any) -> ProgramError:
        """An error for a model that contradicts itself (not one anesim cannot model)."""
        return ProgramError(problem, file=self.file, where=self.where(), **kw)

    # -- values ----------------------------------------------------------------------------

    def _value(self, value: Any, name: str) -> Any:
        """A MIL ``Value``: an immediate tensor as numpy, a float blob as lazy constant data."""
        dtype, dims = _shape(self.ct, value.type if value.HasField("type") else None)
        kind = value.WhichOneof("value")
        if kind == "immediateValue":
            if value.immediateValue.WhichOneof("value") != "tensor":
                raise self.fail("only tensor immediate values are supported")
            return self._tensor_value(value.immediateValue.tensor, dtype, dims)
        if kind == "blobFileValue":
            file_name, offset = value.blobFileValue.fileName, value.blobFileValue.offset
            shape = tuple(max(d, 1) for d in dims) or (1,)
            blobs = self.blobs
            if dtype in FLOAT_TYPES:
                blobs.path(file_name)  # a missing or misplaced weight file is an error now, not on first use

                def weights() -> np.ndarray:
                    values = blobs.read(file_name, offset, dtype)
                    if values.size != math.prod(shape):
                        raise ProgramError("weight blob size does not match its value's shape",
                                           file=blobs.path(file_name), where=f"byte {offset:#x}",
                                           expected=f"{math.prod(shape)} values {shape}", found=values.size)
                    return values.astype(np.float32).reshape(shape)

                return ConstantData.derived(shape, weights, f"{Path(file_name).name} @{offset:#x}")
            raw = blobs.read(file_name, offset, dtype)
            return raw.reshape(shape) if raw.size == math.prod(shape) else raw.reshape(-1)
        raise self.fail("a value with neither immediate data nor a blob", found=repr(name))

    def _tensor_value(self, tensor: Any, dtype: str, dims: list[int]) -> Any:
        shape = tuple(dims)
        kind = tensor.WhichOneof("value")
        if kind == "floats":
            arr = np.asarray(tensor.floats.values, np.float32)
        elif kind in ("ints", "longInts"):
            arr = np.asarray(getattr(tensor, kind).values, np.int64)
        elif kind == "bools":
            arr = np.asarray(tensor.bools.values, bool)
        elif kind == "strings":
            strings = list(tensor.strings.values)
            return strings[0] if len(strings) == 1 and not shape else strings
        elif kind == "doubles":
            arr = np.asarray(tensor.doubles.values, np.float64)
        elif kind == "bytes":
            np_type = FLOAT_TYPES.get(dtype) or INT_TYPES.get(dtype) or np.uint8
            arr = np.frombuffer(tensor.bytes.values, np_type)
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
            if value.ndim > FOLD_RANK:
                raise self.fail(f"a constant of rank {value.ndim}", found=repr(name))
            self.b.constant(name, value.astype(np.float32).reshape(fold(value.shape) or (1,)))
            if value.ndim == FOLD_RANK:
                self.folded[name] = tuple(value.shape)
            return name
        raise self.fail("unknown value", found=repr(name))

    # -- walk ------------------------------------------------------------------------------

    def run(self) -> Graph:
        main, block = main_block(self.program, self.file)
        self.input_mil: dict[str, tuple[str, list[int]]] = {}  # (MIL type, dims) of each input
        for named in main.inputs:
            if named.type.WhichOneof("type") != "tensorType":  # (a state, a list, a dictionary)
                raise UnsupportedError("a function input that is not a tensor", file=self.file,
                                       where=f"input '{named.name}'", expected="a tensor",
                                       found=named.type.WhichOneof("type") or "no type")
            dtype, dims = self.input_mil[named.name] = _shape(self.ct, named.type)
            if any(d < 1 for d in dims):
                raise ProgramError("inputs need fixed shapes", file=self.file, where=f"input '{named.name}'",
                                   found=dims)
            self.b.input(named.name, dims or [1], "uint8" if dtype == "UINT8" else "fp16")
        mil_types = {name: dtype for name, (dtype, _) in self.input_mil.items()}
        for self.index, op in enumerate(block.operations):
            self.op_type = op.type
            outputs = [o.name for o in op.outputs]
            mil_types.update((o.name, _shape(self.ct, o.type)[0]) for o in op.outputs)
            self.op_name = outputs[0] if outputs else ""
            self.out_shape = _shape(self.ct, op.outputs[0].type)[1] if op.outputs else []
            inputs: dict[str, list[Any]] = _Read()
            for key, argument in op.inputs.items():
                bindings = []
                for binding in argument.arguments:
                    if binding.WhichOneof("binding") == "name":
                        bindings.append(("name", binding.name))
                    else:
                        bindings.append(("value", self._value(binding.value, key)))
                inputs[key] = bindings
            attributes = dict(op.attributes)
            try:
                other = sorted(k for k in attributes if k != "name")
                if other and self.op_type != "const" and not self.op_type.startswith("constexpr_"):
                    # (an operation's parameters are its inputs; coremltools' own reader refuses
                    # any other attribute, and none is read here)
                    raise self.malformed(f"attribute '{other[0]}' on a {self.op_type} operation",
                                         expected="only 'name'")
                if self.op_type == "cast":
                    self._cast_target(inputs)
                elif self.op_type != "const":
                    self._check_integer_operands(inputs, mil_types)
                if self.op_type != "const" and self.involves_rank5(inputs):
                    self.rank5(self.op_type, inputs, self.op_name)
                else:
                    self._op(self.op_type, inputs, attributes, outputs)
                self._check_declared(op, outputs)
                unread = [k for k in inputs if k not in inputs.read]  # type: ignore[attr-defined]
                if unread:  # (every parameter of an op is read or the op is refused)
                    raise self.fail(f"parameter '{unread[0]}' of {self.op_type} is not modelled",
                                    expected=", ".join(sorted(inputs.read)) or "none")  # type: ignore[attr-defined]
            except AnesimError as exc:
                if exc.file:
                    raise
                raise type(exc)(exc.problem, file=self.file, where=self.where(), expected=exc.expected,
                                found=exc.found) from None
        self.output_mil_types = {name: mil_types.get(name, "") for name in block.outputs}
        for name in block.outputs:
            if self.tensor(name) in self.folded:
                raise UnsupportedError("a rank-5 model output", file=self.file, where=f"output '{name}'",
                                       found=list(self.folded[name]))
            self.b.output(self.tensor(name))
        return self.b.build()

    def _cast_target(self, inputs: dict[str, list[Any]]) -> None:
        """A cast the engine performs as it holds the value: to a float type (it computes in fp16)."""
        dtype = self._text(inputs, "dtype")
        if dtype not in ("fp16", "fp32", "fp64"):
            raise self.fail("a cast to a non-float type rounds, truncates or wraps; the engine computes in fp16",
                            expected="fp16 or fp32", found=repr(dtype)[:60])

    def _ins(self, inputs: dict[str, list[Any]], key: str, *, optional: bool = False, many: bool = False) -> list[str]:
        """The tensors bound to parameter ``key``: one, or (``many``) one or more; none only for an
        ``optional`` parameter left out."""
        bindings = inputs.get(key, [])
        if not bindings and optional:
            return []
        if not bindings or (len(bindings) > 1 and not many):
            raise self.fail(f"parameter '{key}' of {self.op_type} needs {'one or more tensors' if many else 'one tensor'}",
                            expected="one or more" if many else "one", found=len(bindings))
        names = []
        for kind, value in bindings:
            if kind != "name":
                raise self.fail(f"inline tensor values for '{key}' are not supported")
            names.append(self.tensor(value))
        return names

    def _op(self, op: str, inputs: dict[str, list[Any]], attrs: dict[str, Any], outputs: list[str]) -> None:
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
            if op == "gelu" and self._text(inputs, "mode", "EXACT") != "EXACT":
                raise self.fail("only the exact (erf) GELU is supported", expected="mode EXACT",
                                found=self._text(inputs, "mode"))
            b.op(UNARY[op], self._ins(inputs, "x"), name=out, **kwargs)
        elif op in BINARY:
            b.op(BINARY[op], self._ins(inputs, "x") + self._ins(inputs, "y"), name=out)
        elif op == "leaky_relu":
            b.op("leaky_relu", self._ins(inputs, "x"), name=out, alpha=self._number(inputs, "alpha", 0.01))
        elif op == "clip":
            b.clip(self._ins(inputs, "x")[0], self._number(inputs, "alpha"), self._number(inputs, "beta"), name=out)
        elif op == "conv":
            self._conv(inputs, out)
        elif op == "linear":
            x = self._ins(inputs, "x")[0]
            w = self._ins(inputs, "weight")[0]
            self._note_dense(w, "weight")
            bias = self._ins(inputs, "bias", optional=True)
            product = f"{out}.product" if bias else out
            b.op("matmul", [x, w], name=product, transpose_b=True)
            if bias:
                b.op("add", [product, bias[0]], name=out)
        elif op == "matmul":
            operands = self._ins(inputs, "x") + self._ins(inputs, "y")
            for key, name in zip(("x", "y"), operands):
                self._note_dense(name, key)
            b.op("matmul", operands, name=out,
                 transpose_a=self._flag(inputs, "transpose_x", False),
                 transpose_b=self._flag(inputs, "transpose_y", False))
        elif op == "softmax":
            b.op("softmax", self._ins(inputs, "x"), name=out, axis=self._number(inputs, "axis", -1, whole=True))
        elif op == "layer_norm":
            axes = self._ints(inputs, "axes")
            if len(axes) != 1:
                raise self.fail("layer_norm over several axes is not supported", found=axes)
            x = self._ins(inputs, "x")
            params = self._ins(inputs, "gamma", optional=True)
            beta = self._ins(inputs, "beta", optional=True)
            if beta and not params:  # (the graph op reads its parameters by position: gamma first)
                width = b.graph.info(x[0]).shape[axes[0]]
                params = [b.constant(f"{out}.gamma", np.ones(width, np.float32)).name]
            b.op("layer_norm", x + params + beta, name=out, axis=axes[0],
                 eps=self._number(inputs, "epsilon", 1e-5))
        elif op == "batch_norm":
            x = self._ins(inputs, "x")
            c = b.graph.info(x[0]).shape[1]
            params = []
            for key, default in (("gamma", 1.0), ("beta", 0.0), ("mean", None), ("variance", None)):
                if key in inputs:
                    params += self._ins(inputs, key)
                else:
                    params.append(b.constant(f"{out}.{key}", np.full(c, default, np.float32)).name)
            b.op("batch_norm", x + params, name=out, eps=self._number(inputs, "epsilon", 1e-5))
        elif op in ("max_pool", "avg_pool"):
            self._pool(op, inputs, out)
        elif op in REDUCE:
            self._reduce(op, inputs, out)
        elif op in ("reshape", "squeeze", "expand_dims"):
            self._reshape(op, inputs, out)
        elif op == "transpose":
            x = self._ins(inputs, "x")
            rank = len(b.graph.info(x[0]).shape)
            # MIL allows negative axes (the converter writes [0, 2, -3, -1] for a head split)
            perm = self._ints(inputs, "perm")
            b.op("transpose", x, name=out, perm=[p + rank if -rank <= p < 0 else p for p in perm])
        elif op == "concat":
            if self._flag(inputs, "interleave", False):
                raise self.fail("interleaved concat is not supported")
            b.op("concat", self._ins(inputs, "values", many=True), name=out, axis=self._number(inputs, "axis", whole=True))
        elif op == "slice_by_index":
            self._slice(inputs, out)
        elif op == "split":
            self._split(inputs, outputs)
        else:
            raise self.fail("unsupported operation", found=op)

    def _note_dense(self, name: str, key: str) -> None:
        """A compressed constant read by a product that is not a convolution: a timing note.

        Only a convolution's kernel keeps a palette or 8-bit codes; a features-last product takes
        its constant operand as fp16 data, so its weights are the model's values (exact) but
        stream as 16 bits each (docs/compiler.md §4, Core ML)."""
        fmt = self.formats.get(name)
        if fmt is not None:
            bits = fmt[1] or 8
            self.b.graph.approximations.append(Note(
                "timing", f"its {fmt[0]} weights ({bits} bits) are read as fp16 by a matrix product "
                f"(only convolutions keep a compressed format): {16 / bits:g}x the weight bytes of the model",
                field=f"{self.where()} {key} '{name}'"))

    def _conv(self, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")
        w_name = inputs["weight"][0][1] if inputs.get("weight") else None
        if w_name is None or (w_name not in self.lazy and w_name not in self.consts):
            raise self.fail("convolution weights must be constant")
        fmt, bits = self.formats.get(w_name, ("fp16", 0))
        weights = self._ins(inputs, "weight")
        pad_type = self._pad_type(inputs)
        pads = self._ints(inputs, "pad", [0, 0, 0, 0])
        strides = self._ints(inputs, "strides", [1, 1])
        dilations = self._ints(inputs, "dilations", [1, 1])
        shape = self.b.graph.info(x[0]).shape
        one_d = len(shape) == 3
        if one_d:
            # a 1-D convolution (N, C, L) is the 2-D one over (N, C, 1, L) with a (K, C, 1, k) kernel
            if fmt != "fp16":
                raise self.fail("a 1-D convolution with compressed weights is not supported", found=fmt)
            kernel = self.b.graph.constants[weights[0]].data
            k_shape = (*kernel.shape[:2], 1, kernel.shape[2])
            weights = [self.b.constant_data(f"{out}.kernel2d", ConstantData.derived(
                k_shape, lambda kernel=kernel, k_shape=k_shape: kernel.array().reshape(k_shape),
                "1-D kernel as 2-D")).name]
            x = [self.b.op("reshape", x, name=f"{out}.in2d", shape=[shape[0], shape[1], 1, shape[2]]).name]
            pads, strides, dilations = [0, 0, *pads], [1, *strides], [1, *dilations]
        padding: Any = pads if pad_type == "custom" else pad_type
        weights += self._ins(inputs, "bias", optional=True)
        name = f"{out}.out2d" if one_d else out
        self.b.op("conv2d", x + weights, name=name, stride=strides, padding=padding, dilation=dilations,
                  groups=self._number(inputs, "groups", 1, whole=True), weight_format=fmt, palette_bits=bits or 4)
        if one_d:
            result = self.b.graph.info(name).shape
            self.b.op("reshape", [name], name=out, shape=[result[0], result[1], result[3]])

    def _pad_type(self, inputs: dict[str, list[Any]]) -> str:
        """MIL's ``pad_type``: valid, same (odd pixel after), same_lower (before) or custom (``pad``)."""
        pad_type = self._text(inputs, "pad_type", "valid")
        if pad_type in ("valid", "same", "same_lower", "custom"):
            return pad_type
        raise self.fail("unsupported pad_type", expected="valid, same(_lower) or custom", found=repr(pad_type)[:60])

    def _pool(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        kernel = self._ints(inputs, "kernel_sizes")
        strides = self._ints(inputs, "strides", kernel)
        pad_type = self._pad_type(inputs)
        pads = self._ints(inputs, "pad", [0, 0, 0, 0])
        padding: Any = pads if pad_type == "custom" else pad_type
        if self._flag(inputs, "ceil_mode", False):
            raise self.fail("ceil-mode pooling is not supported")
        padded = pad_type in ("same", "same_lower") or (pad_type == "custom" and any(pads))
        exclude = self._flag(inputs, "exclude_padding_from_average", False)  # (no padding: no effect)
        if op == "avg_pool" and padded and exclude:
            raise self.fail("average pooling that excludes padding is not supported")
        self.b.op("max_pool2d" if op == "max_pool" else "avg_pool2d", self._ins(inputs, "x"), name=out,
                  kernel=kernel, stride=strides, padding=padding)

    def _reduce(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        rank = len(self.b.graph.info(x).shape)
        axes = sorted(set(self._axes(inputs, "axes", rank)))
        keep = self._flag(inputs, "keep_dims", False)
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


def load_coreml(path: str | Path) -> Graph:
    """Read a Core ML ML program (.mlpackage, or an .mlmodel spec beside its weights folder)."""
    file = Path(path)
    if file.is_dir():
        spec_path = package_spec(file)
    elif file.is_file():
        spec_path = file
    else:
        raise ProgramError("no such Core ML model", file=file)
    ct = _coremltools()
    try:
        data = spec_path.read_bytes()
    except OSError as exc:
        raise ProgramError(f"cannot read the model spec: {exc.strerror}", file=spec_path) from None
    model = ct.Model_pb2.Model()
    try:
        model.ParseFromString(data)
    except (ct.DecodeError, ValueError) as exc:
        raise ProgramError(f"not a Core ML model spec ({type(exc).__name__}: {exc})", file=spec_path) from None
    kind = model.WhichOneof("Type")
    if kind != "mlProgram":
        raise UnsupportedError("only ML programs (mlprogram) are supported", file=spec_path,
                               found=kind or "a spec with no model")
    name = file.stem if file.suffix else file.name
    declared = declared_output_types(ct, model, str(spec_path))
    importer = _Importer(ct, model.mlProgram, Blobs(spec_path), str(path), name)
    graph = importer.run()
    check_description(ct, model, graph, str(spec_path), declared, importer.output_mil_types, importer.input_mil)
    graph.output_types = {k: v for k, v in declared.items() if v != "float16"}
    return graph
