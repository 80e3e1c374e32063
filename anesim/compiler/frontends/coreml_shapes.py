"""MIL operations that change a tensor's shape and not its data (``reshape``, ``squeeze``,
``expand_dims``), the check of every result against the shape the model declares for it
(Core ML importer mixin), and of the model description against its program."""

from __future__ import annotations

from typing import Any

from anesim.errors import ProgramError, UnsupportedError


def tensor_type(ct: Any, value_type: Any) -> tuple[str, list[int]]:
    """(MIL data type name, dimensions; -1 where unknown) of a ValueType's tensor type."""
    if value_type is None or value_type.WhichOneof("type") != "tensorType":
        return "", []
    tensor = value_type.tensorType
    dims = [d.constant.size if d.WhichOneof("dimension") == "constant" else -1 for d in tensor.dimensions]
    return ct.type_name.get(tensor.dataType, str(tensor.dataType)), dims


# The element types a model's description may declare for a multi-array output, as numpy names:
# the runtime hands the engine's fp16 result back converted to it.
OUTPUT_ARRAY_TYPES = {"FLOAT32": "float32", "DOUBLE": "float64", "INT32": "int32", "INT8": "int8",
                      "FLOAT16": "float16"}


def declared_output_types(ct: Any, model: Any, file: str) -> dict[str, str]:
    """The element type the model's description declares for each multi-array output."""
    out = {}
    for feature in model.description.output:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        code = feature.type.multiArrayType.dataType
        if code == 0:  # (left unset: no type declared, the engine's is handed back)
            continue
        name = ct.array_type_name.get(code, str(code))
        if name not in OUTPUT_ARRAY_TYPES:
            raise UnsupportedError("an output element type anesim does not hand back", file=file,
                                   where=f"output '{feature.name}'", expected=", ".join(OUTPUT_ARRAY_TYPES),
                                   found=name)
        out[feature.name] = OUTPUT_ARRAY_TYPES[name]
    return out


def _kind(type_name: str) -> str:
    """'float', 'int' or 'bool' for a MIL or multi-array element type name ('' if unknown)."""
    name = type_name.upper()
    if name.startswith("FLOAT") or name == "DOUBLE":
        return "float"
    if name.startswith(("INT", "UINT")):
        return "int"
    return "bool" if name == "BOOL" else ""


def check_description(ct: Any, model: Any, graph: Any, file: str, declared: dict[str, str],
                      program_types: dict[str, str], program_inputs: dict[str, tuple[str, list[int]]]) -> None:
    """Refuse a spec whose description names other inputs or outputs than its program, declares
    an input of another kind (float, integer) or shape than the program's, or an output of
    another kind or shape: it is malformed (its producer and anesim would read it differently), and
    handing a float result back as an integer would round it."""
    for kind, described, program in (("inputs", model.description.input, graph.inputs),
                                     ("outputs", model.description.output, graph.outputs)):
        names = {feature.name for feature in described}
        if names and names != set(program):
            raise ProgramError(f"the model description's {kind} are not its program's", file=file,
                               expected=", ".join(sorted(program)), found=", ".join(sorted(names)))
    for feature in model.description.input:
        if feature.type.WhichOneof("Type") != "multiArrayType" or feature.name not in program_inputs:
            continue
        array = feature.type.multiArrayType
        mil_type, dims = program_inputs[feature.name]
        described = _kind(ct.array_type_name.get(array.dataType, "")) if array.dataType else ""
        if described and _kind(mil_type) and described != _kind(mil_type):
            raise ProgramError("the model description's input type is not its program's", file=file,
                               where=f"input '{feature.name}'", expected=mil_type,
                               found=f"a {described} array")
        shape = [int(d) for d in array.shape]
        if shape and dims and shape != dims:
            raise ProgramError("the model description's input shape is not its program's", file=file,
                               where=f"input '{feature.name}'", expected=dims, found=shape)
    for feature in model.description.output:
        if feature.type.WhichOneof("Type") != "multiArrayType" or feature.name not in graph.outputs:
            continue
        shape = [int(d) for d in feature.type.multiArrayType.shape]
        computed = list(graph.info(feature.name).shape)
        if shape and shape != computed:
            raise ProgramError("the model description's output shape is not its program's", file=file,
                               where=f"output '{feature.name}'", expected=computed, found=shape)
    for name, numpy_name in declared.items():  # (as declared_output_types gives them)
        program = program_types.get(name, "")
        if _kind(program) and _kind(numpy_name) != _kind(program):
            raise ProgramError("the model description's output type is not its program's", file=file,
                               where=f"output '{name}'", expected=program, found=numpy_name)


