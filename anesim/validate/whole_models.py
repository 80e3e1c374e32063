"""Whole-model figures published for Apple chips, beside anesim's predictions: external checks.

The figures live in ``validation/published_whole_models.yaml`` (a path and line under the shared
reference folder for each). Nothing here feeds calibration: each figure is a test of the
shipped constants (docs/whole-models.md §3). A figure with a ``band`` states the range of
anesim / published its comparison is held to; the others are reported only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anesim.datafiles import shipped_dir
from anesim.errors import InputError, ProgramError

QUANTITIES = ("latency_s", "energy_j", "speedup")
FIELDS = ("program", "chip", "quantity", "value", "shown", "source", "runs", "params", "baseline", "note",
          "band", "test")
PUBLISHED_FILE = "published_whole_models.yaml"
# (program, chip, params as sorted pairs) -> {"latency_s": ..., "energy_j": ...}
Predictor = Callable[[str, str, tuple[tuple[str, Any], ...]], dict[str, float]]


@dataclass(frozen=True)
class Published:
    """A whole-model figure from the shared reference folder (path:line under it)."""

    program: str
    chip: str
    quantity: str  # latency_s, energy_j, or speedup (baseline's latency / program's latency)
    value: float  # in seconds, joules, or a ratio
    shown: str  # the figure as the source prints it
    source: str
    runs: int = 1  # program runs the figure covers
    params: dict[str, Any] = field(default_factory=dict)  # the program's params for this figure
    baseline: str = ""
    note: str = ""
    band: tuple[float, float] | None = None  # anesim / published the whole-model test accepts
    test: bool = True  # checked by the default test suite (false: too slow to run there)

    def label(self) -> str:
        """The program with the params the figure sets: ``sd_unet (batch=2, ...)``."""
        if not self.params:
            return self.program
        return f"{self.program} (" + ", ".join(f"{k}={v:g}" for k, v in self.params.items()) + ")"


def published_file() -> Path:
    """The shipped file of published whole-model figures."""
    return shipped_dir("validation", "_validationdata") / PUBLISHED_FILE


def load_published(path: Path | None = None) -> list[Published]:
    """The published whole-model figures, each checked for its keys, quantity, value and band."""
    from anesim.yamlfile import read_yaml

    file = path or published_file()
    doc = read_yaml(file, ProgramError, "published whole-model figures")
    entries = doc.get("figures") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ProgramError("no list of figures", file=file, where="key 'figures'", expected="a list")
    out = []
    for i, entry in enumerate(entries):
        where = f"key 'figures[{i}]'"
        required = {"program", "chip", "quantity", "value", "source"}  # (every figure cites its line)
        if not isinstance(entry, dict) or set(entry) - set(FIELDS) or not required <= set(entry):
            raise ProgramError("a figure needs program, chip, quantity, value and source, and no other keys than "
                               + ", ".join(FIELDS), file=file, where=where, found=repr(entry)[:120])
        try:
            value = float(entry["value"])
            band = entry.get("band")
            band = (float(band[0]), float(band[1])) if band else None
        except (TypeError, ValueError, IndexError, KeyError):
            raise ProgramError("value and band must be numbers", file=file, where=where) from None
        if entry["quantity"] not in QUANTITIES or not value > 0 or (band and not 0 < band[0] < 1 < band[1]):
            raise ProgramError("a quantity of " + ", ".join(QUANTITIES) + ", a positive value and a band holding 1",
                               file=file, where=where, found=f"{entry['quantity']} {value} {band}")
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise ProgramError("params must be a mapping", file=file, where=f"{where}.params", found=repr(params))
        runs = entry.get("runs", 1)
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ProgramError("runs must be a whole number, 1 or more", file=file, where=f"{where}.runs",
                               found=repr(runs))
        if entry["quantity"] == "speedup" and not entry.get("baseline"):
            raise ProgramError("a speedup needs the baseline program it is over", file=file,
                               where=f"{where}.baseline")
        out.append(Published(**{**entry, "value": value, "band": band, "params": params,
                                "shown": str(entry.get("shown", entry["value"])),
                                "source": str(entry["source"])}))
    return out


def published_ratio(p: Published, pred: Predictor) -> tuple[float, float, str]:
    """anesim / published for one figure, anesim's figure, and that figure as shown in the table."""
    r = pred(p.program, p.chip, tuple(sorted(p.params.items())))
    if p.quantity == "latency_s":
        got = p.runs * r["latency_s"]
        shown = f"{got * 1e3:.4g} ms" + (f" ({p.runs} x {r['latency_s'] * 1e3:.4g})" if p.runs > 1 else "")
    elif p.quantity == "energy_j":
        got = p.runs * r["energy_j"]
        shown = f"{got * 1e3:.4g} mJ"
    else:
        got = pred(p.baseline, p.chip, ())["latency_s"] / r["latency_s"]
        shown = f"{got:.3g}x"
    return got / p.value, got, shown


def programs_dir() -> Path:
    """The shipped programs: the checkout's programs/ folder, or their copy in the wheel."""
    return shipped_dir("programs", "_programdata")


def program_predictor(programs: Path) -> Predictor:
    """Compile and time (timing only) a program of the ``programs`` folder, each once."""
    from anesim.chips import load_chip
    from anesim.compiler import compile_file
    from anesim.timing import simulate

    cache: dict[tuple[str, str, tuple[tuple[str, Any], ...]], dict[str, float]] = {}

    def predict(program: str, chip: str, params: tuple[tuple[str, Any], ...]) -> dict[str, float]:
        if (program, chip, params) not in cache:
            path = programs / f"{program}.yaml"
            if not path.is_file():
                raise InputError(f"no program '{program}' for a whole-model figure", file=path,
                                 expected="the programs/ folder of a checkout (--programs DIR)")
            config = load_chip(chip)
            result = simulate(compile_file(path, config, params=dict(params) or None), config, trace=False)
            cache[program, chip, params] = {"latency_s": result.latency_s, "energy_j": result.energy_j}
        return cache[program, chip, params]

    return predict


def compare(figures: list[Published], pred: Predictor,
            progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Every figure beside anesim's prediction: one plain record each (for tables and JSON)."""
    rows = []
    for i, p in enumerate(figures):
        if progress is not None:
            progress(i, len(figures))
        ratio, got, shown = published_ratio(p, pred)
        rows.append({"program": p.program, "params": dict(p.params), "label": p.label(), "chip": p.chip,
                     "quantity": p.quantity,
                     "published": p.value, "published_shown": p.shown, "source": p.source, "runs": p.runs,
                     "anesim": got, "anesim_shown": shown, "ratio": ratio,
                     "band": list(p.band) if p.band else None,
                     "in_band": None if p.band is None else p.band[0] <= ratio <= p.band[1], "note": p.note})
    return rows
