"""``anesim compile``: lower a model (program YAML, ONNX, Core ML, netplist) for a chip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anesim.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compile`` subcommand."""
    p = subparsers.add_parser(
        "compile", help="compile a model for a chip and report tasks, segments, cores and passes",
        description="Lower MODEL (programs/*.yaml, .onnx, .mlpackage/.mlmodel, an ANE .plist netplist) "
                    "to task descriptors for the chosen chip and print what the compiler decided.")
    p.add_argument("model", help="the model file")
    p.add_argument("--chip", default="m1", help="chip name, alias or YAML path (default: m1)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the program: .hwx for H13 when the encoder supports it, else program-model JSON")
    p.add_argument("--json", action="store_true", help="print the summary and task table as JSON")
    p.add_argument("--tasks", type=int, default=60, metavar="N", help="show at most N task rows (default 60)")
    p.add_argument("--weights", action="store_true", help="include kernel weights in JSON output")
    p.set_defaults(func=run)


def _write(result: object, out: Path, weights: bool) -> str:
    from anesim.compiler.program_json import program_to_dict

    program = result.program  # type: ignore[attr-defined]
    if out.suffix.lower() == ".hwx":
        from anesim.compiler.hwx_emit import encode_compiled  # optional: H13 register emission

        data = encode_compiled(result)
        out.write_bytes(data)
        return f"wrote {out} ({len(data)} bytes, {len(program.tasks)} tasks, {program.generation})"
    out.write_text(json.dumps(program_to_dict(program, weights), indent=1) + "\n", encoding="utf-8")
    reason = ("" if out.suffix.lower() == ".json"
              else " (program-model JSON; name the file .hwx to request an H13 container)")
    return f"wrote {out}: the program model as JSON, {len(program.tasks)} tasks{reason}"


def run(args: argparse.Namespace) -> int:
    """Compile and report."""
    from anesim.compiler import compile_file

    result = compile_file(args.model, args.chip)
    message = _write(result, Path(args.output), args.weights) if args.output else None
    if args.json:
        data = result.summary()
        data["tasks_table"] = result.task_rows()
        if message:
            data["wrote"] = message
        print_json(data)
        return 0
    print(result.report(max_tasks=args.tasks))
    if message:
        print(message)
    return 0
