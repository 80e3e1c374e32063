"""The points of a sweep: every program × chip × combination of swept values."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anesim.chips.loader import all_chips, load_chip
from anesim.errors import InputError
from anesim.sweep.overrides import canonical_key, is_chip_key, parse_value


@dataclass(frozen=True)
class SweepPoint:
    """One simulation: a program (with its parameters) on a chip with chip-file overrides."""

    program: str
    chip: str  # file-style name (m1, a17-pro) or a chip file path
    overrides: tuple[tuple[str, Any], ...] = ()  # dotted chip-config keys
    swept: tuple[str, ...] = field(default=())  # which keys (overrides or params) vary across the sweep
    params: tuple[tuple[str, Any], ...] = ()  # the program file's own parameters (batch, seq, …)

    def label(self) -> str:
        """'program on chip (key=value, …)' for progress and errors."""
        extra = ", ".join(f"{k}={v}" for k, v in self.params + self.overrides)
        return f"{Path(self.program).stem} on {self.chip}" + (f" ({extra})" if extra else "")


def chip_key(name: str) -> str:
    """'A17 Pro' -> 'a17-pro'."""
    return "-".join(name.lower().split())


def resolve_chips(spec: str) -> list[str]:
    """Chip names from ``all`` or a comma-separated list (names, aliases or chip files), checked now."""
    if spec.strip().lower() == "all":
        return [chip_key(c.name) for c in all_chips()]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise InputError("no chips given", expected="--chips all or a comma-separated list", found=repr(spec))
    out = []
    for name in names:
        chip = load_chip(name)  # raises ConfigError naming the unknown chip
        out.append(name if name.endswith((".yaml", ".yml")) else chip_key(chip.name))
    return out


def parse_assignments(items: list[str], option: str, *, multi: bool) -> dict[str, list[Any]]:
    """``key=value`` (or ``key=v1,v2,…`` when ``multi``) items as key → values."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise InputError(f"bad {option}", expected="KEY=VALUE" + (",VALUE…" if multi else ""), found=repr(item))
        if not multi and "," in text:
            raise InputError(f"{option} takes one value per key", found=repr(item),
                             expected="KEY=VALUE (a list of values is swept by anesim sweep --param)")
        values = [parse_value(v) for v in text.split(",")] if multi else [parse_value(text)]
        if any(v == "" for v in values):
            raise InputError(f"bad {option}: an empty value", found=repr(item))
        if canonical_key(key) in {canonical_key(k) for k in out}:
            raise InputError(f"{option} names a key twice", found=key)
        out[key] = values
    return out


def expand(programs: list[str], chips: list[str], fixed: dict[str, list[Any]] | None = None,
           swept: dict[str, list[Any]] | None = None) -> list[SweepPoint]:
    """Every program × chip × combination of the swept values, with the fixed values on each.

    A key is a chip-file override when it is dotted or a short chip name (clock, cores), else a
    parameter of the program file (its ``params:``).
    """
    fixed = fixed or {}
    swept = swept or {}
    clash = {canonical_key(k) for k in fixed} & {canonical_key(k) for k in swept}
    if clash:
        raise InputError("a key is both --set and --param", found=", ".join(sorted(clash)))
    base = [(canonical_key(k), v[0]) for k, v in fixed.items()]
    keys = [canonical_key(k) for k in swept]
    combos = list(itertools.product(*swept.values())) if swept else [()]
    points = []
    for program in programs:
        for chip in chips:
            for combo in combos:
                values = base + list(zip(keys, combo))
                points.append(SweepPoint(program, chip, tuple((k, v) for k, v in values if is_chip_key(k)),
                                         tuple(keys), tuple((k, v) for k, v in values if not is_chip_key(k))))
    return points
