"""Compare compiled tasks with Apple's: the tinygrad H13 samples, field by field.

For each sample whose network description is public (``../shared/hwx/tinygrad/*.plist``) the
network is compiled for H13 with the sample's tensor shapes and 16 NE channels (the H13
descriptor addresses 16 kernel-DMA channels and ``ActiveNE`` counts them, command-stream.md
§3.1, §3.10), each task's register fields are produced by :mod:`anesim.compiler.backend.h13`, and
compared with the fields the decoder reads from Apple's ``.hwx``. Buffer addresses are left
out. Differences whose reason is known are labelled with it.

    python -m anesim.compiler.apple [SHARED_DIR]
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from anesim.chips import load_chip
from anesim.compiler.api import compile_graph
from anesim.compiler.frontends.builder import Builder
from anesim.compiler.graph.graph import Graph, TensorInfo
from anesim.compiler.backend.h13 import ADDRESS_FIELDS, program_fields
from anesim.compiler.frontends.netplist import load_netplist
from anesim.compiler.result import CompileResult

H13_NE_CHANNELS = 16
# sample -> (network description, compiled program); relu and sigmoid have no published plist,
# so their one-layer network is rebuilt from the program's own tensor shapes.
SAMPLES: dict[str, tuple[str | None, str, str | None]] = {
    "conv": ("simple_conv.plist", "conv.hwx", None),
    "gemm": ("simple_gemm.plist", "gemm.hwx", None),
    "sum": ("plists_sum.plist", "sum.hwx", None),
    "concat": ("simple_concat.plist", "concat.hwx", None),
    "relu": (None, "relu.hwx", "relu"),
    "sigmoid": (None, "sigmoid.hwx", "sigmoid"),
}
# Differences with a known cause (field-name pattern -> reason); docs/compiler.md explains them.
KNOWN: list[tuple[str, str]] = [
    (r"^L2\.(Source|Source2|ConvResult)RowStride|^L2\.(Source2Base|ResultBase)",
     "Apple pads L2 row strides that are a multiple of 64 granules (bank-conflict optimizer, "
     "guide ch. 21); its cost vector is not published, so anesim keeps the unpadded stride"),
    (r"^L2\.(Source|Result)Cfg\.AliasPlanar",
     "the second task of the concat clears the planar alias flags; the rule is not known"),
]


@dataclass(frozen=True)
class FieldDiff:
    """One field whose value differs."""

    task: int
    field: str
    apple: int
    ours: int
    reason: str = ""


@dataclass
class SampleComparison:
    """The outcome for one sample."""

    name: str
    apple_tasks: int
    our_tasks: int
    fields_compared: int = 0
    diffs: list[FieldDiff] = field(default_factory=list)

    @property
    def unexplained(self) -> list[FieldDiff]:
        """Differences without a known reason."""
        return [d for d in self.diffs if not d.reason]


def _reason(name: str) -> str:
    for pattern, reason in KNOWN:
        if re.search(pattern, name):
            return reason
    return ""


def network_for(shared: Path, name: str, apple: object) -> Graph:
    """The sample's network, with the input shapes of Apple's program."""
    plist, _, neuron = SAMPLES[name]
    tensors = apple.tensors  # type: ignore[attr-defined]
    if plist is None:
        b = Builder(name)
        x = next(t for t in tensors.values() if t.role == "input")
        out = next(t for t in tensors.values() if t.role == "output")
        b.output(b.op(neuron, [b.input(x.name, x.shape)], name=out.name))  # type: ignore[arg-type]
        return b.build()
    graph = load_netplist(shared / "hwx" / "tinygrad" / plist)
    # The published gemm.hwx was compiled for batch 1 although the plist now says 512: follow the
    # program's own tensors so the two describe the same network.
    for tname, spec in tensors.items():
        key = tname.split("@")[0]
        if key in graph.inputs and graph.inputs[key].shape != spec.shape:
            graph.inputs[key] = graph.values[key] = TensorInfo(key, spec.shape)
    for node in graph.nodes:
        src = graph.values[node.inputs[0]].shape
        out = graph.values[node.output].shape
        if out[0] != src[0]:
            graph.values[node.output] = TensorInfo(node.output, (src[0],) + out[1:])
    return graph


def compare(shared: Path, name: str) -> tuple[SampleComparison, CompileResult]:
    """Compile one sample's network for H13 and compare every task's fields with Apple's."""
    from anesim.hwx import load as load_decoded
    from anesim.hwx.to_program import build_program

    _, hwx, _ = SAMPLES[name]
    apple = build_program(load_decoded(shared / "hwx" / "tinygrad" / hwx))
    result = compile_graph(network_for(shared, name, apple), load_chip("m1"), cores=H13_NE_CHANNELS)
    ours = program_fields(result.program, [i.kernel_offset for i in result.task_info])
    out = SampleComparison(name, len(apple.tasks), len(result.program.tasks))
    for index, (theirs, mine) in enumerate(zip(apple.tasks, ours)):
        for key, value in theirs.fields.items():
            if key.startswith(ADDRESS_FIELDS):
                continue
            out.fields_compared += 1
            got = mine.get(key, 0)
            if got != value:
                out.diffs.append(FieldDiff(index, key, value, got, _reason(key)))
    return out, result


def main(argv: list[str] | None = None) -> int:
    """Print the comparison for every sample."""
    args = sys.argv[1:] if argv is None else argv
    shared = Path(args[0]) if args else Path(__file__).resolve().parents[3] / "shared"
    for name in SAMPLES:
        cmp, _ = compare(shared, name)
        print(f"{name}: {cmp.apple_tasks} task(s) from Apple, {cmp.our_tasks} compiled; "
              f"{cmp.fields_compared} fields compared, {len(cmp.diffs)} differ "
              f"({len(cmp.unexplained)} without a known reason)")
        for d in cmp.diffs:
            print(f"  task {d.task} {d.field}: Apple {d.apple}, anesim {d.ours}"
                  + (f" - {d.reason}" if d.reason else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
