"""Time a workload graph on a chip: compile it, simulate it, keep what validation needs.

The default timer goes through the public pipeline, ``compile_graph(graph, chip)`` then
``anesim.simulate(program, chip)``. Tests and calibration can pass another :data:`Timer`.
Results are cached per (workload, chip) so the several rows that restate one measurement, and
the sizes a sweep shares with single points, are simulated once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.compiler import Graph
from anesim.errors import UnsupportedError
from anesim.validate import workloads


@dataclass(frozen=True)
class Timing:
    """What validation reads from one simulated dispatch."""

    latency_s: float  # one dispatch of a loaded program, dispatch overhead included
    sustained_s: float  # time per iteration of back-to-back dispatches of the same program
    dram_bytes: float  # bytes moved to and from DRAM by the dispatch
    dispatches: int = 1  # engine segments the compiler split the workload into
    macs: float = 0.0  # multiply-accumulates of the dispatch (for the energy model)


Timer = Callable[[Graph, ChipConfig], Timing]


def chip_key(chip: ChipConfig, ignore: frozenset[str] = frozenset()) -> str:
    """A digest of a chip's values; dotted keys in ``ignore`` are left out."""
    data = chip.model_dump(mode="json")
    for dotted in ignore:
        node = data
        *head, last = dotted.split(".")
        for part in head:
            node = node.get(part, {})
        node.pop(last, None)
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def _result_value(result: Any, *names: str) -> Any:
    for name in names:
        value = getattr(result, name, None)
        if value is None and isinstance(result, dict):
            value = result.get(name)
        if value is not None:
            return value
    return None


def _dram_total(value: Any) -> float:
    if isinstance(value, dict):
        return float(sum(v for v in value.values() if isinstance(v, (int, float))))
    return float(value or 0.0)


class PipelineTimer:
    """compile_graph + anesim.simulate, with compiled programs cached across chip variants.

    ``timing_only_keys`` names chip parameters that only the timing engine reads (the fitted
    rates and overheads calibration varies); a program compiled for one value is reused for
    another, which keeps calibration from recompiling every workload at every step.
    """

    def __init__(self, timing_only_keys: frozenset[str] = frozenset()) -> None:
        self.timing_only_keys = timing_only_keys
        self._programs: dict[tuple[str, str], Any] = {}

    def __call__(self, graph: Graph, chip: ChipConfig) -> Timing:
        try:
            from anesim.timing import simulate
            from anesim.compiler import compile_graph
        except ImportError as exc:  # the compiler or timing engine is not installed yet
            raise UnsupportedError(f"the compile-and-simulate pipeline is unavailable ({exc})") from None
        key = (graph.name, chip_key(chip, self.timing_only_keys))
        programs = self._programs.get(key)
        if programs is None:
            compiled = compile_graph(graph, chip)
            # one dispatch per engine segment; host work between segments is not timed
            programs = [s.program for s in getattr(compiled, "segments", None) or []] or [compiled]
            self._programs[key] = programs
        latency = sustained = dram = macs = 0.0
        for program in programs:
            try:  # no timeline and the faster event kernel: neither changes the simulated times
                result = simulate(program, chip, trace=False)
            except TypeError:
                result = simulate(program, chip)
            lat = float(_result_value(result, "latency_s"))
            latency += lat
            sustained += float(_result_value(result, "sustained_s", "steady_state_s") or lat)
            dram += _dram_total(_result_value(result, "dram_bytes"))
            macs += float(_result_value(result, "macs") or 0.0)
        return Timing(latency, sustained, dram, len(programs), macs)


class Simulator:
    """Times workloads on one chip through a timer, caching by (family, params)."""

    def __init__(self, chip: ChipConfig, timer: Timer | None = None) -> None:
        self.chip = chip
        self.timer = timer or PipelineTimer()
        self._cache: dict[str, Timing] = {}

    def time(self, family: str, params: dict[str, Any]) -> Timing:
        """Simulated timing of one workload."""
        key = family + json.dumps(params, sort_keys=True)
        hit = self._cache.get(key)
        if hit is None:
            graph = workloads.family(family).build(params)
            hit = self.timer(graph, self.chip)
            self._cache[key] = hit
        return hit
