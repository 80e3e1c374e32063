"""The sweep's table: CSV always, Parquet when pyarrow is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from anesim.sweep.simulate import COLUMNS


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """The standard columns, with the override columns (one per swept or fixed key) after 'chip'."""
    extra = []
    for row in rows:
        for key in row:
            if key not in COLUMNS and key not in extra:
                extra.append(key)
    return COLUMNS[:2] + extra + COLUMNS[2:]


def _parquet_value(value: Any) -> Any:
    """``value`` as a parquet column can hold it: an integer past 64 bits (the engine cycles of a
    chip file's 1e30 Hz clock) as a float, as the CSV's reader would read it."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(1 << 63) <= value < 1 << 63:
        return float(value)
    return value


def write_tables(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write ``sweep.csv`` (and ``sweep.parquet`` if pyarrow is importable); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    cols = columns_of(rows)
    csv_path = out / "sweep.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in cols})
    written = [csv_path]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    table = pa.Table.from_pylist([{k: _parquet_value(row.get(k)) for k in cols} for row in rows])
    pq.write_table(table, out / "sweep.parquet")
    written.append(out / "sweep.parquet")
    return written
