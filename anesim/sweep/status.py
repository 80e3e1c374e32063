"""How far a chip's predictions are backed by measurements: validated, or predicted and uncalibrated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from anesim.chips.params import Param
from anesim.chips.schema import ChipConfig
from anesim.datafiles import shipped_dir


@dataclass(frozen=True)
class ChipStatus:
    """Whether the chip's figures are validated against measurements, and how many parameters are predicted."""

    validated: bool
    points: int  # measurements the chip is validated against
    median_error_pct: float | None
    predicted_params: int
    total_params: int

    def describe(self) -> str:
        """'validated (109 measurements, median error 12.5 %; …)' or 'predicted, uncalibrated (…)'."""
        if self.validated:
            return (f"validated ({self.points} measurements, median error {self.median_error_pct:.3g} %; "
                    f"{self.predicted_params}/{self.total_params} parameters predicted)")
        return f"predicted, uncalibrated ({self.predicted_params}/{self.total_params} parameters predicted)"


@lru_cache(maxsize=1)
def _accuracy() -> dict[str, Any]:
    """The recorded accuracy per chip (validation/accuracy.json), empty if absent."""
    path = shipped_dir("validation", "_validationdata") / "accuracy.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    chips = data.get("chips", {}) if isinstance(data, dict) else {}
    return chips if isinstance(chips, dict) else {}


def _params(model: Any) -> list[Param]:  # type: ignore[type-arg]
    out: list[Param] = []  # type: ignore[type-arg]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Param):
            out.append(value)
        elif hasattr(type(value), "model_fields"):
            out.extend(_params(value))
    return out


def chip_status(chip: ChipConfig) -> ChipStatus:
    """The chip's status from its parameters' provenance and the recorded validation accuracy."""
    params = _params(chip)
    predicted = sum(p.provenance == "predicted" for p in params)
    entry = _accuracy().get(chip.name)
    points = int(entry.get("n_points", 0)) if isinstance(entry, dict) else 0
    median = entry.get("median_abs_pct_error") if isinstance(entry, dict) else None
    return ChipStatus(points > 0, points, median, predicted, len(params))
