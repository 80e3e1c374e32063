"""Frozen dataclass instances made without their ``__init__``, where thousands are made at once.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, about ten times
the cost of filling the instance's ``__dict__``; a whole model's compile and timing result make
tens of thousands of tasks and rows.
"""

from __future__ import annotations

from typing import Any, TypeVar

_T = TypeVar("_T")


def frozen_instance(cls: type[_T], values: dict[str, Any]) -> _T:
    """An instance of the frozen dataclass ``cls`` holding ``values``, which must name every field
    (no default is filled in and ``__post_init__`` does not run)."""
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj
