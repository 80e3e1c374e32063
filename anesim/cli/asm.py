"""``anesim asm``: encode the JSON form printed by ``anesim disasm --json`` back into a program."""

from __future__ import annotations

import argparse
from pathlib import Path

from anesim.cli.options import add_limit_options
from anesim.errors import ProgramError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``asm`` subcommand."""
    parser = subparsers.add_parser(
        "asm", help="encode a decoded program (JSON) back into an .hwx or raw buffer",
        description="Rebuild the program bytes from 'anesim disasm --json' output; unedited JSON gives "
                    "back the original file byte for byte, edited register fields change the output.")
    parser.add_argument("file", help="JSON written by 'anesim disasm --json'")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the program file to write")
    add_limit_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Encode the JSON program and write it."""
    from anesim.hwx.encode import encode_doc

    from anesim.jsonfile import read_json

    doc = read_json(args.file, ProgramError, "program JSON")
    data = encode_doc(doc, args.file)
    Path(args.output).write_bytes(data)
    return 0
