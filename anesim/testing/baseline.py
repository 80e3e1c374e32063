"""The latency baseline file: one entry per model and chip, rewritten on request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anesim import __version__

BASELINE_VERSION = 1
DEFAULT_TOLERANCE = 0.10  # latency may exceed its baseline by this fraction before a test fails


@dataclass
class Baseline:
    """Predicted latencies by (model, chip), read from a JSON file; ``update`` records instead of checking.

    The file::

        {"version": 1, "tolerance": 0.1,
         "entries": {"tiny_cnn@m1": {"model": "tiny_cnn", "chip": "m1", "latency_s": 1.2e-05,
                                     "engine_cycles": 9876, "anesim": "0.1.0"}}}
    """

    path: Path
    update: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    recorded: int = 0

    @staticmethod
    def load(path: str | Path, *, update: bool = False, tolerance: float | None = None) -> Baseline:
        """The baseline at ``path`` (empty if the file does not exist yet)."""
        p = Path(path)
        data: dict[str, Any] = {}
        if p.exists():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AssertionError(f"cannot read the latency baseline {p}: {exc}") from None
            if not isinstance(data, dict) or not isinstance(data.get("entries", {}), dict):
                raise AssertionError(f"latency baseline {p}: expected an object with an 'entries' mapping")
        tol = tolerance if tolerance is not None else float(data.get("tolerance", DEFAULT_TOLERANCE))
        return Baseline(p, update, tol, dict(data.get("entries", {})))

    @staticmethod
    def key(model: str, chip: str) -> str:
        """The entry key of a model on a chip."""
        return f"{model}@{chip}"

    def latency_s(self, model: str, chip: str) -> float | None:
        """The recorded latency, or None."""
        entry = self.entries.get(self.key(model, chip))
        return None if entry is None else float(entry["latency_s"])

    def record(self, model: str, chip: str, timing: Any) -> None:
        """Record a run's latency (written by :meth:`save`)."""
        self.entries[self.key(model, chip)] = {
            "model": model, "chip": chip, "latency_s": float(timing.latency_s),
            "engine_cycles": int(timing.engine_cycles), "anesim": __version__,
        }
        self.recorded += 1

    def save(self) -> None:
        """Write the file, entries sorted, so that its diff shows what changed."""
        doc = {"version": BASELINE_VERSION, "tolerance": self.tolerance,
               "entries": {k: self.entries[k] for k in sorted(self.entries)}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
