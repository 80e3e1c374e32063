"""Read a chip label as a chip file: by the chip files' own names, aliases, SoC ids and targets,
and by the machine and board identifiers of ``devices.yaml``.

A label is split into lowercase words; the first run of words that spells a chip's name or
alias (``M2 Pro (10-core GPU)``, ``Apple M3 Max``, ``t6000``), SoC id (``T8103``) or compiler
target (``H14``, ``h15g``: the generation's reference chip, whose SoC the generation file names)
picks the chip; a target followed by a marketing tier (``M9 Ultra``) is a chip name no file holds,
not the target. Then a model identifier (``MacBookAir10,1``, ``Mac17_8``) or ANE board type
(``board 64``, ``board type 160``) the shared sources tie to a chip. A label that fits no chip, or
fits several, is left unattributed with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from anesim.chips import all_chips, builtin_chip_dir
from anesim.chips.loader import normalize_name
from anesim.chips.schema import ChipConfig
from anesim.errors import ConfigError
from anesim.yamlfile import read_yaml

DEVICES_FILE = Path(__file__).resolve().parent / "devices.yaml"
# The words a board type may follow in a label (``board 64``, ``board type 64``, ``subtype 64``).
BOARD_WORDS = ("board", "boardtype", "subtype", "anesubtype", "kmgqappleneuralenginesubtype")


# Words of a marketing name's tier: after one, a word that spells a compiler target is a chip
# name no file holds, not that target.
TIERS = frozenset({"pro", "max", "ultra", "plus"})


@dataclass(frozen=True)
class Attribution:
    """The chip a row is validated against, why (when the label needed reading), or why none."""

    chip: str | None
    note: str | None = None
    reason: str | None = None  # "unknown_chip" or "ambiguous_chip" when chip is None


def _generation_soc(target: str) -> str | None:
    """The SoC id a generation file names for its reference chip."""
    path = builtin_chip_dir() / "generations" / f"{target}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    soc = (data.get("identity") or {}).get("soc") if isinstance(data, dict) else None
    return str(soc) if soc else None


class _Identifier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chips: list[str]  # (empty: a chip no file holds)
    basis: Literal["stated", "decompiled", "estimated"]
    source: str


class _Model(_Identifier):
    id: str


class _Board(_Identifier):
    board: int


class _Devices(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[_Model]
    board_types: list[_Board]


def _words(text: str) -> list[str]:
    """A label's lowercase words (letters and digits; any other character separates them)."""
    return re.findall(r"[a-z0-9]+", text.lower())


@lru_cache(maxsize=1)
def load_devices(path: Path = DEVICES_FILE) -> _Devices:
    """The model identifiers and board types of ``devices.yaml``."""
    try:
        return _Devices.model_validate(read_yaml(path, ConfigError, "device identifiers file"))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"bad device identifiers: {err['msg']}", file=path,
                          where="key '" + ".".join(str(p) for p in err["loc"]) + "'") from None


class ChipNames:
    """Words that name chips, from the chip files (name and aliases, SoC id, compiler target) and
    from ``devices.yaml`` (model identifiers, ANE board types)."""

    def __init__(self, chips: Iterable[ChipConfig], devices: _Devices | None = None) -> None:
        self.files: dict[str, str] = {}
        # key -> (kind of key, chip names); earlier kinds win over later ones
        self.keys: dict[str, tuple[str, set[str]]] = {}
        chips = list(chips)
        socs: dict[str, set[str]] = {}
        targets: dict[str, list[ChipConfig]] = {}
        for chip in chips:
            self.files[chip.name] = Path(chip.source_files[0]).name if chip.source_files else chip.name
            for text in (chip.name, *chip.aliases):
                self.keys.setdefault(normalize_name(text), ("name or alias", set()))[1].add(chip.name)
            soc = chip.identity.soc.lower()
            if "x" not in soc[1:]:  # 'T603x' stands for a family of dies, not one
                socs.setdefault(soc, set()).add(chip.name)
            targets.setdefault(chip.identity.compiler_target.lower(), []).append(chip)
        for soc, names in socs.items():
            self.keys.setdefault(soc, ("SoC id", names))
        for target, group in targets.items():
            gen_soc = _generation_soc(target)
            ref = {c.name for c in group if gen_soc and c.identity.soc.lower() == gen_soc.lower()}
            self.keys.setdefault(target, ("compiler target", ref or {c.name for c in group}))
        # (a chip the identifier names that this set of chips lacks is not read into it)
        devices = devices or load_devices()
        sources: dict[str, str] = {}  # key -> its source, for the note
        entries = [("".join(_words(m.id)), "model identifier", m) for m in devices.models]
        entries += [(f"{word}{b.board}", "board type", b) for b in devices.board_types for word in BOARD_WORDS]
        for key, kind, entry in entries:
            if key not in self.keys:  # (a chip's own name, alias, SoC id or target comes first)
                self.keys[key] = (kind, {c for c in entry.chips if c in self.files})
                sources[key] = entry.source
        self.sources = sources

    def canonical(self, name: str) -> str | None:
        """The chip a name or alias spells exactly, if exactly one."""
        hit = self.keys.get(normalize_name(name))
        return next(iter(hit[1])) if hit and hit[0] == "name or alias" and len(hit[1]) == 1 else None

    def read(self, label: str) -> Attribution:
        """The chip a free-form label names."""
        words = _words(label)
        for start in range(len(words)):
            for end in range(len(words), start, -1):
                key = "".join(words[start:end])
                hit = self.keys.get(key)
                if hit is None:
                    continue
                kind, names = hit
                if kind == "compiler target" and end < len(words) and words[end] in TIERS:
                    continue  # (a marketing name, 'M9 Ultra', is not the target 'm9' of another chip)
                if not names:  # an identifier the sources tie to a chip no file holds
                    return Attribution(None, f"label {label!r} is {kind} '{key}' of a chip no file under "
                                             f"chips/ holds ({self.sources.get(key)})", "unknown_chip")
                if len(names) > 1:
                    return Attribution(None, f"label {label!r} fits {', '.join(sorted(names))} (by {kind} "
                                             f"'{key}')", "ambiguous_chip")
                (name,) = names
                if normalize_name(label) == normalize_name(name):
                    return Attribution(name)
                how = f"by {kind} '{key}'" + (f": {self.sources[key]}" if key in self.sources else "")
                return Attribution(name, f"label {label!r} read as the {name} ({self.files[name]}, {how})")
        return Attribution(None, f"label {label!r} names no chip file under chips/", "unknown_chip")


@lru_cache(maxsize=1)
def builtin_names() -> ChipNames:
    """The names of the chips shipped with anesim."""
    return ChipNames(all_chips())
