"""``anesim disasm``: list a compiled ANE program task by task, or print its full JSON form."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anesim.cli.options import add_limit_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``disasm`` subcommand."""
    parser = subparsers.add_parser(
        "disasm", help="disassemble an .hwx program or a raw command buffer",
        description="Print a readable listing (task by task, group by group, register, field, value, "
                    "meaning), or with --json the full decoded program that 'anesim asm' encodes back.")
    parser.add_argument("file", help="an .hwx file, or a raw H13 command buffer (with --sidecar or --raw)")
    parser.add_argument("--json", action="store_true", help="print the decoded program as JSON")
    parser.add_argument("--sidecar", metavar="JSON", help="sidecar describing a raw command buffer")
    parser.add_argument("--raw", action="store_true", help="treat FILE as a raw H13 command buffer")
    parser.add_argument("--no-summary", action="store_true", help="with --json: leave out the informational summary")
    parser.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of standard output")
    add_limit_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Decode the file and print its listing or JSON form."""
    from anesim import hwx

    decoded = hwx.load(args.file, sidecar=args.sidecar, raw_buffer=args.raw)
    if args.json:
        text = json.dumps(hwx.to_json(decoded, summary=not args.no_summary), indent=1) + "\n"
    else:
        text = hwx.listing(decoded)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
