"""Options shared by the commands that read programs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def whole_number(text: str) -> int:
    """An argparse type: a whole number, 0 or more (a count, or a seed numpy takes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, found {value}")
    return value


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-memory`` (the memory limit on what one input file may ask for)."""
    parser.add_argument("--max-memory", metavar="BYTES",
                        help="refuse inputs whose tensors and buffers need more than BYTES (512M, 2GiB, ...; "
                             "default: the chip's DRAM window, 3.5 GiB, or $ANESIM_MAX_MEMORY); "
                             "the work and step limits scale with it (docs/limits.md)")


def add_param_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--param NAME=VALUE`` (repeatable): a program file's ``params:``."""
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter the program file declares under params: (batch, seq, ...); "
                             "repeatable (docs/sweep.md lists the shipped programs' params)")


def program_params(items: list[str], file: str) -> dict[str, Any] | None:
    """The ``--param`` items as a program file's params (None without any); refused for other files."""
    if not items:
        return None
    from anesim.errors import InputError
    from anesim.sweep.points import parse_assignments

    if Path(file).suffix.lower() not in (".yaml", ".yml"):
        raise InputError("--param sets a program file's params; other model formats and compiled programs have none",
                         file=file, expected="a program YAML", found=", ".join(items))
    return {key: values[0] for key, values in parse_assignments(items, "--param", multi=False).items()}


def refuse_program_options(file: str, *, sidecar: str | None, approximate: bool = False) -> None:
    """Refuse the options that only act on a compiled program (.hwx, raw buffer) given with a model:
    a model has no sidecar, and nothing in it asks for a guess."""
    from anesim.errors import InputError

    if sidecar is not None:
        raise InputError("--sidecar describes a raw command buffer's tensors; a model file has its own",
                         file=file, expected="no --sidecar with a model", found=f"--sidecar {sidecar}")
    if approximate:
        raise InputError("--approximate runs a compiled program whose registers ask for a mode no source "
                         "describes; a model compiled by anesim asks for none", file=file,
                         expected="no --approximate with a model", found="--approximate")
