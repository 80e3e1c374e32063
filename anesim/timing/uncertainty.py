"""Prediction intervals for chips without calibration rows, from the cross-validation error.

``chips/model/uncertainty.yaml`` is written by ``anesim validate --cross-validate --write``. It
holds quantiles of simulated / measured over the out-of-sample points of two kinds of fold:

- ``same_generation``: leave-one-chip-out, for a chip whose generation has a calibration chip
  (an M1 Pro, an M5 Max, an A14);
- ``other_generation``: leave-one-family-out (fit on the M1 family, predict the M5 family and
  back), for every other chip (M2-M4, the A-series outside H13/H17).

A latency L predicted with ratio quantiles (lo, hi) gets the range (L / hi, L / lo): the
measured value lies there for the quantile span of held-out points. Energy uses the power
rows' quantiles times the latency ones (the measured energy is measured power x measured
latency), a conservative envelope. A chip with calibration rows gets no range: its figures are
in-sample (docs/validation.md gives their error).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from anesim.chips.loader import normalize_name
from anesim.chips.schema import ChipConfig
from anesim.datafiles import shipped_dir
from anesim.errors import ConfigError
from anesim.yamlfile import read_yaml

SCHEMA = "anesim-uncertainty/1"


def uncertainty_path() -> Path:
    """The shipped uncertainty file."""
    return shipped_dir("chips", "_chipdata") / "model" / "uncertainty.yaml"


@dataclass(frozen=True)
class Interval:
    """Ratio quantiles (simulated / measured) for one kind of prediction."""

    basis: str  # the fold kind the quantiles come from
    latency_ratio: tuple[float, float]
    power_ratio: tuple[float, float] | None
    points: int
    coverage: float  # the quantile span, e.g. 0.8 for the 10th to 90th percentile

    def latency_range_s(self, latency_s: float) -> tuple[float, float]:
        """Where the measured latency is expected to lie."""
        lo, hi = self.latency_ratio
        return latency_s / hi, latency_s / lo

    def energy_range_j(self, energy_j: float) -> tuple[float, float]:
        """Where the measured energy is expected to lie (power and latency spreads multiplied)."""
        lo, hi = self.latency_ratio
        plo, phi = self.power_ratio or (1.0, 1.0)
        return energy_j / (hi * phi), energy_j / (lo * plo)


@lru_cache(maxsize=2)
def _read(path: str) -> dict[str, Any] | None:
    p = Path(path)
    if not p.is_file():
        return None
    data = read_yaml(p, ConfigError, "uncertainty file")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError("not an uncertainty file", file=p, where="key 'schema'", expected=SCHEMA,
                          found=repr(data.get("schema") if isinstance(data, dict) else data))
    return data


def _pair(data: dict[str, Any], key: str, file: str) -> tuple[float, float]:
    value = data.get(key)
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ConfigError("bad ratio quantiles", file=file, where=f"key '{key}'",
                          expected="[low, high] with 0 < low <= high", found=repr(value))
    return float(value[0]), float(value[1])


def interval_for(chip: ChipConfig, path: Path | None = None) -> Interval | None:
    """The interval for a prediction on ``chip``, or None for a calibrated chip (or no file)."""
    file = str(path or uncertainty_path())
    data = _read(file)
    if data is None:
        return None
    calibrated = {normalize_name(n) for n in data.get("calibrated_chips", [])}
    if normalize_name(chip.name) in calibrated:
        return None
    same = chip.identity.generation in set(data.get("calibrated_generations", []))
    kind = "same_generation" if same else "other_generation"
    block = data.get(kind)
    if not isinstance(block, dict):
        raise ConfigError("missing interval", file=file, where=f"key '{kind}'")
    power = _pair(block, "power_ratio", file) if block.get("power_ratio") is not None else None
    return Interval(str(block.get("basis", kind)), _pair(block, "latency_ratio", file), power,
                    int(block.get("points", 0)), float(data.get("coverage", 0.8)))


def is_calibrated(chip: ChipConfig, path: Path | None = None) -> bool | None:
    """True when the chip has its own calibration rows; None when no uncertainty file is shipped."""
    data = _read(str(path or uncertainty_path()))
    if data is None:
        return None
    return normalize_name(chip.name) in {normalize_name(n) for n in data.get("calibrated_chips", [])}
