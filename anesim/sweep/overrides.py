"""Chip-file overrides by dotted key (``ne.cores=8``, ``memory.pool_bytes=8388608``, ``clock=1.4e9``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from anesim.chips.schema import ChipConfig
from anesim.errors import ConfigError, InputError

# Short names for the keys people sweep most.
ALIASES = {"clock": "ne.clock_hz", "clock_hz": "ne.clock_hz", "cores": "ne.cores", "pool_bytes": "memory.pool_bytes"}
OVERRIDE_SOURCE = "anesim sweep override"


def canonical_key(key: str) -> str:
    """The dotted chip-config path of a key or one of its short names."""
    return ALIASES.get(key, key)


def is_chip_key(key: str) -> bool:
    """Whether a sweep key names the chip configuration (dotted, or a short name) rather than a program parameter."""
    return "." in canonical_key(key)


def apply_overrides(chip: ChipConfig, overrides: dict[str, Any]) -> ChipConfig:
    """The chip with each dotted key's value replaced (a parameter keeps its structure and becomes
    provenance 'predicted', source 'anesim sweep override'); unknown keys and bad values raise ConfigError."""
    if not overrides:
        return chip
    data = chip.model_dump()
    for key, value in overrides.items():
        path = canonical_key(key).split(".")
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError("unknown chip key in an override", where=f"key '{key}'",
                                  expected=f"a key of {'.'.join(path[:i]) or 'the chip config'}: "
                                           f"{', '.join(sorted(node)) if isinstance(node, dict) else '-'}",
                                  found=part)
            node = node[part]
        last = path[-1]
        if not isinstance(node, dict) or last not in node:
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else "-"
            raise ConfigError("unknown chip key in an override", where=f"key '{key}'", expected=keys, found=last)
        if isinstance(node[last], dict) and "value" in node[last]:
            node[last] = {"value": value, "provenance": "predicted", "source": OVERRIDE_SOURCE,
                          "note": f"was {node[last]['value']!r}"}
        else:
            node[last] = value
    try:
        return ChipConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if str(p) != "value")
        raise ConfigError(f"bad override value: {first.get('msg', 'invalid')}", where=f"key '{loc}'",
                          found=repr(first.get("input"))) from None


def parse_value(text: str) -> Any:
    """A command-line value as int, float, bool or string (``8``, ``1.4e9``, ``8MiB``, ``true``)."""
    t = text.strip()
    lowered = t.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for suffix, factor in (("kib", 2**10), ("mib", 2**20), ("gib", 2**30), ("ghz", 10**9), ("mhz", 10**6)):
        if lowered.endswith(suffix):
            try:
                number = float(t[: -len(suffix)])
            except ValueError:
                raise InputError(f"not a number before the unit {t[-len(suffix):]}",
                                 expected="a number and a unit (1.2GHz, 800MHz, 8MiB)", found=repr(text)) from None
            value = number * factor
            return int(value) if suffix.endswith("ib") else value
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t