class Shapes:
    """Importer mixin: reshapes, results checked against their declared types, and operations
    on integer tensors refused."""

    b: Any  # the importer's Builder; _ins, _arg, _axes, _ints, folded and malformed are the importer's
    ct: Any
    folded: dict[str, tuple[int, ...]]
    consts: dict[str, Any]
    lazy: dict[str, Any]
    _ins: Any
    _arg: Any
    _axes: Any
    _ints: Any
    malformed: Any

    def _check_integer_operands(self, inputs: dict[str, list[Any]], mil_types: dict[str, str]) -> None:
        """Refuse an operation that reads an integer tensor known only at run time (a model input
        of an integer type other than uint8, which the engine holds as it is).

        The engine would hold it in fp16, where integers are exact only up to 2048, and compute
        on it in fp16, where Core ML computes integer operations exactly (on the CPU). A cast of
        such a tensor to a float type (``_cast_target``) rounds it as the engine holds it, and
        is kept.
        """
        for bindings in inputs.values():
            for how, name in bindings:
                if how != "name" or name in self.consts or name in self.lazy:
                    continue
                mil = mil_types.get(name, "")
                if _kind(mil) == "int" and mil != "UINT8":
                    raise UnsupportedError("an operation on an integer tensor known only at run time: the "
                                           "engine computes in fp16, exact for integers only up to 2048",
                                           expected="a cast to a float type first", found=f"'{name}' ({mil})")

    def _check_declared(self, op: Any, outputs: list[str]) -> None:
        """Refuse a result whose shape disagrees with the static shape the model declares for it.

        The shape is worked out from the operation's parameters; a model whose declared output
        type says otherwise is malformed (its producer and anesim read it differently), and the
        values the rest of the model computes would depend on which reading is right.
        """
        for name, declared in zip(outputs, op.outputs):
            dims = tensor_type(self.ct, declared.type)[1]
            if (not dims or len(dims) != declared.type.tensorType.rank or any(d < 1 for d in dims)
                    or name not in self.b.graph.values):
                # (no shape declared: no tensor type, or rank 0, which protobuf cannot tell from
                # a rank left unset; a dimension left unknown; a constant not built)
                continue
            built = self.folded.get(name) or tuple(self.b.graph.info(name).shape)
            if tuple(built) != tuple(dims):
                raise self.malformed(f"output '{name}': the declared output shape is not the one its operands "
                                     "and parameters give", expected=list(built), found=list(dims))

    def _reshape(self, op: str, inputs: dict[str, list[Any]], out: str) -> None:
        x = self._ins(inputs, "x")[0]
        target = self.reshape_target(op, inputs, list(self.b.graph.info(x).shape))
        self.b.op("reshape", [x], name=out, shape=target or [1])

    def reshape_target(self, op: str, inputs: dict[str, list[Any]], shape: list[int]) -> list[int]:
        """The shape a reshape, squeeze or expand_dims of a ``shape`` tensor gives, as its
        parameters say (a reshape's -1 left for the graph to resolve)."""
        if op == "reshape":
            return self._ints(inputs, "shape")
        if op == "squeeze":
            axes = self._arg(inputs, "axes", None)
            drop = (set(self._axes(inputs, "axes", len(shape))) if axes is not None
                    else {i for i, d in enumerate(shape) if d == 1})
            return [d for i, d in enumerate(shape) if i not in drop]
        # MIL's expand_dims: the axes index the output (rank + K), negatives from its end; each,
        # counted from the front, is a position a 1 is inserted at, in ascending order
        out_rank = len(shape) + len(self._ints(inputs, "axes"))
        target = list(shape)
        for axis in sorted(self._axes(inputs, "axes", out_rank)):
            target.insert(axis, 1)
        return target
