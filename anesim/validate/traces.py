"""The project's measured-trace format: one YAML file per chip family in ``validation/``.

Each file holds every row of the shared measurement table that belongs to that family, in the
table's order. A row keeps what the source said (chip label, source, section, provenance, how
the source measured, workload, shape, metric, value as printed, units, notes) and adds either a
mapping (workload family, parameters, measurement method, the quantity compared and its value
in SI units, the conversion used) or an exclusion (a reason code and the reason in words).
docs/validation.md describes every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from anesim.datafiles import shipped_dir
from anesim.errors import ConfigError

SCHEMA = "anesim-trace/1"
TRACE_FILES = ("m1.yaml", "m5.yaml")
ACCURACY_FILE = "accuracy.json"

# What a mapped row compares, and the SI unit of its ``measured`` value.
QUANTITIES = {
    "latency": "s",  # wall time of the method (per call, per iteration or per layer)
    "flop_rate": "FLOP/s",  # converts to latency through the workload's FLOP count
    "byte_rate": "B/s",  # converts to latency through the bytes the source counted
    "token_rate": "token/s",  # converts to latency through the batch size
    "ratio": "1",  # a ratio of two simulated times or rates
    "bytes": "B",  # DRAM bytes per dispatch
    "power": "W",  # mean ANE-rail power over a back-to-back loop (the energy model)
}


@dataclass(frozen=True)
class TraceRow:
    """One measured row: what the source said, and how anesim validates it (or why not)."""

    id: str
    row: int
    chip: str
    target: str | None
    source: str
    section: str
    provenance: str
    source_method: str
    workload: str
    shape: str
    metric: str
    value: str
    units: str
    notes: str
    status: str  # "mapped" or "excluded"
    attribution: str | None = None
    family: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    quantity: str | None = None
    measured: float | None = None
    conversion: str | None = None
    restates: str | None = None
    reason: str | None = None
    why: str | None = None

    @property
    def mapped(self) -> bool:
        """True when the row is validated against a simulation."""
        return self.status == "mapped"


_FIELDS = set(TraceRow.__dataclass_fields__)


def trace_dir() -> Path:
    """The folder of trace files shipped with anesim: the checkout's ``validation/``, or the wheel's copy."""
    folder = shipped_dir("validation", "_validationdata")
    if not (folder / TRACE_FILES[0]).is_file():
        raise ConfigError("the measured traces are not installed", file=folder / TRACE_FILES[0],
                          expected="the trace files shipped with anesim")
    return folder


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_trace_file(path: Path) -> dict[str, Any]:
    """Read one trace file and check its schema marker."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read trace file: {exc}", file=path) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError("not an anesim trace file", file=path, expected=f"schema: {SCHEMA}")
    return data


def rows_from(data: dict[str, Any], path: Path) -> list[TraceRow]:
    """The rows of a parsed trace file as TraceRow objects."""
    rows = []
    for i, item in enumerate(data.get("rows") or []):
        unknown = set(item) - _FIELDS
        if unknown:
            raise ConfigError("unknown trace field", file=path, where=f"rows[{i}]", found=sorted(unknown))
        rows.append(TraceRow(**item))
    return rows


@lru_cache(maxsize=4)
def _load(folder: str) -> tuple[TraceRow, ...]:
    rows: list[TraceRow] = []
    for name in TRACE_FILES:
        path = Path(folder) / name
        rows.extend(rows_from(read_trace_file(path), path))
    return tuple(rows)


def load_traces(folder: str | Path | None = None) -> list[TraceRow]:
    """Every trace row of every family file, in table order within each file."""
    return list(_load(str(folder or trace_dir())))
