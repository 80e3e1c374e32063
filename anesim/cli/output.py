"""Plain-text tables and JSON for the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> None:
    """Print rows under headers in aligned columns; column indices in ``right`` align right."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(out).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]
    sys.stdout.write("\n".join(lines) + "\n")


def print_json(obj: Any) -> None:
    """Print an object as indented JSON."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def si(value: float, unit: str, digits: int = 3) -> str:
    """Format a value with an SI prefix, e.g. si(5.5e12, 'FLOP/s') -> '5.50 TFLOP/s'."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"
