"""Find, read, merge and validate chip configuration files.

A chip file names a parent with ``inherits:``; parents are looked up first beside the file,
then in its ``generations/`` folder, then among the built-in generation files. The merged
mapping is validated by :class:`ChipConfig`; every error names the file that holds the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from anesim.chips import scaling
from anesim.chips.schema import ChipConfig
from anesim.datafiles import shipped_dir
from anesim.errors import ConfigError
from anesim.yamlfile import read_yaml

KeyPath = tuple[str, ...]
_INHERITS = "inherits"
_GENERATIONS = "generations"
_MAX_DEPTH = 32


def builtin_chip_dir() -> Path:
    """The folder of chip files shipped with anesim: the checkout's ``chips/``, or its copy in the wheel."""
    return shipped_dir("chips", "_chipdata")


def normalize_name(name: str) -> str:
    """Case-, space-, hyphen- and underscore-insensitive form of a chip name or alias."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, ConfigError, "chip file")
    if not isinstance(data, dict):
        raise ConfigError(
            "a chip file must be a mapping of keys",
            file=path,
            expected="a YAML mapping",
            found=type(data).__name__,
        )
    for key in data:
        if not isinstance(key, str):
            raise ConfigError("keys must be strings", file=path, found=repr(key))
    return data


def _find_parent(name: str, child: Path) -> Path:
    stem = name.strip().lower()
    candidates = [
        child.parent / f"{stem}.yaml",
        child.parent / _GENERATIONS / f"{stem}.yaml",
        builtin_chip_dir() / _GENERATIONS / f"{stem}.yaml",
        builtin_chip_dir() / f"{stem}.yaml",
    ]
    for candidate in candidates:
        if candidate.resolve() != child.resolve() and candidate.is_file():
            return candidate
    raise ConfigError(
        "unknown parent",
        file=child,
        where=f"key '{_INHERITS}'",
        expected="the name of a generation file such as h13",
        found=repr(name),
    )


def _merge(
    base: dict[str, Any],
    base_origin: dict[KeyPath, Path],
    over: Mapping[str, Any],
    over_file: Path,
    prefix: KeyPath = (),
) -> None:
    """Deep-merge ``over`` into ``base``; a leaf mapping with ``value`` replaces whole."""
    for key, value in over.items():
        path = prefix + (str(key),)
        old = base.get(key)
        is_param = isinstance(value, Mapping) and ("value" in value or scaling.RULE_KEY in value)
        if isinstance(old, dict) and isinstance(value, Mapping) and not is_param:
            _merge(old, base_origin, value, over_file, path)
        else:
            for stale in [p for p in base_origin if p[: len(path)] == path]:
                del base_origin[stale]
            base[key] = _deep_copy(value)
        base_origin[path] = over_file


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def resolve_file(path: Path) -> tuple[dict[str, Any], dict[KeyPath, Path], list[Path]]:
    """Read a chip file and its ancestors; return merged data, key origins and the file chain."""
    chain: list[Path] = []
    datas: list[dict[str, Any]] = []
    current = path
    while True:
        if any(current.resolve() == seen.resolve() for seen in chain):
            names = " -> ".join(p.stem for p in chain + [current])
            raise ConfigError("cycle of parents", file=chain[-1], where=f"key '{_INHERITS}'", found=names)
        if len(chain) >= _MAX_DEPTH:
            raise ConfigError("too many levels of inheritance", file=path, expected=f"at most {_MAX_DEPTH}")
        data = _read_yaml(current)
        chain.append(current)
        datas.append(data)
        parent = data.get(_INHERITS)
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip() or "\0" in parent:
            raise ConfigError(
                "bad parent name", file=current, where=f"key '{_INHERITS}'",
                expected="a generation name", found=repr(parent),
            )
        current = _find_parent(parent, current)
    merged: dict[str, Any] = {}
    origin: dict[KeyPath, Path] = {}
    for file, data in zip(reversed(chain), reversed(datas)):
        body = {k: v for k, v in data.items() if k != _INHERITS}
        _merge(merged, origin, body, file)
    return merged, origin, chain


def _describe(error: Mapping[str, Any]) -> tuple[str, Any, Any]:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key", None, None
    if kind == "missing":
        return "missing key", None, None
    found = error.get("input")
    found_text = repr(found) if not isinstance(found, (dict, list)) else type(found).__name__
    return error.get("msg", "invalid value"), None, found_text


def _origin_of(loc: KeyPath, origin: Mapping[KeyPath, Path], fallback: Path) -> Path:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in origin:
            return origin[loc[:cut]]
    return fallback


def validate_merged(data: dict[str, Any], origin: Mapping[KeyPath, Path], file: Path) -> ChipConfig:
    """Validate merged chip data, reporting the first error against the file that holds it."""
    try:
        return ChipConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"] if not str(p).startswith("function-"))
        loc = tuple(p for p in loc if not p.startswith("Param["))
        problem, expected, found = _describe(first)
        where_file = _origin_of(loc, origin, file)
        if first.get("type") == "missing":
            where_file = file
        more = len(exc.errors()) - 1
        if more:
            problem += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(
            problem, file=where_file, where=f"key '{'.'.join(loc)}'", expected=expected, found=found
        ) from None


def load_chip_file(path: str | Path, constants: Mapping[str, float] | None = None) -> ChipConfig:
    """Load one chip file (with its parents), derive its rule Params and validate it.

    ``constants`` overrides shared constants of the cross-generation model (chips/model/scaling.yaml).
    """
    file = Path(path)
    if file.is_dir():
        raise ConfigError("expected a chip file, found a folder", file=file)
    data, origin, chain = resolve_file(file)
    derived = scaling.derive(data, file, constants=constants)
    chip = validate_merged(data, origin, file)
    chip._source_files = tuple(str(p) for p in chain)
    chip._derived = derived
    return chip


def with_constants(chip: ChipConfig, constants: Mapping[str, float]) -> ChipConfig:
    """The same chip re-derived under other values of the shared constants."""
    if not chip.source_files:
        raise ConfigError("the chip was not loaded from a file", found=chip.name)
    return load_chip_file(chip.source_files[0], constants)


def _chip_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


@lru_cache(maxsize=None)
def _load_once(path: str) -> ChipConfig:
    """A chip file loaded once per process: the same object however it was asked for."""
    return load_chip_file(path)


@lru_cache(maxsize=8)
def _load_folder(folder: str) -> tuple[ChipConfig, ...]:
    return tuple(_load_once(str(p)) for p in _chip_files(Path(folder)))


@lru_cache(maxsize=1)
def _builtin_by_stem() -> dict[str, str]:
    """The built-in chip files by normalised file name (listed once, as ``all_chips`` does)."""
    return {normalize_name(p.stem): str(p) for p in _chip_files(builtin_chip_dir())}


def all_chips(extra: Iterable[str | Path] = ()) -> list[ChipConfig]:
    """Every built-in chip, plus the chips in any extra files or folders given."""
    chips = list(_load_folder(str(builtin_chip_dir())))
    for item in extra:
        p = Path(item)
        chips.extend(_load_folder(str(p.resolve())) if p.is_dir() else [load_chip_file(p)])
    return chips


def _looks_like_path(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) or "/" in spec or "\\" in spec


def load_chip(spec: str | Path) -> ChipConfig:
    """A chip by name, alias or SoC id (case-insensitive), or from a path to a chip file."""
    text = str(spec)
    if isinstance(spec, Path) or _looks_like_path(text):
        return load_chip_file(text)
    wanted = normalize_name(text)
    # A built-in chip's file is named after it (m5-pro.yaml): that file alone answers a chip's
    # own name, without reading the other chips (names and aliases name one chip each).
    path = _builtin_by_stem().get(wanted)
    if path is not None:
        chip = _load_once(path)
        if wanted in {normalize_name(n) for n in [chip.name, *chip.aliases]}:
            return chip
    for chip in all_chips():
        if wanted in {normalize_name(n) for n in [chip.name, *chip.aliases]}:
            return chip
    names = ", ".join(sorted(normalize_name(c.name) for c in all_chips()))
    raise ConfigError("unknown chip", found=repr(text), expected=f"one of {names}, or a path to a chip file")
