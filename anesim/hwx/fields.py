"""One register word <-> its JSON form: named fields plus leftover bits, or a raw value.

A register the map names with fields becomes ``{"addr", "name", "fields": {...}}`` and, when
bits outside every named field are set, ``"rest"`` (those bits in place, hex). A register with no
fields (or absent from the map) becomes ``{"addr", "name"?, "value"}``. The encoder rebuilds the
word from ``fields`` + ``rest`` (or from ``value``), so editing a field changes the output;
``name`` is only a label.
"""

from __future__ import annotations

from typing import Any

from anesim.hwx.jsonform import Doc, hexnum
from anesim.hwx.regmaps import RegDef, RegisterMap


def word_to_json(reg: RegDef | None, value: int, addr: int | None = None) -> dict[str, Any]:
    """The JSON form of one register or header word."""
    out: dict[str, Any] = {}
    if addr is not None:
        out["addr"] = hexnum(addr)
    if reg is not None:
        out["name"] = reg.name
    if reg is not None and reg.fields:
        fields, rest = reg.split(value)
        out["fields"] = fields
        if rest:
            out["rest"] = hexnum(rest)
    else:
        out["value"] = f"{value:#010x}"
    return out


def word_from_json(doc: Doc, reg: RegDef | None) -> int:
    """Rebuild one register or header word from its JSON form."""
    if doc.has("fields"):
        if reg is None or not reg.fields:
            raise doc.error("this register has no named fields; give 'value' instead")
        by_name = {f.name: f for f in reg.fields}
        word = 0
        for name, fdoc in doc.get("fields").mapping():
            fdef = by_name.get(name)
            if fdef is None:
                raise fdoc.error(f"{reg.name} has no field {name!r}", expected=", ".join(by_name))
            word |= fdoc.int(0, (1 << fdef.width) - 1) << fdef.lo
        rest_doc = doc.get("rest", 0)
        rest = rest_doc.int(0, 0xFFFFFFFF)
        if rest & reg.known_mask:
            raise rest_doc.error("'rest' overlaps named fields", found=hexnum(rest & reg.known_mask))
        return word | rest
    return doc.get("value").int(0, 0xFFFFFFFF)


def register_to_json(regmap: RegisterMap, addr: int, value: int) -> dict[str, Any]:
    """The JSON form of a write of ``value`` to the register at byte address ``addr``."""
    return word_to_json(regmap.lookup(addr), value, addr)


def register_from_json(doc: Doc, regmap: RegisterMap) -> tuple[int, int]:
    """(byte address, value) of a register write in JSON form."""
    addr = doc.get("addr").int(0, 0xFFFFFFFF)
    return addr, word_from_json(doc, regmap.lookup(addr))


def describe(reg: RegDef | None, value: int) -> str:
    """'Name=value ...' for a listing, with enum labels where the map has them."""
    if reg is None or not reg.fields:
        return ""
    parts = []
    fields, rest = reg.split(value)
    for fdef in reg.fields:
        v = fields[fdef.name]
        label = fdef.label(v)
        parts.append(f"{fdef.name}={v}" + (f"({label})" if label else ""))
    if rest:
        parts.append(f"rest={rest:#x}")
    return " ".join(parts)
