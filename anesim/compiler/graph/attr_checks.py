"""Checks of op attributes that more than one op spec, or a frontend, shares (ValueError on a bad one).

:mod:`anesim.compiler.graph.ops` turns a ValueError into a CompileError naming the node.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Kernel sizes, strides, dilations and pads beyond this cannot describe a tensor anesim can hold
# (and would not fit the 32-bit and 64-bit integers the kernels compute with).
MAX_GEOMETRY = 2**31 - 1

# The smallest magnitude fp16 rounds to an infinity (65504 is its largest finite value): the
# widest clip table's bounds lie inside it.
FP16_OVERFLOW = 65520.0


def clip_bounds(lo: float | None, hi: float | None) -> tuple[float | None, float | None]:
    """A clip's bounds as an fp16 tensor meets them (None: no bound).

    A bound that fp16 rounds to an infinity on its own side clips nothing fp16 holds (an infinity
    stays one either way), so it is dropped; one past the far side (a minimum above the largest
    finite value) is a ValueError.
    """
    for bound in (lo, hi):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float, np.number))
                                  or math.isnan(bound)):
            raise ValueError(f"clip bounds must be numbers, found min {lo!r}, max {hi!r}")
    if (lo is not None and lo >= FP16_OVERFLOW) or (hi is not None and hi <= -FP16_OVERFLOW):
        raise ValueError(f"clip bounds beyond fp16's range on the far side, found min {lo}, max {hi}")
    return (None if lo is not None and lo <= -FP16_OVERFLOW else lo), \
        (None if hi is not None and hi >= FP16_OVERFLOW else hi)


def check_flags(attrs: dict[str, Any], *keys: str) -> None:
    """Boolean attributes: true or false, not a number or a string a truth test would read."""
    for key in keys:
        if not isinstance(attrs[key], (bool, np.bool_)):
            raise ValueError(f"'{key}' must be true or false, found {attrs[key]!r}")


def check_eps(value: Any) -> None:
    """A norm's epsilon: a finite number, not negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"'eps' must be a finite non-negative number, found {value!r}")


def check_blocksize(value: Any) -> int:
    """A depth/space rearrangement's block size: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GEOMETRY:
        raise ValueError(f"'blocksize' must be a positive integer, found {value!r}")
    return value
