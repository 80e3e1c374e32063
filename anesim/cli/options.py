"""Options shared by the commands that read programs."""

from __future__ import annotations

import argparse


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-memory`` (the memory limit on what one input file may ask for)."""
    parser.add_argument("--max-memory", metavar="BYTES",
                        help="refuse inputs whose tensors and buffers need more than BYTES (512M, 2GiB, ...; "
                             "default: the chip's DRAM window, 3.5 GiB, or $ANESIM_MAX_MEMORY); "
                             "the work and step limits scale with it (docs/limits.md)")
