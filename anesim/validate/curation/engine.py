"""The curation engine: apply the table's rules to measurement rows, one trace record per row.

Nothing here knows a source. A row is attributed to a chip, then the first rule whose ``when``
it fits maps it to a workload family, parameters, measurement method and SI value, or excludes
it with a reason; a row that no rule covers, or whose fields a rule cannot read, is excluded
too. Only a defect in the table itself (an expression naming an unknown value) raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import simpleeval

from anesim.errors import ConfigError
from anesim.validate.curation.labels import Attribution, ChipNames, builtin_names
from anesim.validate.curation.schema import (
    Condition, Map, Parse, PowerOf, Rule, Source, Table, TextTest, When, file_of, load_table,
)

# The table's columns as the rules name them.
COLUMNS = {"chip": "chip", "source": "source_repo_or_url", "section": "source_path_or_section",
           "provenance": "provenance", "workload": "workload", "shape": "shape", "metric": "metric",
           "value": "value", "notes": "notes"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")
_KEY_VALUE = re.compile(r"([A-Za-z_]\w*)\s*=\s*([^\s,;]+)")
# Expression errors that mean the table is wrong, not the row.
_TABLE_ERRORS = (simpleeval.NameNotDefined, simpleeval.FunctionNotDefined, simpleeval.FeatureNotAvailable,
                 simpleeval.AttributeDoesNotExist, SyntaxError)
_FUNCTIONS = {"round": round, "int": int, "float": float, "str": str, "min": min, "max": max, "len": len}


class Excluded(Exception):
    """A rule cannot use the row: the reason code and the row-specific detail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def first_number(text: str) -> float | None:
    """The first number in a value string such as '0.48', '~1.14' or '26ms*'."""
    m = _NUMBER.search(text)
    return float(m.group(0)) if m else None


def _typed(text: str) -> Any:
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


def holds(cond: Condition, text: str) -> bool:
    """Whether one field's text passes one condition."""
    if isinstance(cond, str):
        return text == cond
    if isinstance(cond, list):
        return text in cond
    t: TextTest = cond
    return ((t.equals is None or text == t.equals) and (t.in_ is None or text in t.in_)
            and (t.prefix is None or text.startswith(t.prefix)) and (t.contains is None or t.contains in text)
            and (t.not_contains is None or t.not_contains not in text)
            and (t.regex is None or re.search(t.regex, text) is not None))


def matches(when: When, row: Mapping[str, str]) -> bool:
    """Whether a row passes every condition of ``when``."""
    return all(holds(cond, row[field]) for field, cond in when.items())


class Expressions:
    """Template and expression evaluation over a rule's names (simpleeval: no imports, no I/O)."""

    def __init__(self, where: str, file: str | None = None) -> None:
        self.where = where
        self.file = file  # the rules file the template is written in

    def eval(self, expr: str, names: Mapping[str, Any]) -> Any:
        """The value of one expression."""
        try:
            return simpleeval.SimpleEval(names=dict(names), functions=_FUNCTIONS).eval(expr.strip())
        except _TABLE_ERRORS as exc:
            raise ConfigError(f"bad expression in curation rule: {exc}", where=self.where, file=self.file,
                              found=repr(expr)) from None
        except Exception as exc:  # the row's data does not suit the expression
            raise Excluded("unparsed_shape", f"{expr!r} cannot be evaluated on this row: {exc}") from None

    def render(self, value: Any, names: Mapping[str, Any]) -> Any:
        """A template filled in: strings, and the strings inside lists and mappings."""
        if isinstance(value, dict):
            return {k: self.render(v, names) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, names) for v in value]
        if not isinstance(value, str):
            return value
        whole = re.fullmatch(r"\{([^{}]+)\}", value)
        if whole:
            return self.eval(whole.group(1), names)

        def one(m: re.Match[str]) -> str:
            if m.group(1) is None:
                return m.group(0)[0]
            return str(self.eval(m.group(1), names))

        return _TEMPLATE.sub(one, value)


