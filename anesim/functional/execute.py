"""The functional engine: bind inputs, run every task in order, read the outputs back."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace

import numpy as np

from anesim.chips.schema import ChipConfig
from anesim.errors import AnesimError, InputError, ProgramError
from anesim.functional.memory import Memory
from anesim.functional.stats import TaskOutputStats, task_output_stats
from anesim.functional.tasks import as_fp16_bits, from_fp16_bits, mac_rules, run_task
from anesim.limits import TASK_WORK, check_bytes, check_work, tensor_bytes
from anesim.numerics import NUMERICS_MODES
from anesim.numerics.fast import blas_owns_cores
from anesim.program.kernels import gather_weights
from anesim.program.model import NUMPY_DTYPES, Program, Task, TensorSpec

# The on-chip pool when no chip is named: large enough for every shipped sample.
DEFAULT_POOL_BYTES = 4 * 2**20


def _coerce(spec: TensorSpec, value: object) -> np.ndarray:
    """A user's array as the tensor's storage dtype, or an InputError naming the tensor."""
    arr = np.asarray(value)
    expected = f"shape {spec.shape} {spec.dtype}"
    if arr.dtype.kind not in "fiub" or arr.dtype == np.bool_:
        raise InputError(f"input '{spec.name}' has dtype {arr.dtype}", expected=expected)
    if arr.shape != tuple(spec.shape):
        squeezed = tuple(d for d in arr.shape if d != 1) == tuple(d for d in spec.shape if d != 1)
        if not (squeezed and arr.size == int(np.prod(spec.shape))):
            raise InputError(f"input '{spec.name}' has the wrong shape", expected=expected, found=arr.shape)
        arr = arr.reshape(spec.shape)
    if spec.dtype == "fp16":
        with np.errstate(over="ignore"):
            return arr.astype(np.float16).view(np.uint16)
    info = np.iinfo(NUMPY_DTYPES[spec.dtype])
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.rint(arr))):
        raise InputError(f"input '{spec.name}' holds non-integer values", expected=expected)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise InputError(f"input '{spec.name}' is out of range", expected=f"{spec.dtype} values in "
                         f"{info.min}..{info.max}", found=f"{arr.min()}..{arr.max()}")
    return arr.astype(NUMPY_DTYPES[spec.dtype])


def check_inputs(program: Program, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Every program input present with the right shape and dtype; nothing unknown."""
    specs = {t.name: t for t in program.inputs}
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise InputError(f"unknown input '{unknown[0]}'", expected=f"one of {sorted(specs)}")
    missing = sorted(set(specs) - set(inputs))
    if missing:
        spec = specs[missing[0]]
        raise InputError(f"missing input '{spec.name}'", expected=f"shape {spec.shape} {spec.dtype}")
    return {name: _coerce(specs[name], inputs[name]) for name in specs}


def check_numerics(mode: str) -> str:
    """``mode`` if it names a numerics mode ("exact" or "fast"), else an InputError."""
    if mode not in NUMERICS_MODES:
        raise InputError("unknown numerics mode", expected=f"one of {', '.join(NUMERICS_MODES)}",
                         found=repr(mode))
    return mode


def task_work(task: Task) -> int:
    """The operations one task counts against the work limit: its multiply-accumulates, every
    element it reads and writes (a source read through overlapping strides can name far more
    elements than its result) and the executor's fixed cost per task."""
    return task.macs + task.result.elements + sum(s.elements for s in task.sources) + TASK_WORK


