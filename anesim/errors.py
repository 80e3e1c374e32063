"""The one family of errors anesim reports to its users.

Every error a user can cause (a bad file, a bad argument, an unsupported operation) is an
``AnesimError``. Its message names where the problem is (file, key path or byte offset), what
was expected and what was found, so the CLI can print it as one line.
"""

from __future__ import annotations

from os import PathLike
from typing import Any


class AnesimError(Exception):
    """Base class of every error anesim raises for bad input."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | PathLike[str] | None = None,
        where: str | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.where = where
        self.expected = expected
        self.found = found
        super().__init__(self.message())

    def message(self) -> str:
        """Render the error as one line: file: where: problem (expected …, found …)."""
        parts = [p for p in (self.file, self.where) if p]
        text = self.problem
        details = []
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if self.found is not None:
            details.append(f"found {self.found}")
        if details:
            text += f" ({', '.join(details)})"
        one_line = ": ".join(parts + [text])
        return " ".join(one_line.split())


class ConfigError(AnesimError):
    """A chip configuration file is malformed or inconsistent."""


class FormatError(AnesimError):
    """A binary program (.hwx or raw command buffer) cannot be decoded."""


class ProgramError(AnesimError):
    """A program file or a decoded program is malformed or inconsistent."""


class InputError(AnesimError):
    """A user-supplied tensor or argument does not fit what the program expects."""


class UnsupportedError(AnesimError):
    """The input is well formed but asks for something anesim (or the engine) cannot do."""


class CompileError(AnesimError):
    """A model cannot be lowered onto the chosen chip."""
