"""Surgical edits of chip YAML: replace one parameter's value and source, keep every other byte.

A chip parameter is a mapping under a section (``ne:`` then ``  mac_lanes_per_out_channel:``
with ``value:``, ``provenance:``, ``source:`` and ``note:`` indented below it). The edit finds
that block by indentation, rewrites the ``value`` and ``provenance`` lines and replaces the
``source`` entry (plain, quoted or folded over several lines) with one quoted line. Comments,
ordering, the note and the rest of the file are untouched, and the result must parse back to
the same data apart from the edited fields.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from anesim.errors import ConfigError


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _block_end(lines: list[str], head: int, indent: int) -> int:
    """One past the last line of the mapping whose key line is ``head`` (trailing blanks excluded)."""
    end = head + 1
    while end < len(lines) and (not _content(lines[end]) or _indent(lines[end]) > indent):
        end += 1
    while end > head + 1 and not _content(lines[end - 1]):
        end -= 1
    return end


def _find_block(lines: list[str], keys: list[str], path: Path) -> tuple[int, int, int]:
    """(key line, end line, indent) of the mapping at the dotted key path."""
    lo, hi, parent = 0, len(lines), -1
    for key in keys:
        body = [i for i in range(lo, hi) if _content(lines[i]) and _indent(lines[i]) > parent]
        child = min((_indent(lines[i]) for i in body), default=0)
        pat = re.compile(r"^\s*" + re.escape(key) + r"\s*:\s*(#.*)?$")
        hits = [i for i in body if _indent(lines[i]) == child and pat.match(lines[i])]
        if not hits:
            raise ConfigError("parameter not found for editing", file=path, where=f"key '{'.'.join(keys)}'")
        head = hits[0]
        lo, hi, parent = head + 1, _block_end(lines, head, child), child
    return lo - 1, hi, parent


def _entry_span(lines: list[str], lo: int, hi: int, field: str) -> tuple[int, int, int] | None:
    """(first, end, indent) of one field of a parameter block, continuation lines included."""
    for i in range(lo, hi):
        m = re.match(r"^(\s*)" + re.escape(field) + r"\s*:", lines[i])
        if m:
            ind = len(m.group(1))
            j = i + 1
            while j < hi and (not lines[j].strip() or _indent(lines[j]) > ind):
                j += 1
            while j > i + 1 and not lines[j - 1].strip():
                j -= 1
            return i, j, ind
    return None


def format_value(value: Any) -> str:
    """A YAML scalar for a parameter value: ints plainly, floats in short exponent form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        text = f"{mant}e{int(exp):+d}"
    elif "." not in text:
        text += ".0"
    return text


def set_param(path: Path, dotted: str, value: Any, source: str, provenance: str = "fitted") -> str:
    """Rewrite one parameter in the file at ``path``; return the new text (also written)."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    keys = dotted.split(".")
    lo, hi, _ = _find_block(lines, keys, path)
    for field, new in (("value", format_value(value)), ("provenance", provenance),
                       ("source", json.dumps(source, ensure_ascii=False))):
        span = _entry_span(lines, lo + 1, hi, field)
        if span is None:
            raise ConfigError(f"parameter has no '{field}' to edit", file=path, where=f"key '{dotted}'")
        i, j, ind = span
        lines[i:j] = [" " * ind + f"{field}: {new}"]
        hi -= (j - i) - 1
    new_text = "\n".join(lines)
    _check(text, new_text, keys, value, source, provenance, path)
    path.write_text(new_text, encoding="utf-8")
    return new_text


def _check(old: str, new: str, keys: list[str], value: Any, source: str, provenance: str, path: Path) -> None:
    """The edit changed exactly the three fields of one parameter."""
    before, after = yaml.safe_load(old), yaml.safe_load(new)
    node_b, node_a = before, after
    for k in keys:
        node_b, node_a = node_b[k], node_a[k]
    if node_a.get("value") != value and not (
        isinstance(value, float) and abs(node_a.get("value") - value) <= 1e-3 * abs(value)
    ):
        raise ConfigError("edit did not set the value", file=path, where=f"key '{'.'.join(keys)}'")
    if node_a.get("source") != source or node_a.get("provenance") != provenance:
        raise ConfigError("edit did not set the source", file=path, where=f"key '{'.'.join(keys)}'")
    for k in ("value", "source", "provenance"):
        node_b.pop(k, None)
        node_a.pop(k, None)
    if before != after:
        raise ConfigError("edit changed more than one parameter", file=path, where=f"key '{'.'.join(keys)}'")