def execute(program: Program, inputs: Mapping[str, object], chip: ChipConfig | None = None,
            numerics: str = "exact", *, stats: list[TaskOutputStats] | None = None,
            segment: int = 0) -> dict[str, np.ndarray]:
    """Run a program on inputs (name → array, logical NCHW); return its outputs by name.

    ``numerics="fast"`` sums convolutions and products in float32 BLAS and rounds once per
    output instead of per tile addition: not bit-exact, measured in docs/numerics.md.
    Given a list, ``stats`` receives one :class:`TaskOutputStats` per task (tagged ``segment``).
    """
    check_numerics(numerics)
    values = check_inputs(program, inputs)
    check_work(sum(task_work(t) for t in program.tasks),
               file=program.source or None, field=f"the {len(program.tasks)} tasks' multiply-accumulates, elements and fixed costs",
               chip=chip)
    pool_bytes = chip.memory.pool_bytes.value if chip is not None else DEFAULT_POOL_BYTES
    memory = Memory.for_program(program, pool_bytes)
    for spec in program.inputs:
        memory.write(spec.layout(), values[spec.name], what=f"input '{spec.name}'")
    rules = mac_rules(program.generation)
    with blas_owns_cores() if numerics == "fast" else nullcontext():
        for task in program.tasks:
            what = f"task {task.index}"
            sources = [as_fp16_bits(memory.read(src, what=f"{what} source {i + 1}"))
                       for i, src in enumerate(task.sources)]
            try:
                result = run_task(_with_runtime_weights(task, memory), sources, rules, numerics)
            except AnesimError as exc:  # the kernels know the task, not the file: say both
                if exc.file:
                    raise
                raise type(exc)(exc.problem, file=program.source or None, where=exc.where or what,
                                expected=exc.expected, found=exc.found) from None
            if stats is not None:
                stats.append(task_output_stats(task, result, segment))
            memory.write(task.result, from_fp16_bits(result, task.result.dtype), what=f"{what} result")
    outputs: dict[str, np.ndarray] = {}
    for spec in program.outputs:
        stored = memory.read(spec.layout(), what=f"output '{spec.name}'")
        out = stored.view(np.float16) if spec.dtype == "fp16" else stored
        outputs[spec.name] = out.reshape(spec.shape).copy()
    return outputs


def _with_runtime_weights(task: Task, memory: Memory) -> Task:
    """The task with a run-time kernel's weights read from its slot as the kernel DMA would."""
    kernel = task.ne.kernel if task.ne is not None else None
    if kernel is None or kernel.weights is not None or kernel.placement is None:
        return task
    slot = kernel.placement.slot
    buffer = memory.slots.get(slot)
    weights = None if buffer is None else gather_weights(buffer, kernel.placement, kernel.format)
    if weights is None:
        raise ProgramError(f"task {task.index}: the kernel's per-core buffers fall outside slot {slot}",
                           file=memory.source or None)
    return replace(task, ne=replace(task.ne, kernel=replace(kernel, weights=weights)))


def random_inputs(program: Program, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs for every program input: fp16 uniform in [-1, 1), integers over their range."""
    return draw_inputs([(t.name, tuple(t.shape), t.dtype) for t in program.inputs], seed, program.source or None)


def draw_inputs(specs: list[tuple[str, tuple[int, ...], str]], seed: int,
                file: str | None = None) -> dict[str, np.ndarray]:
    """Seeded arrays for (name, shape, dtype) specs: floats uniform in [-1, 1), integers over their range.

    ``file`` is where the shapes come from; a shape past the memory limit is an error naming it.
    """
    rng = np.random.default_rng(seed)
    drawn: dict[str, np.ndarray] = {}
    for name, shape, dtype in specs:
        # (the other dimensions of an empty input count too: numpy refuses a shape whose
        # dimensions multiply past its index range, though it holds no element)
        check_bytes(tensor_bytes([d if d else 1 for d in shape], 8), file=file,
                    field=f"input '{name}' of shape {tuple(shape)}")
        if dtype in ("int8", "uint8"):
            info = np.iinfo(NUMPY_DTYPES[dtype])
            drawn[name] = rng.integers(info.min, info.max, shape, endpoint=True).astype(NUMPY_DTYPES[dtype])
        else:
            drawn[name] = rng.uniform(-1.0, 1.0, shape).astype(np.float16)
    return drawn
