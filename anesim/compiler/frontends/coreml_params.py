"""Reading a MIL operation's constant parameters with their types checked (Core ML importer mixin).

A parameter's value is whatever the spec's tensor holds: the importer asks for the kind it
needs (a boolean, a number, a string, a list of integers or of booleans) and refuses any
other, naming the parameter, so a string where an axis belongs or a fraction where a kernel
size belongs is an error, never a ``ValueError`` or a value quietly truncated to an integer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REQUIRED = object()  # _arg's default: the parameter must be present


class Params:
    """Importer mixin: typed reads of an operation's constant parameters."""

    consts: dict[str, Any]  # the importer's constants by name; fail builds its error
    fail: Any

    def _arg(self, inputs: dict[str, list[Any]], key: str, default: Any = REQUIRED) -> Any:
        """A constant parameter's value (ints, strings, shapes); a missing one without a default is an error."""
        bindings = inputs.get(key)
        if not bindings:
            if default is REQUIRED:
                raise self.fail(f"the operation has no '{key}' parameter", expected=f"a '{key}' parameter")
            return default
        kind, value = bindings[0]
        if kind == "value":
            return value
        if value in self.consts:
            return self.consts[value]
        raise self.fail(f"parameter '{key}' must be constant", found=repr(value))

    def _one(self, inputs: dict[str, list[Any]], key: str, default: Any, kinds: str, what: str) -> Any:
        """The one element of a parameter whose numpy kind is in ``kinds``, else an error naming it."""
        value = np.asarray(self._arg(inputs, key, default))
        if value.size != 1 or value.dtype.kind not in kinds:
            raise self.fail(f"parameter '{key}' must be one {what}", found=repr(value)[:60])
        return value.reshape(-1)[0]

    def _flag(self, inputs: dict[str, list[Any]], key: str, default: bool) -> bool:
        """A boolean parameter (a MIL bool constant)."""
        return bool(self._one(inputs, key, default, "b", "boolean"))

    def _number(self, inputs: dict[str, list[Any]], key: str, default: Any = REQUIRED, whole: bool = False) -> Any:
        """A numeric parameter (``whole``: an integer)."""
        if whole:
            return int(self._one(inputs, key, default, "iu", "integer"))
        return float(self._one(inputs, key, default, "iuf", "number"))

    def _text(self, inputs: dict[str, list[Any]], key: str, default: Any = REQUIRED) -> str:
        """A string parameter."""
        return str(self._one(inputs, key, default, "US", "string"))

    def _list_of(self, value: Any, key: str, kinds: str, what: str) -> list[Any]:
        """Every element of ``value`` (parameter ``key``) if its numpy kind is in ``kinds``, else an error."""
        array = np.asarray(value)
        if array.size and array.dtype.kind not in kinds:  # (an empty list has no wrong element)
            raise self.fail(f"parameter '{key}' must be a list of {what}", found=repr(value)[:60])
        return array.reshape(-1).tolist()

    def _ints(self, inputs: dict[str, list[Any]], key: str, default: Any = REQUIRED) -> list[int]:
        """A list-of-integers parameter (axes, a shape, a permutation, kernel sizes, pads)."""
        return [int(v) for v in self._list_of(self._arg(inputs, key, default), key, "iu", "integers")]

    def _bools(self, inputs: dict[str, list[Any]], key: str, default: Any = REQUIRED) -> list[bool]:
        """A list-of-booleans parameter (a slice's masks)."""
        return [bool(v) for v in self._list_of(self._arg(inputs, key, default), key, "b", "booleans")]

    def _axes(self, inputs: dict[str, list[Any]], key: str, rank: int) -> list[int]:
        """Parameter ``key`` as axes of a rank-``rank`` tensor, negatives counted from the end; an
        axis outside -rank .. rank-1 is refused rather than wrapped round."""
        axes = self._ints(inputs, key)
        bad = [a for a in axes if not -rank <= a < rank]
        if bad:
            raise self.fail(f"'{key}' names an axis the tensor does not have",
                            expected=f"axes -{rank} to {rank - 1}", found=bad[0])
        return [a % rank for a in axes]
