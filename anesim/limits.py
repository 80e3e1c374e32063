"""How much memory and work one input file may ask of the host.

Every size, count, shape and repeat a file states is checked against these limits before an
array is created or a loop is entered, so a damaged or hostile file ends in one
:class:`LimitError` naming the file, the field and both numbers instead of exhausting the host.

- The **memory limit** bounds the bytes of the tensors one program declares (its buffers, its
  weights, one input array). By default it is the chip's engine address window
  (``dram.window_bytes``: the DART maps at most that much DRAM for one program), 3.5 GiB on
  every shipped chip; ``--max-memory`` on the commands that read programs, or the
  ``ANESIM_MAX_MEMORY`` environment variable, overrides it (``512M``, ``2GiB``, a byte count).
- The **work limit** bounds the arithmetic one run asks for: multiply-accumulates plus elements
  produced (and, by an engine task, read), over every task and host operation executed, and
  :data:`TASK_WORK` per task executed
  (a task's fixed cost in the executor). By default 64 operations per byte of the memory limit
  (240 G for 3.5 GiB; ResNet-50 is about 4 G multiply-accumulates); ``ANESIM_MAX_WORK``
  overrides it.
- The **step limit** bounds how many structural steps a file asks for: graph nodes after
  expansion, loop repeats, lowered operations, timing tile steps. One step per 2 KiB of the
  memory limit: 1,835,008 by default (the largest shipped model, a Stable Diffusion UNet, takes
  1.22 M timing tile steps in one segment on the A11, whose 1 MB working set cuts it finest).

docs/limits.md records the choices.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike
from typing import TYPE_CHECKING

from anesim.errors import AnesimError

if TYPE_CHECKING:
    from anesim.chips.schema import ChipConfig

ENV_MAX_MEMORY = "ANESIM_MAX_MEMORY"
ENV_MAX_WORK = "ANESIM_MAX_WORK"
WORK_PER_BYTE = 64
# What one task costs the functional executor besides its arithmetic, in operations: measured
# at about 0.4 ms per small task against 0.6 ns per multiply-accumulate of a large convolution.
TASK_WORK = 500_000
# The engine's IOVA window on t8103/t6000 (reference/command-stream.md §1.2: vm_size 0xe0000000);
# the default when no chip is at hand. Chips carry the same figure as dram.window_bytes.
DEFAULT_WINDOW_BYTES = 0xE000_0000
STEP_BYTES = 2 * 1024  # one step per 2 KiB: each step of a run touches at least that much memory
MIN_MEMORY_BYTES = 1 << 20

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30, "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40}
_override: int | None = None


class LimitError(AnesimError):
    """A file asks for more memory or work than the limits allow, or states a size its bytes do not hold."""


@dataclass(frozen=True)
class Limits:
    """The memory limit (bytes), the work limit (arithmetic operations) and the step limit (counts)."""

    memory_bytes: int
    work_ops: int
    steps: int

    @staticmethod
    def of_memory(memory_bytes: int, work_ops: int | None = None) -> Limits:
        """Limits for a memory budget; work and steps follow it unless the work is given."""
        return Limits(memory_bytes, work_ops or memory_bytes * WORK_PER_BYTE, max(memory_bytes // STEP_BYTES, 1))


def parse_size(text: str, *, what: str = "--max-memory", minimum: int = MIN_MEMORY_BYTES) -> int:
    """A byte count from '512M', '2GiB', '1.5g' or '1073741824'."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise LimitError(f"bad {what}", expected="a byte count such as 512M, 2GiB or 1073741824",
                         found=repr(text))
    number = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(number):
        raise LimitError(f"bad {what}", expected="a byte count such as 512M, 2GiB or 1073741824",
                         found=repr(text))
    value = int(number)
    if value < minimum:
        raise LimitError(f"{what} is too small", expected=f">= {minimum}", found=value)
    return value


def set_max_memory(value: int | str | None) -> None:
    """Set (or with None, clear) the memory limit for this process, as ``--max-memory`` does."""
    global _override
    _override = None if value is None else (value if isinstance(value, int) else parse_size(value))


def current(chip: ChipConfig | None = None) -> Limits:
    """The limits in force: --max-memory, else $ANESIM_MAX_MEMORY, else the chip's window."""
    window = getattr(getattr(chip, "dram", None), "window_bytes", None) if chip is not None else None
    return _limits(_override, os.environ.get(ENV_MAX_MEMORY), os.environ.get(ENV_MAX_WORK),
                   int(window.value) if window is not None else DEFAULT_WINDOW_BYTES)


@lru_cache(maxsize=64)
def _limits(override: int | None, env_memory: str | None, env_work: str | None, window_bytes: int) -> Limits:
    """The limits for these settings, parsed once (a graph build asks for them at every tensor; a
    setting that fails to parse raises each time, as exceptions are not cached)."""
    work = parse_size(env_work, what=ENV_MAX_WORK, minimum=1) if env_work else None
    if override is not None:
        return Limits.of_memory(override, work)
    if env_memory:
        return Limits.of_memory(parse_size(env_memory, what=ENV_MAX_MEMORY), work)
    return Limits.of_memory(window_bytes, work)


def _at(file: str | PathLike[str] | None) -> str | None:
    return None if file is None else str(file)


def check_bytes(nbytes: int, *, file: str | PathLike[str] | None, field: str,
                chip: ChipConfig | None = None) -> int:
    """``nbytes`` if within the memory limit, else a LimitError naming the file and field."""
    limit = current(chip).memory_bytes
    if nbytes > limit:
        raise LimitError("exceeds the memory limit (--max-memory / ANESIM_MAX_MEMORY)", file=_at(file),
                         where=field, expected=f"<= {limit:,} bytes", found=f"{nbytes:,} bytes")
    return nbytes


def check_work(ops: int, *, file: str | PathLike[str] | None, field: str,
               chip: ChipConfig | None = None) -> int:
    """``ops`` if within the work limit, else a LimitError naming the file and field."""
    limit = current(chip).work_ops
    if ops > limit:
        raise LimitError("exceeds the work limit (ANESIM_MAX_WORK; by default it scales with --max-memory)",
                         file=_at(file), where=field, expected=f"<= {limit:,} operations", found=f"{ops:,}")
    return ops


def check_steps(count: int, *, file: str | PathLike[str] | None, field: str,
                chip: ChipConfig | None = None) -> int:
    """``count`` (nodes, repeats, tasks) if within the step limit, else a LimitError naming the file and field."""
    limit = current(chip).steps
    if count > limit:
        raise LimitError("exceeds the step limit (scales with --max-memory / ANESIM_MAX_MEMORY)",
                         file=_at(file), where=field, expected=f"<= {limit:,}", found=f"{count:,}")
    return count


def check_within(end: int, length: int, *, file: str | PathLike[str] | None, field: str) -> None:
    """A stated offset + size that must lie inside a file of ``length`` bytes."""
    if end > length:
        raise LimitError("runs past the end of the file", file=_at(file), where=field,
                         expected=f"<= {length:,} bytes (the file's length)", found=f"{end:,}")


def tensor_bytes(shape: tuple[int, ...] | list[int], itemsize: int) -> int:
    """Bytes of a dense tensor of ``shape`` (exact Python integers: no overflow)."""
    total = itemsize
    for dim in shape:
        total *= int(dim)
    return total