def excluded(table: Table, reason: str, detail: str = "") -> dict[str, Any]:
    """The fields of an excluded record."""
    return {"status": "excluded", "reason": reason,
            "why": table.reasons[reason] + (f" ({detail})" if detail else "")}


class Curator:
    """Applies one table to measurement rows."""

    def __init__(self, table: Table | None = None, names: ChipNames | None = None) -> None:
        self.table = table or load_table()
        self.names = names or builtin_names()
        check_workloads(self.table)

    # ------------------------------------------------------------------ attribution

    def attribute(self, row: Mapping[str, str], sources: Sequence[Source]) -> Attribution:
        """The chip of a row: the sources' own label rules, the table's, then the chip files."""
        for label in [lab for s in sources for lab in s.labels] + list(self.table.labels):
            if not matches(label.when, row):
                continue
            if label.chip is None:
                return Attribution(None, label.note, "ambiguous_chip")
            name = self.names.canonical(label.chip)
            if name is None:
                raise ConfigError("a label rule names an unknown chip", found=repr(label.chip))
            return Attribution(name, label.note)
        return self.names.read(row["chip"])

    def method_text(self, row: Mapping[str, str], sources: Sequence[Source]) -> str:
        """How the row's source measured, in one line."""
        for source in sources:
            for m in source.methods:
                if matches(m.when, row):
                    names = {**self.table.vars, **source.vars, **row}
                    where = f"source '{source.name}' methods"
                    return str(Expressions(where, file_of(source)).render(m.text, names))
        return str(Expressions("default_method", self.table.files[0]).render(
            self.table.default_method, {**self.table.vars, **row}))

    # ------------------------------------------------------------------------ rules

    def _names(self, row: Mapping[str, str], source: Source | None) -> dict[str, Any]:
        return {**self.table.vars, **(source.vars if source else {}), **row, "number": first_number(row["value"])}

    def _parse(self, p: Parse, row: Mapping[str, str], ex: Expressions) -> dict[str, Any]:
        text = row[p.field]
        if p.regex is not None:
            m = re.search(p.regex, text)
            if m is None:
                raise Excluded("unparsed_shape", f"{p.field} {text!r} does not match {p.regex!r}")
            got = {k: _typed(v) for k, v in m.groupdict().items() if v is not None}
        else:
            got = {k: _typed(v) for k, v in _KEY_VALUE.findall(text)}
            unknown = sorted(set(got) - set(p.keys)) if p.keys is not None else []
            if unknown:
                raise Excluded("unparsed_shape", f"{p.field} key {unknown[0]!r} is not one of {', '.join(p.keys or [])}")
        missing = [k for k in p.required if k not in got]
        if missing:
            raise Excluded("unparsed_shape", f"{p.field} {text!r} gives no {missing[0]}")
        return {**got, p.name: dict(got)} if p.name else got

    def _machine(self, row: Mapping[str, str], source: Source | None) -> dict[str, Any]:
        text = row["section"] + " " + row["notes"]
        for m in source.machines if source else []:
            if m.match in text:
                return dict(m.vars)
        raise Excluded("unknown_machine", f"no machine of {source.name if source else 'the source'} named")

    def _measured(self, metric: str, value: Any) -> tuple[str, float]:
        q = self.table.quantities.get(metric)
        if q is None:
            raise Excluded("unknown_metric", f"metric {metric!r}")
        if isinstance(value, str) and re.search(r"\d,\d", value):
            # "12,5": a decimal comma or a thousands separator; either reading would be a guess
            raise Excluded("bad_value", f"value {value!r}: a comma between digits is ambiguous")
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else first_number(str(value))
        if number is None or not math.isfinite(number) or number <= 0:
            raise Excluded("bad_value", f"value {value!r}")
        measured = number * q.scale
        if not math.isfinite(measured) or measured <= 0:
            raise Excluded("bad_value", f"value {value!r}")
        return q.quantity, measured

    def _check_dimensions(self, params: Any) -> None:
        values = params.values() if isinstance(params, dict) else params if isinstance(params, list) else [params]
        for v in values:
            if isinstance(v, (dict, list)):
                self._check_dimensions(v)
            elif isinstance(v, int) and not isinstance(v, bool) and not 1 <= v <= self.table.max_dimension:
                raise Excluded("bad_shape", f"{v} outside 1..{self.table.max_dimension}")

    def _mapped(self, m: Map, row: Mapping[str, str], names: dict[str, Any], ex: Expressions) -> dict[str, Any]:
        metric = str(ex.render(m.metric, names)) if m.metric else row["metric"]
        value = ex.render(m.value, names) if m.value is not None else row["value"]
        quantity, measured = self._measured(metric, value)
        params = ex.render(m.params, names)
        if not isinstance(params, dict):
            raise ConfigError("a rule's params are not a mapping", where=ex.where, found=repr(params))
        if m.workload:
            params = {"workload": m.workload, **params}
        self._check_dimensions(params)
        return {"status": "mapped", "family": str(ex.render(m.family, names)), "params": params, "method": m.method,
                "quantity": quantity, "measured": measured, "conversion": str(ex.render(m.conversion, names))}

    def _power_of(self, p: PowerOf, row: Mapping[str, str], source: Source | None, names: dict[str, Any],
                  ex: Expressions, depth: int) -> dict[str, Any] | None:
        if depth > 0 or source is None:
            return None
        sub = {**row, "metric": p.metric}
        if p.shape is not None:
            sub["shape"] = str(ex.render(p.shape, names))
        base = self.first([source], sub, depth + 1)
        if base is None or base["status"] != "mapped":
            return base
        quantity, measured = self._measured(row["metric"], row["value"])
        conversion = str(ex.render(p.conversion, names)) + (f"; {p.note}" if p.note else "")
        return {"status": "mapped", "family": "power", "params": {"workload": base["family"], **base["params"]},
                "method": "sustained_power", "quantity": quantity, "measured": measured, "conversion": conversion}

    def apply(self, rule: Rule, row: Mapping[str, str], source: Source | None, depth: int = 0) -> dict[str, Any] | None:
        """The record fields one rule gives a row, or None when the rule does not cover it."""
        if not matches(rule.when, row):
            return None
        where = f"rule '{rule.name}'" + (f" of source '{source.name}'" if source else "")
        ex = Expressions(where, file_of(rule))
        names = self._names(row, source)
        try:
            if rule.machine:
                names.update(self._machine(row, source))
            for p in rule.parse:
                names.update(self._parse(p, row, ex))
            for key, expr in rule.let.items():
                names[key] = ex.eval(expr, names)
            if rule.exclude is not None:
                return excluded(self.table, rule.exclude.reason, str(ex.render(rule.exclude.detail, names)))
            if rule.power_of is not None:
                return self._power_of(rule.power_of, row, source, names, ex, depth)
            assert rule.map is not None
            return self._mapped(rule.map, row, names, ex)
        except Excluded as exc:
            return excluded(self.table, exc.reason, exc.detail)

    def first(self, sources: Sequence[Source], row: Mapping[str, str], depth: int = 0) -> dict[str, Any] | None:
        """The first rule of the sources (in order) that covers the row."""
        for source in sources:
            for rule in source.rules:
                out = self.apply(rule, row, source, depth)
                if out is not None:
                    return out
        return None

    # ------------------------------------------------------------------------ rows

    def classify(self, raw: Mapping[str, str], i: int) -> tuple[dict[str, Any], Source | None]:
        """The trace record of one table row, and the source that took it."""
        row = {field: str(raw.get(column) or "") for field, column in COLUMNS.items()}
        sources = [s for s in self.table.sources if matches(s.match, row)]
        att = self.attribute(row, sources)
        try:
            method, unusable = self.method_text(row, sources), None
        except Excluded as exc:  # (a method template that does not suit this row)
            method, unusable = "", exc
        rec: dict[str, Any] = {
            "id": f"r{i:03d}", "row": i, "chip": row["chip"], "target": att.chip, "attribution": att.note,
            "source": row["source"], "section": row["section"], "provenance": row["provenance"],
            "source_method": method, "workload": row["workload"], "shape": row["shape"],
            "metric": row["metric"], "value": row["value"], "units": self.table.units.get(row["metric"], "1"),
            "notes": row["notes"],
        }
        if att.chip is None:
            rec.update(excluded(self.table, att.reason or "unknown_chip", att.note or ""))
            return rec, None
        if unusable is not None:
            rec.update(excluded(self.table, unusable.reason, f"its source's method text: {unusable.detail}"))
            return rec, None
        for rule in self.table.before:
            out = self.apply(rule, row, None)
            if out is not None:
                rec.update(out)
                return rec, None
        for source in sources:
            for rule in source.rules:
                out = self.apply(rule, row, source)
                if out is not None:
                    rec.update(out)
                    return rec, source
        for rule in self.table.after:
            out = self.apply(rule, row, None)
            if out is not None:
                rec.update(out)
                return rec, None
        named = [s.name for s in sources if s.match]  # a source that matches every row names none
        detail = f"workload {row['workload']!r}, metric {row['metric']!r}" + (
            f" of {named[0]}" if named else f" from {row['source'] or 'an unnamed source'!r}")
        reason = "no_rule" if row["metric"] in self.table.quantities else "unknown_metric"
        rec.update(excluded(self.table, reason, detail))
        return rec, None

    def curate(self, rows: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
        """Trace records of every row, with rows that restate another row of their run marked."""
        pairs = [self.classify(row, i) for i, row in enumerate(rows)]
        first: dict[tuple[Any, ...], str] = {}
        for rec, source in pairs:
            key = _restate_key(rec, source)
            if key is None:
                continue
            if key in first:
                rec["restates"] = first[key]
            else:
                first[key] = rec["id"]
        return [clean(rec) for rec, _ in pairs]


def check_workloads(table: Table) -> None:
    """Every family and method a rule maps to exists (a family may be a template)."""
    from anesim.validate.methods import METHODS
    from anesim.validate.workloads import FAMILIES

    families = set(FAMILIES) | {"roofline", "power"}
    for source in [None, *table.sources]:
        for rule in (source.rules if source else [*table.before, *table.after]):
            m = rule.map
            where = f"rule '{rule.name}'" + (f" of source '{source.name}'" if source else "")
            if m is None:
                continue
            file = file_of(rule)
            if "{" not in m.family and m.family not in families:
                raise ConfigError("a rule maps to an unknown workload family", where=where, file=file,
                                  found=repr(m.family), expected=", ".join(sorted(families)))
            if m.method not in METHODS:
                raise ConfigError("a rule names an unknown measurement method", where=where, file=file,
                                  found=repr(m.method), expected=", ".join(METHODS))
            if m.workload is not None and m.workload not in FAMILIES:
                raise ConfigError("a power rule names an unknown workload family", where=where, file=file,
                                  found=repr(m.workload))


def _restate_key(rec: dict[str, Any], source: Source | None) -> tuple[Any, ...] | None:
    r = source.restates if source else None
    if r is None or rec["status"] != "mapped" or rec["method"] not in r.methods or not holds(r.section, rec["section"]):
        return None
    params = tuple(sorted((k, str(v)) for k, v in rec["params"].items()))
    return (source.name, rec["section"].split(" :: ")[0], rec["family"], params)  # type: ignore[union-attr]


def clean(rec: dict[str, Any]) -> dict[str, Any]:
    """The record without empty fields; ``target`` stays even when null (an unattributed row says so)."""
    return {k: v for k, v in rec.items() if k == "target" or (v is not None and v != {})}
