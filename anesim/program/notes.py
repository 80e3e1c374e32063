"""What decoding or lowering could not reproduce exactly, as typed notes, and the policy on them.

A :class:`Note` records one register field whose value anesim cannot execute as the engine
would. ``kind`` says what is at stake: ``"value"`` notes can change computed numbers (a mode
no document describes, a kernel format whose arithmetic is unknown), ``"timing"`` notes only
the modelled time. The policy (docs/functional.md, "Faithful or refused"): a value note is an
error unless the user asks for an approximation; a timing note is a warning, and an error too
when ``ANESIM_STRICT=1`` (for CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from anesim.errors import AnesimError

NoteKind = Literal["value", "timing"]
STRICT_ENV = "ANESIM_STRICT"


class ApproximationError(AnesimError):
    """A program asks for something anesim would have to guess (see :mod:`anesim.program.notes`)."""


@dataclass(frozen=True)
class Note:
    """One register field (or table word) anesim cannot execute faithfully."""

    kind: NoteKind
    message: str
    task: int | None = None
    field: str = ""
    value: int | str | None = None

    def where(self) -> str:
        """'task N: FIELD = VALUE' (the parts that are known)."""
        parts = []
        if self.task is not None:
            parts.append(f"task {self.task}")
        if self.field:
            value = "" if self.value is None else f" = {_show(self.value)}"
            parts.append(f"{self.field}{value}")
        return ": ".join(parts)

    def render(self) -> str:
        """The note as one line: 'task N: FIELD = VALUE: message'."""
        where = self.where()
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, object]:
        """The note as JSON-ready data."""
        return {"kind": self.kind, "task": self.task, "field": self.field,
                "value": None if self.value is None else _show(self.value), "message": self.message,
                "text": self.render()}


def _show(value: int | str) -> str:
    return f"{value:#x}" if isinstance(value, int) and value > 9 else str(value)


def strict_from_env() -> bool:
    """Whether ANESIM_STRICT=1 asks for timing notes to be errors too."""
    return os.environ.get(STRICT_ENV, "").strip() == "1"


def refused(notes: Iterable[Note], approximate: bool = False, strict: bool | None = None) -> list[Note]:
    """The notes the policy turns into errors."""
    strict = strict_from_env() if strict is None else strict
    out = []
    for note in notes:
        if note.kind == "value" and not approximate:
            out.append(note)
        elif note.kind == "timing" and strict:
            out.append(note)
    return out


def enforce(notes: Iterable[Note], file: str | None, approximate: bool = False, strict: bool | None = None) -> None:
    """Raise an ApproximationError naming the first note the policy refuses."""
    bad = refused(list(notes), approximate, strict)
    if not bad:
        return
    first = bad[0]
    more = f" ({len(bad) - 1} more)" if len(bad) > 1 else ""
    hint = ("; --approximate (approximate=True) runs it anyway" if first.kind == "value"
            else f"; {STRICT_ENV}=1 makes timing notes errors")
    raise ApproximationError(first.render() + more + hint, file=file or None)


def warning_lines(notes: Iterable[Note], file: str | None) -> list[str]:
    """One 'FILE: task N: ...' line per note."""
    prefix = f"{file}: " if file else ""
    return [prefix + n.render() for n in notes]
