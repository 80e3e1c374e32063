"""Fields the program model does not read, checked against the values the sources describe.

The table lives in ``regmaps/understood.json`` (data, not code): per register map, per scope,
the field and its understood values. A field a map does not define is skipped, so one table
entry serves every generation that shares a name.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from anesim.hwx.regfile import RegisterFile
from anesim.hwx.regmaps import RegisterMap


@cache
def _table() -> dict[str, Any]:
    text = resources.files("anesim.hwx.regmaps").joinpath("understood.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def unexplained_fields(regmap: RegisterMap, regs: RegisterFile, scopes: set[str]) -> list[tuple[str, int, str, str]]:
    """(Register.Field, value, understood values, note kind) for every written field outside its
    understood values; the kind is 'timing' for fields that only change the modelled time."""
    out = []
    entry = _table().get(regmap.name, {})
    sections = [(scope, fields, "value") for scope, fields in entry.items() if scope != "timing"]
    sections += [(scope, fields, "timing") for scope, fields in entry.get("timing", {}).items()]
    for scope, fields, kind in sections:
        if scope not in scopes:
            continue
        for name, allowed in fields.items():
            reg, _, fld = name.rpartition(".")
            if regmap.by_name(reg) is None or not regs.has(reg):
                continue
            value = regs.field(reg, fld)
            if value not in allowed:
                out.append((name, value, " or ".join(str(a) for a in allowed), kind))
    return out
