"""The ``anesim`` command: one subcommand per module listed in COMMAND_MODULES."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from anesim import __version__
from anesim.errors import AnesimError

# Each module exposes register(subparsers), which adds its parser and sets func(args) -> int.
COMMAND_MODULES = ["run", "compile", "check", "explain", "disasm", "asm", "chips", "validate", "calibrate",
                   "roofline", "sweep", "compare"]

EXIT_BAD_INPUT = 2
# Commands that read one model or program and end: their process runs without the cyclic
# garbage collector (see console()).
ONE_MODEL_COMMANDS = frozenset({"run", "compile", "explain", "disasm", "asm"})


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other anesim error."""

    def error(self, message: str) -> NoReturn:
        """Print the problem on one line and exit with status 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered, or only the subcommand ``only``.

    Registering a subcommand imports its module and what that imports (the validation set,
    plotting, the compiler); a command that runs needs its own parser only.
    """
    parser = _Parser(
        prog="anesim",
        description="A cycle-approximate simulator of the Apple Neural Engine.",
    )
    parser.add_argument("--version", action="version", version=f"anesim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if only is None or name == only:
            importlib.import_module(f"anesim.cli.{name}").register(subparsers)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, or None (no command, an unknown one, top-level options only).

    The top-level parser has no option that takes a value, so the first word that is not an
    option is the command.
    """
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMAND_MODULES else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input prints one line on stderr and returns exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        from anesim.limits import set_max_memory

        set_max_memory(getattr(args, "max_memory", None))  # this command's own, never a previous one's
        return int(args.func(args) or 0)
    except AnesimError as exc:
        print(f"anesim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, as other Unix tools do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 141
    except OSError as exc:
        # A file the user named could not be read or written.
        target = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"anesim: error: {target}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def console() -> NoReturn:
    """The ``anesim`` program: :func:`main` on the command line, as a process of its own."""
    argv = sys.argv[1:]
    if _command(argv) in ONE_MODEL_COMMANDS:
        # One model, then the process ends: the collector would only walk the compiled program
        # and the simulation's objects again and again between the phases that pause it (a tenth
        # of a large model's run) for the few reference cycles they leave, which the end frees.
        # Commands that go through many models in turn keep it, or their memory would grow.
        gc.disable()
    status = main(argv)
    # The process ends now: the interpreter's last collection would walk every object left (a
    # large model's compiled program and plans: a tenth of a second) to free what the end frees.
    gc.freeze()
    sys.exit(status)
