"""``anesim compile``: lower a model (program YAML, ONNX, Core ML, netplist) for a chip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anesim.cli.options import add_limit_options, add_param_option, program_params, whole_number
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
                   help="write the program: OUT.hwx = an H13 .hwx container; OUT.bin = an H13 command buffer plus "
                        "OUT.sidecar.json (H13 chips); "
                        "OUT.json = the program model (every chip)")
    p.add_argument("--json", action="store_true", help="print the summary and task table as JSON")
    p.add_argument("--tasks", type=whole_number, default=60, metavar="N", help="show at most N task rows (default 60)")
    p.add_argument("--weights", action="store_true",
                   help="with -o OUT.json: include the kernel weights in the program model")
    add_param_option(p)
    add_limit_options(p)
    p.set_defaults(func=run)


# -o suffixes written as H13 command streams (.hwx: a container; the others a raw buffer and its
# sidecar), and the one written as the program model
ENCODED_SUFFIXES = (".hwx", ".bin", ".anec")
MODEL_SUFFIX = ".json"


def _write(args: argparse.Namespace, result: object, out: Path, params: dict | None) -> str:
    from anesim.compiler.backend.program_json import program_to_dict
    from anesim.errors import UnsupportedError

    program = result.program  # type: ignore[attr-defined]
    suffix = out.suffix.lower()
    if suffix == ".hwx":
        if program.generation != "H13":
            raise UnsupportedError(f"the .hwx container is written for H13 only, not {program.generation} "
                                   "(no task-descriptor encoder for it)", file=out,
                                   expected="--chip m1 (or another H13 chip), or OUT.json (the program model)")
        from anesim.compiler import compile_file
        from anesim.compiler.backend.h13_hwx import write_hwx

        # like the command buffer, the container keeps every intermediate in DRAM
        hwx_result = compile_file(args.model, args.chip, chain=False, params=params)
        data = write_hwx(hwx_result)
        out.write_bytes(data)
        return (f"wrote {out} ({len(data)} bytes, {len(hwx_result.program.tasks)} H13 tasks, intermediates in DRAM); "
                f"read it back with: anesim disasm {out}")
    if suffix in ENCODED_SUFFIXES:  # (.bin, .anec: a raw command buffer)
        from anesim.compiler import compile_file
        from anesim.compiler.backend.h13_emit import encode_raw

        # the command buffer keeps every intermediate in DRAM: pool residency has no H13 encoding yet
        raw_result = compile_file(args.model, args.chip, chain=False, params=params)
        data, sidecar = encode_raw(raw_result)
        out.write_bytes(data)
        side = out.with_name(out.stem + ".sidecar.json")
        side.write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
        return (f"wrote {out} ({len(data)} bytes, {len(raw_result.program.tasks)} H13 tasks, intermediates in DRAM) "
                f"and {side}; read it back with: anesim disasm {out} --sidecar {side}")
    out.write_text(json.dumps(program_to_dict(program, args.weights), indent=1) + "\n", encoding="utf-8")
    note = "" if program.generation == "H13" else f" ({program.generation}: no task-descriptor encoder, the program model instead)"
    return f"wrote {out}: the program model as JSON, {len(program.tasks)} tasks{note}"


def run(args: argparse.Namespace) -> int:
    """Compile and report."""
    from anesim.compiler import compile_file

    from anesim.errors import InputError

    if args.output and Path(args.output).suffix.lower() not in (*ENCODED_SUFFIXES, MODEL_SUFFIX):
        # (checked before compiling: any other name would get JSON it does not announce)
        raise InputError("-o names what to write by its suffix", file=args.output,
                         expected="OUT.hwx, OUT.bin or OUT.anec (an H13 command stream) or OUT.json (the program model)",
                         found=Path(args.output).suffix or "no suffix")
    if args.weights and (not args.output or Path(args.output).suffix.lower() in ENCODED_SUFFIXES):
        raise InputError("--weights adds the kernel weights to the program model written with -o OUT.json",
                         expected="-o OUT.json", found=f"-o {args.output}" if args.output else "no -o")
    params = program_params(args.param, args.model)
    result = compile_file(args.model, args.chip, params=params)
    message = _write(args, result, Path(args.output), params) if args.output else None
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
