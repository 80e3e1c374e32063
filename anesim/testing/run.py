"""One model run for tests: compile for a chip, execute with the engine's numerics, time it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import anesim
from anesim.chips import load_chip
from anesim.chips.schema import ChipConfig
from anesim.functional import TaskOutputStats, check_numerics, draw_inputs
from anesim.functional import execute as run_program
from anesim.timing.result import TimingResult


def chip_key(chip: Any) -> str:
    """A chip's file-style name: 'M1' -> 'm1', 'A17 Pro' -> 'a17-pro'."""
    name = chip if isinstance(chip, str) else chip.name
    return "-".join(str(name).lower().split())


@dataclass
class ModelRun:
    """A model compiled for a chip, executed once and timed: what the assertions read.

    ``outputs`` are the model's outputs by name, ``task_stats`` one entry per engine task (inf,
    NaN and saturation counts), ``timing`` the chip's predicted latency. :meth:`timing_on` times
    the same model compiled for another chip (timing only, cached).
    """

    model: str  # a short name: the file stem, or the graph's name
    source: Any  # the model file or builder graph, to compile again for other chips
    chip: str  # file-style chip name (chip_key)
    numerics: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    task_stats: list[TaskOutputStats]
    timing: TimingResult
    _timings: dict[str, TimingResult] = field(default_factory=dict, repr=False)

    def timing_on(self, chip: str | ChipConfig | None = None) -> TimingResult:
        """The predicted timing on ``chip`` (this run's chip when None), compiled for that chip."""
        if chip is None:
            return self.timing
        config = load_chip(chip) if isinstance(chip, str) else chip
        key = chip_key(config)
        if key == self.chip:
            return self.timing
        if key not in self._timings:
            self._timings[key] = anesim.simulate(anesim.compile(self.source, config), config, trace=False)
        return self._timings[key]

    def describe(self, chip: str | None = None) -> str:
        """'model NAME on CHIP' for failure messages."""
        return f"model '{self.model}' on {chip or self.chip}"


def model_name(model: Any) -> str:
    """A short name for a model file (its stem) or a builder graph (its name)."""
    if isinstance(model, (str, Path)):
        return Path(model).stem
    graph = getattr(model, "graph", model)
    return str(getattr(graph, "name", type(model).__name__))


def inputs_digest(inputs: Mapping[str, np.ndarray] | None) -> str:
    """A digest of named arrays (names, dtypes, shapes, bytes), to key cached runs."""
    if inputs is None:
        return "drawn"
    h = hashlib.sha1()
    for name in sorted(inputs):
        arr = np.ascontiguousarray(inputs[name])
        h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def run_model(model: Any, chip: str | ChipConfig = "m1", *, inputs: Mapping[str, np.ndarray] | None = None,
              seed: int = 0, numerics: str = "exact", name: str | None = None) -> ModelRun:
    """Compile ``model`` (a file or a builder) for ``chip``, execute it and time it.

    Inputs not given are drawn with ``seed`` (uniform in [-1, 1) for floats, as ``anesim run``).
    """
    check_numerics(numerics)
    config = load_chip(chip) if isinstance(chip, str) else chip
    compiled = anesim.compile(model, config)
    specs = [(n, tuple(info.shape), info.dtype) for n, info in compiled.graph.inputs.items()]
    given = dict(inputs or {})
    feeds = {**{k: v for k, v in draw_inputs(specs, seed).items() if k not in given}, **given}
    stats: list[TaskOutputStats] = []
    counter = iter(range(1 << 30))

    def segment(program: Any, segment_feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_program(program, segment_feeds, config, numerics, stats=stats, segment=next(counter))

    outputs = compiled.execute(feeds, segment)
    timing = anesim.simulate(compiled, config, trace=False)
    return ModelRun(name or model_name(model), model, chip_key(config), numerics, feeds,
                    {k: np.asarray(v) for k, v in outputs.items()}, stats, timing)
