"""Entry points: compile a graph or a model file for a chip."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from anesim.chips import ChipConfig, load_chip
from anesim.collector import collector_paused
from anesim.compiler.lowering.capability import limits_of, place
from anesim.compiler.backend.emit import ProgramEmitter
from anesim.compiler.graph.graph import Graph
from anesim.compiler.lowering.lower import SegmentLowerer
from anesim.compiler.graph.passes import run_passes
from anesim.compiler.result import CompileResult, HostOp, Segment, segment_program
from anesim.errors import CompileError, UnsupportedError

MODEL_SUFFIXES = (".yaml", ".yml", ".onnx", ".mlpackage", ".mlmodel", ".plist")


def _chip(chip: ChipConfig | str) -> ChipConfig:
    return chip if isinstance(chip, ChipConfig) else load_chip(chip)


def compile_graph(graph: Graph, chip: ChipConfig | str, *, name: str | None = None,
                  cores: int | None = None, chain: bool = True) -> CompileResult:
    """Lower, tile and lay out a graph for one chip; the result holds the program and report.

    ``cores`` overrides the number of cores the compiler spreads output channels over (for
    comparing with programs compiled for a different core count); by default the chip's own.
    ``chain=False`` keeps every intermediate in DRAM (no on-chip pool residency).
    """
    started = time.perf_counter()
    with collector_paused():
        result = _compile(graph, _chip(chip), name, cores, chain)
    result.compile_seconds = time.perf_counter() - started
    return result


def _compile(graph: Graph, chip: ChipConfig, name: str | None, cores: int | None,
             chain: bool) -> CompileResult:
    limits = limits_of(chip)
    g = run_passes(graph)
    for out in g.outputs:
        if out in g.constants:
            raise CompileError("an output is a constant; there is nothing to compute",
                               file=g.source or None, found=repr(out))
    host = {name_: reason for name_, reason in place(g, chip).items() if reason}
    host_outputs = {n.output for n in g.nodes if n.name in host}
    engine_nodes = [n for n in g.nodes if n.name not in host]
    engine_made = {n.output for n in engine_nodes}
    used_by_engine = {i for n in engine_nodes for i in n.inputs}
    # A dict, not a set: segment outputs must come in graph order, whatever the hash seed.
    used_by_host = dict.fromkeys(i for n in g.nodes if n.name in host for i in n.inputs)
    inputs = [i for i in g.inputs if i in used_by_engine or (i in g.outputs and i not in host_outputs)]
    inputs += [t for t in dict.fromkeys(n.output for n in g.nodes if n.name in host)
               if t in used_by_engine]
    outputs = [o for o in g.outputs if o not in host_outputs]
    outputs += [t for t in used_by_host if t in engine_made and t not in outputs]
    # A value made in one segment and read in a later one leaves the engine between the two
    # dispatches: it is an output of the first segment and an input of the later one.
    segment_of: dict[str, int] = {}
    crossing: list[str] = []
    current = 0
    for node in g.nodes:
        if node.name in host:
            current += 1
            continue
        for i in node.inputs:
            if segment_of.get(i, current) < current and i not in outputs and i not in crossing:
                crossing.append(i)
        segment_of[node.output] = current
    outputs += crossing
    notes: list[str] = []
    lowerer = SegmentLowerer(g, chip, limits, list(g.nodes), inputs, outputs, notes, host)
    eops = lowerer.run()  # (refused by SegmentBase.emit as soon as the ops pass the step limit)
    emitter = ProgramEmitter(chip, limits, lowerer.buffers, name or g.name, chip.identity.generation,
                             g.source)
    shapes = {k: v.shape for k, v in g.values.items()}
    program, infos, first_task = emitter.emit(eops, outputs, inputs, shapes, notes, cores, chain)
    program.approximations.extend(g.approximations)
    first_task.append(len(program.tasks))
    segments: list[Segment] = []
    pending: list[HostOp] = []
    engine_runs = sum(1 for entry in lowerer.timeline if entry[0] == "engine")
    for entry in lowerer.timeline:
        if entry[0] == "host":
            pending.append(HostOp(entry[1], entry[2]))
            continue
        _, start, end = entry
        t0, t1 = first_task[start], first_task[end]
        index = len(segments)
        # one dispatch: the segment is the whole program
        seg_program = program if engine_runs == 1 else segment_program(program, index, t0, t1)
        segments.append(Segment(index, t0, t1, seg_program, pending))
        pending = []
    result = CompileResult(g, chip.name, program, segments, pending, infos, 0.0, notes)
    if host:
        program.notes.append(f"{len(segments)} engine segments; host ops: "
                             + "; ".join(h.describe() for h in result.host_ops))
    return result


def load_graph(path: str | Path, params: dict[str, Any] | None = None) -> Graph:
    """Read a model file into a graph: a program YAML, ONNX, Core ML or an ANE netplist.

    ``params`` set a program file's named parameters (its ``params:``); other formats have none.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from anesim.compiler.frontends.program_file import load_program_file

        return load_program_file(file, params)
    if params:
        raise UnsupportedError("only program files take parameters", file=file, found=", ".join(params))
    if suffix == ".onnx":
        from anesim.compiler.frontends.onnx import load_onnx

        return load_onnx(file)
    if suffix in (".mlpackage", ".mlmodel"):
        from anesim.compiler.frontends.coreml import load_coreml

        return load_coreml(file)
    if suffix == ".plist":
        from anesim.compiler.frontends.netplist import load_netplist

        return load_netplist(file)
    raise UnsupportedError("not a model file the compiler reads", file=file,
                           expected=", ".join(MODEL_SUFFIXES), found=suffix or "no suffix")


def compile_file(path: str | Path, chip: ChipConfig | str, *, cores: int | None = None,
                 chain: bool = True, params: dict[str, Any] | None = None) -> CompileResult:
    """Compile a model file (program YAML, ONNX, Core ML, netplist) for a chip; ``params`` set a
    program file's parameters."""
    with collector_paused():
        graph = load_graph(path, params)
        return compile_graph(graph, chip, cores=cores, chain=chain)
