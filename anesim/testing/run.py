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
    output_tasks: dict[str, str] = field(default_factory=dict)  # output name -> "task N 'name'" that wrote it
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


def _trace_host_outputs(compiled: Any, writers: dict[str, str]) -> None:
    """Name the engine task behind outputs that host operations (a reshape, say) compute from its result."""
    producers = {h.node.output: h.node for seg in compiled.segments for h in seg.host_before}
    producers.update({h.node.output: h.node for h in compiled.host_after})
    for out in compiled.graph.outputs:
        name, node, hops = out, producers.get(out), []
        while name not in writers and node is not None and node.inputs and len(hops) < 64:
            hops.append(node.op)
            name = node.inputs[0]
            node = producers.get(name)
        if out not in writers and name in writers:
            writers[out] = f"{writers[name]}, then host {' -> '.join(reversed(hops))}"


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

    writers: dict[str, str] = {}

    def segment(program: Any, segment_feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = next(counter)
        for spec in program.outputs:  # the last task writing the output's slot produced it
            last = [t for t in program.tasks if t.result.space == "dram" and t.result.slot == spec.slot]
            if last:
                where = f" (segment {index})" if index else ""
                writers[spec.name] = f"task {last[-1].index} '{last[-1].name or last[-1].index}'{where}"
        return run_program(program, segment_feeds, config, numerics, stats=stats, segment=index)

    outputs = compiled.execute(feeds, segment)
    _trace_host_outputs(compiled, writers)
    timing = anesim.simulate(compiled, config, trace=False)
    return ModelRun(name or model_name(model), model, chip_key(config), numerics, feeds,
                    {k: np.asarray(v) for k, v in outputs.items()}, stats, timing, writers)
