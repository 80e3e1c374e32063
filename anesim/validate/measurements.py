"""Measurement files: read a CSV in the shared calibration table's columns and curate it.

The columns are those of ``measurements/m1-m5-calibration.csv``: ``chip``, ``workload``,
``shape``, ``metric`` and ``value`` are required; ``source_repo_or_url``,
``source_path_or_section``, ``provenance`` and ``notes`` may be absent (read as empty). Every
row becomes a trace row, mapped or excluded with a reason; only an unreadable file or a missing
required column raises.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from anesim.errors import InputError
from anesim.validate.curation.engine import Curator
from anesim.validate.traces import TraceRow

REQUIRED_COLUMNS = ("chip", "workload", "shape", "metric", "value")
OPTIONAL_COLUMNS = ("source_repo_or_url", "source_path_or_section", "provenance", "notes")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a measurement CSV, as column -> text."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("no such measurement file", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read measurement file: {exc}", file=file) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in reader.fieldnames or []]
        for column in REQUIRED_COLUMNS:
            if column not in header:
                raise InputError("measurement file lacks a required column", file=file, where=f"column '{column}'",
                                 expected="the columns " + ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS),
                                 found=", ".join(header) or "no header")
        reader.fieldnames = header
        return [{k: v if isinstance(v, str) else "" for k, v in row.items() if isinstance(k, str)} for row in reader]
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=file) from None


def curate_rows(rows: Iterable[dict[str, str]], curator: Curator | None = None) -> list[TraceRow]:
    """Trace rows of measurement rows, by the curation table."""
    return [TraceRow(**rec) for rec in (curator or Curator()).curate(rows)]


def load_measurements(path: str | Path, curator: Curator | None = None) -> list[TraceRow]:
    """Every row of a measurement file as a trace row, mapped or excluded."""
    return curate_rows(read_rows(path), curator)


def exclusion_counts(rows: Sequence[TraceRow]) -> dict[str, int]:
    """Excluded rows per reason, most frequent first."""
    return dict(Counter(r.reason or "?" for r in rows if not r.mapped).most_common())
