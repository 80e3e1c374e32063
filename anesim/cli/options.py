"""Options shared by the commands that read programs."""

from __future__ import annotations

import argparse


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
