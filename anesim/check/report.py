"""Per-layer residency on one chip: placement with its rule, segments, cut costs, engine shares.

The engine time comes from the timing model (``anesim.timing.simulate`` of each segment); host
operations are charged at the host rates of the rule table (estimated, flagged in the report);
each cut adds a dispatch (already in the engine latency) and a DRAM round trip of the tensors
that cross it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from anesim.chips import ChipConfig, load_chip
from anesim.compiler.api import compile_graph
from anesim.compiler.graph.graph import Graph
from anesim.compiler.graph.ops import node_macs
from anesim.compiler.graph.passes import run_passes
from anesim.compiler.lowering.capability import Decision, decisions
from anesim.timing import simulate
from anesim.timing.costs import dispatch_components_s
from anesim.timing.cpu import host_cost

ENGINE_ELEMENT_BYTES = 2


@dataclass
class LayerRow:
    """One layer of the source model on one chip."""

    name: str
    op: str
    placement: str  # "engine", "host", "engine (not modelled)", "folded"
    rule: str
    reason: str
    citation: str
    segment: str
    macs: int
    time_s: float
    suggestion: str | None = None
    fix: str | None = None
    assumed: bool = False


@dataclass
class Cut:
    """Host work between two segments (or after the last) and what it costs."""

    after_segment: int
    host_layers: list[str]
    dispatch_s: float  # the extra dispatch of the next segment (0 after the last)
    transfer_bytes: int
    transfer_s: float
    host_compute_s: float


@dataclass
class ChipCheck:
    """The residency report of one model on one chip."""

    model: str
    chip: str
    tier: str
    layers: list[LayerRow]
    segments: int
    cuts: list[Cut]
    engine_s: float
    host_s: float
    transfer_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """Predicted latency: engine (dispatches included) + host compute + cut transfers."""
        return self.engine_s + self.host_s + self.transfer_s

    @property
    def macs_total(self) -> int:
        """MACs of every layer."""
        return sum(r.macs for r in self.layers)

    @property
    def engine_mac_fraction(self) -> float:
        """Share of the MACs in layers on the engine (1.0 for a model without MACs all on the engine)."""
        total = self.macs_total
        on = sum(r.macs for r in self.layers if r.placement.startswith("engine"))
        if total == 0:
            return 1.0 if not self.host_layers() else 0.0
        return on / total

    @property
    def engine_time_fraction(self) -> float:
        """Share of the predicted latency spent on the engine."""
        return self.engine_s / self.total_s if self.total_s else 1.0

    def host_layers(self) -> list[LayerRow]:
        """The rows of the layers that left the engine."""
        return [r for r in self.layers if r.placement.startswith("host")]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for --json."""
        return {"model": self.model, "chip": self.chip, "tier": self.tier, "segments": self.segments,
                "engine_s": self.engine_s, "host_s": self.host_s, "transfer_s": self.transfer_s,
                "total_s": self.total_s, "macs": self.macs_total,
                "engine_mac_fraction": self.engine_mac_fraction,
                "engine_time_fraction": self.engine_time_fraction,
                "layers": [asdict(r) for r in self.layers], "cuts": [asdict(c) for c in self.cuts],
                "warnings": list(self.warnings)}


def _bytes(graph: Graph, names: list[str], per: int) -> int:
    return sum(math.prod(graph.info(n).shape) * per for n in names if not graph.is_constant(n))


