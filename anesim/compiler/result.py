"""What a compile returns: the program, its segments, host work, and a readable report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from anesim.compiler.backend.emit import TaskInfo
from anesim.compiler.graph.graph import Graph, Node
from anesim.errors import InputError
from anesim.program.model import Program, Task


@dataclass(frozen=True)
class HostOp:
    """An operation the engine cannot run; the host computes it between segments."""

    node: Node
    reason: str

    def describe(self) -> str:
        """One line: the op, where it is, and why it runs on the host."""
        op = self.node.attrs["source_type"] if self.node.op == "onnx_host" else self.node.op
        return f"{op} at {self.node.describe()}: {self.reason}"


@dataclass
class Segment:
    """A run of tasks the engine executes in one dispatch."""

    index: int
    first_task: int
    end_task: int
    program: Program
    host_before: list[HostOp] = field(default_factory=list)

    @property
    def task_count(self) -> int:
        """Number of task descriptors in the segment."""
        return self.end_task - self.first_task


@dataclass
class CompileResult:
    """A compiled model: the whole program, its dispatch segments and what runs on the host."""

    graph: Graph
    chip_name: str
    program: Program
    segments: list[Segment]
    host_after: list[HostOp]
    task_info: list[TaskInfo]
    compile_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def host_ops(self) -> list[HostOp]:
        """Every host operation, in order."""
        return [h for s in self.segments for h in s.host_before] + self.host_after

    @property
    def dispatches(self) -> int:
        """Engine dispatches one inference costs (one per segment)."""
        return len(self.segments)

    def pool_resident(self) -> list[Task]:
        """Tasks whose result stays in the on-chip pool (chained to the next task)."""
        return [t for t in self.program.tasks if t.result.space == "pool"]

    def summary(self) -> dict[str, Any]:
        """Headline numbers as plain data (for --json)."""
        tasks = self.program.tasks
        kinds = Counter(t.name.rsplit(":", 1)[-1] for t in tasks)
        return {
            "model": self.graph.name,
            "chip": self.chip_name,
            "generation": self.program.generation,
            "nodes": len(self.graph.nodes),
            "tasks": len(tasks),
            "task_kinds": dict(sorted(kinds.items())),
            "segments": [{"index": s.index, "tasks": s.task_count,
                          "host_before": [h.describe() for h in s.host_before]} for s in self.segments],
            "host_after": [h.describe() for h in self.host_after],
            "dispatches": self.dispatches,
            "macs": self.program.macs,
            "pool_resident_tasks": len(self.pool_resident()),
            "winograd_tasks": sum(1 for t in tasks if t.winograd),
            "multi_pass_tasks": sum(1 for i in self.task_info if i.plan.passes > 1),
            "slots": {i: {"role": s.role, "bytes": s.size_bytes} for i, s in self.program.slots.items()},
            "compile_seconds": round(self.compile_seconds, 4),
            "notes": list(self.notes),
        }

    def task_rows(self) -> list[dict[str, Any]]:
        """One row per task for the report."""
        rows = []
        for task, info in zip(self.program.tasks, self.task_info):
            src = task.sources[0]
            kernel = ""
            if task.ne is not None and task.ne.kernel is not None:
                kernel = f"{task.ne.kernel.format} {'x'.join(map(str, task.ne.kernel.shape))}"
            elif task.ne is not None and task.ne.op == "conv" and len(task.sources) > 1:
                kernel = "from tensor"
            rows.append({
                "task": task.index,
                "op": task.name.rsplit(":", 1)[-1] + ("+" + task.ne.activation if task.ne and task.ne.activation != "none" else "")
                      + ("+relu" if task.planar is not None and task.planar.relu else ""),
                "name": info.eop_name,
                "in": f"{src.channels}x{src.height}x{src.width}",
                "out": f"{task.result.channels}x{task.result.height}x{task.result.width}",
                "kernel": kernel,
                "cores": task.cores_used,
                "ocg": task.ocg_size,
                "passes": info.plan.passes,
                "tile_h": task.tile_height,
                "winograd": task.winograd,
                "result_in": "pool" if task.result.space == "pool" else f"slot {task.result.slot}",
                "fused": "+".join(info.fused),
            })
        return rows

    def report(self, max_tasks: int = 60) -> str:
        """A readable account: segments, host work, tasks, cores, passes, pool residency."""
        s = self.summary()
        lines = [
            f"model {s['model']} for {s['chip']} ({s['generation']}): {s['nodes']} graph ops -> "
            f"{s['tasks']} tasks in {len(self.segments)} segment(s), {s['macs'] / 1e9:.3f} GMAC",
            f"compiled in {s['compile_seconds'] * 1000:.0f} ms",
        ]
        if self.program.generation not in ("H13",):
            lines.append("note: output is the program model; .hwx encoding exists for H13 only")
        if len(self.segments) > 1 or self.host_ops:
            lines.append(f"split: {self.dispatches} dispatches, {len(self.host_ops)} host op(s)")
        for seg in self.segments:
            for h in seg.host_before:
                lines.append(f"  host: {h.describe()}")
            lines.append(f"  segment {seg.index}: tasks {seg.first_task}..{seg.end_task - 1} "
                         f"({seg.task_count} tasks, one dispatch)")
        for h in self.host_after:
            lines.append(f"  host: {h.describe()}")
        kinds = ", ".join(f"{k} {v}" for k, v in s["task_kinds"].items())
        lines.append(f"tasks by kind: {kinds}")
        lines.append(f"pool-resident intermediates (chained): {s['pool_resident_tasks']}; "
                     f"Winograd tasks: {s['winograd_tasks']}; multi-pass tasks: {s['multi_pass_tasks']}")
        slots = ", ".join(f"{i}:{v['role']} {v['bytes']}" for i, v in s["slots"].items())
        lines.append(f"slots: {slots}")
        for note in self.notes:
            lines.append(f"note: {note}")
        rows = self.task_rows()
        if rows:
            cols = ["task", "op", "name", "in", "out", "kernel", "cores", "ocg", "passes", "tile_h",
                    "winograd", "result_in", "fused"]
            head = max_tasks // 2  # (the first rows and the last ones; rows[-0:] would be all of them)
            shown = rows if len(rows) <= max_tasks else rows[:head] + rows[len(rows) - (max_tasks - head):]
            table = [[str(r[c]) for c in cols] for r in shown]
            widths = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(cols)]
            body = ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
            if len(rows) > max_tasks:
                body.insert(head, f"... {len(rows) - max_tasks} more tasks ...")
            lines.append("")
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
            lines += body
        return "\n".join(lines)

    def execute(self, inputs: Mapping[str, np.ndarray],
                run_program: Callable[[Program, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
                ) -> dict[str, np.ndarray]:
        """Run the model: engine segments with ``run_program``, host ops in numpy between them."""
        from anesim.compiler.graph.ops import ONNX_HOST_OP, node_macs
        from anesim.compiler.reference.onnx_host import from_engine, run_onnx_host, to_engine
        from anesim.compiler.reference.ops import run_node
        from anesim.limits import check_work

        env: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in inputs.items()}
        host = [h.node for s in self.segments for h in s.host_before] + [h.node for h in self.host_after]
        check_work(sum(node_macs(self.graph, n) + self.graph.info(n.output).elements for n in host),
                   file=self.graph.source or None, field=f"the {len(host)} host operations")
        unknown = [name for name in env if name not in self.graph.inputs]
        if unknown:  # (a misspelt name would leave its value unused, as the Program path refuses too)
            raise InputError(f"unknown input '{unknown[0]}'", file=self.graph.source or None,
                             expected=f"one of {sorted(self.graph.inputs)}")
        missing = [name for name in self.graph.inputs if name not in env]
        if missing:
            raise InputError(f"missing input '{missing[0]}'", file=self.graph.source or None,
                             expected=f"shape {self.graph.inputs[missing[0]].shape}")
        constants = self.graph.constants

        def value(name: str) -> np.ndarray:
            # constants are drawn only when host work or a segment reads them: the engine's
            # tasks carry their own weights, and drawing all of a ResNet-50's again costs seconds
            if name not in env and name in constants:
                env[name] = constants[name].data.array()
            return env[name]

        producers = {n.output: n for n in host}

        def run_host(ops: list[HostOp]) -> None:
            for h in ops:
                if h.node.op == ONNX_HOST_OP:  # exact ONNX types; every output of the node at once
                    if h.node.output not in env:
                        run_onnx_host(h.node, [value(i) for i in h.node.inputs], env, producers)
                    continue
                args = [np.asarray(value(i), np.float32) for i in h.node.inputs]
                env[h.node.output] = run_node(h.node, args).astype(np.float16)

        info = self.graph.info
        for seg in self.segments:
            run_host(seg.host_before)
            # host results cross to the engine as the engine stores them (fp16, uint8)
            feeds = {t.name: to_engine(value(t.name), info(t.name).dtype)
                     for t in seg.program.inputs if t.name in env or t.name in constants}
            env.update(run_program(seg.program, feeds))
        run_host(self.host_after)
        scalars, types = self.graph.scalar_outputs, self.graph.output_types
        out = {}
        for name in self.graph.outputs:
            arr = value(name).reshape(()) if name in scalars else value(name)
            out[name] = from_engine(arr, np.dtype(types[name]), name) if name in types else arr
        return out


def _renumbered(task: Task, index: int) -> Task:
    """``task`` as task ``index`` of its segment (``dataclasses.replace`` without the cost of
    re-running ``__init__``: a segmented model renumbers tens of thousands of tasks)."""
    if task.index == index:
        return task  # frozen: the segment may share it
    clone = object.__new__(Task)
    clone.__dict__.update(task.__dict__)
    clone.__dict__["index"] = index
    return clone


def segment_program(program: Program, index: int, start: int, end: int) -> Program:
    """The tasks [start, end) of a program as a program of their own (one dispatch)."""
    tasks = [_renumbered(t, i) for i, t in enumerate(program.tasks[start:end])]
    written = {(t.result.space, t.result.slot) for t in tasks}
    read = {(s.space, s.slot) for t in tasks for s in t.sources}
    read |= {("dram", t.ne.kernel.placement.slot) for t in tasks
             if t.ne is not None and t.ne.kernel is not None and t.ne.kernel.placement is not None}
    tensors = {}
    for name, spec in program.tensors.items():
        key = ("dram", spec.slot)
        if key in written and spec.role == "output":
            tensors[name] = spec
        elif key in read and spec.role == "input":
            tensors[name] = spec
        elif key in read and key not in written:
            tensors[name] = replace(spec, role="input")
    used_slots = {slot for _, slot in written | read if slot is not None}
    slots = {i: s for i, s in program.slots.items() if i in used_slots}
    name = program.name if index == 0 else f"{program.name}.segment{index}"
    return Program(name, program.generation, tasks, tensors, slots, program.source, list(program.notes))