def check_graph(graph: Graph, chip: ChipConfig | str) -> ChipCheck:
    """Compile, place and time ``graph`` on ``chip``; one row per layer of the source model."""
    cfg = chip if isinstance(chip, ChipConfig) else load_chip(chip)
    result = compile_graph(graph, cfg)
    g = result.graph
    decided: dict[str, Decision] = decisions(g, cfg)
    timing = simulate(result, cfg, trace=False)
    dispatch_one = sum(dispatch_components_s(cfg).values())
    engine_work = max(timing.latency_s - dispatch_one * len(result.segments), 0.0)
    cycles_total = sum(t.cycles for t in timing.tasks) or 1.0
    node_time: dict[str, float] = {}
    for task, info in zip(timing.tasks, result.task_info):
        node_time[info.eop_name] = node_time.get(info.eop_name, 0.0) + engine_work * task.cycles / cycles_total
    rows: list[LayerRow] = []
    cuts: list[Cut] = []
    segment, pending, seen_engine = 0, [], False
    engine_made: set[str] = set(g.inputs)
    host_s = transfer_s = 0.0
    dram = cfg.dram.activation_bytes_per_s.value

    def _host_seconds(graph: Graph, node: Any) -> float:
        return host_cost(graph, node, cfg).seconds


    def close_cut(last: bool) -> None:
        nonlocal host_s, transfer_s
        if not pending:
            return
        names = {n.output for n in pending}
        crossing = sorted({i for n in pending for i in n.inputs if i in engine_made and not g.is_constant(i)})
        readers = [o for o in names if any(o in m.inputs for m in g.nodes if m.name not in host_names)]
        nbytes = _bytes(g, crossing + readers, ENGINE_ELEMENT_BYTES)
        switches = int(seen_engine) + int(not last)  # engine -> CPU after a segment, CPU -> engine before one
        compute = sum(_host_seconds(g, n) for n in pending) + switches * cfg.cpu.handoff_s.value
        cut = Cut(segment if seen_engine else -1, [n.name for n in pending], 0.0 if last else dispatch_one, nbytes,
                  2.0 * nbytes / dram, compute)
        host_s += compute
        transfer_s += cut.transfer_s
        cuts.append(cut)
        pending.clear()

    host_names = {n for n, d in decided.items() if d.host_reason}
    for node in g.nodes:
        d = decided[node.name]
        macs = node_macs(g, node)
        if d.host_reason:
            pending.append(node)
            placement = "host"
            if d.engine:
                placement = "host (no anesim lowering)"
            rows.append(LayerRow(node.name, _op(node), placement, d.rule, d.reason, d.citation,
                                 f"host after segment {segment}" if seen_engine else "host before segment 0",
                                 macs, _host_seconds(g, node), d.suggestion, d.fix, d.assumed))
            continue
        if pending:
            close_cut(False)
            segment += 1 if seen_engine else 0
        seen_engine = True
        engine_made.add(node.output)
        rows.append(LayerRow(node.name, _op(node), "engine", d.rule, d.reason, d.citation, str(segment), macs,
                             node_time.get(node.name, 0.0), None, None, d.assumed))
    close_cut(True)
    folded = [n for n in graph.nodes if n.name not in decided]
    for node in folded:
        rows.append(LayerRow(node.name, _op(node), "folded", "graph-pass",
                             "removed or folded into a neighbour by a graph pass", "docs/compiler.md §1 'rewrite'",
                             "-", 0, 0.0))
    warnings = []
    if host_names:
        cpu = cfg.cpu
        warnings.append(f"{len(host_names)} layer(s) run on the CPU (CPU fallback); their time is an estimate "
                        f"(chip cpu: {cpu.fp32_flops_per_s.value:.3g} FLOP/s {cpu.fp32_flops_per_s.provenance}, "
                        f"{cpu.memory_bytes_per_s.value:.3g} B/s {cpu.memory_bytes_per_s.provenance}, "
                        f"{cpu.handoff_s.value * 1e6:.3g} µs per engine/CPU handoff {cpu.handoff_s.provenance})")
    if any(r.assumed for r in rows):
        warnings.append(f"the {cfg.capability.tier} tier is below the guide's matrix: rows marked * assume the A13 cell")
    unmodelled = [r.name for r in rows if r.placement == "host (no anesim lowering)"]
    if unmodelled:
        warnings.append("the engine runs " + ", ".join(unmodelled) + " on this tier but anesim cannot lower it; "
                        "segments and times treat it as host work")
    return ChipCheck(graph.name, cfg.name, cfg.capability.tier, rows, len(result.segments), cuts,
                     timing.latency_s, host_s, transfer_s, warnings)


def _op(node: Any) -> str:
    return str(node.attrs["source_type"]) if node.op in ("source_op", "onnx_host") else node.op


def placement_matrix(graph: Graph, chips: list[ChipConfig]) -> dict[str, Any]:
    """Placement only (no timing) of every layer on every chip: the ``--chip all`` table."""
    g = run_passes(graph)
    columns: dict[str, dict[str, Decision]] = {c.name: decisions(g, c) for c in chips}
    rows = []
    for node in g.nodes:
        cells = {}
        for chip, dec in columns.items():
            d = dec[node.name]
            cells[chip] = {"engine": d.host_reason is None, "rule": d.rule}
        rows.append({"name": node.name, "op": _op(node), "cells": cells})
    macs = {n.name: node_macs(g, n) for n in g.nodes}
    total = sum(macs.values())
    share = {}
    for chip, dec in columns.items():
        on = sum(m for n, m in macs.items() if dec[n].host_reason is None)
        share[chip] = on / total if total else float(all(d.host_reason is None for d in dec.values()))
    return {"model": graph.name, "chips": [{"name": c.name, "tier": c.capability.tier} for c in chips],
            "layers": rows, "engine_mac_fraction": share}
