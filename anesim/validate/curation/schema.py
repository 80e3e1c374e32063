"""The curation table's schema: pydantic models of the rules files, and their loader.

A rules file is YAML. The shipped table (``table.yaml`` beside this module) holds what applies
to every row (exclusion reasons, units, SI conversions, the rules tried before and after the
sources) and names one file per published source under ``sources/``. Further rules files, given
to :func:`load_table`, add sources (tried before the shipped ones) and may add reasons, units
and conversions. docs/validation.md describes every key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from anesim.errors import ConfigError
from anesim.yamlfile import read_yaml

SCHEMA = "anesim-curation/1"
TABLE_FILE = Path(__file__).resolve().parent / "table.yaml"

# The columns of a measurement row, by the names the rules use.
FIELDS = ("chip", "source", "section", "provenance", "workload", "shape", "metric", "value", "notes")
RowField = Literal["chip", "source", "section", "provenance", "workload", "shape", "metric", "value", "notes"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _file: str | None = PrivateAttr(default=None)  # the rules file it was read from (set by the loader)


def _compiles(pattern: str | None) -> str | None:
    """A regular expression that compiles (found when the rules file loads, not at a row)."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


class TextTest(_Model):
    """A test of one text field; every key given must hold."""

    equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    prefix: str | None = None
    contains: str | None = None
    not_contains: str | None = None
    regex: str | None = None

    _regex_compiles = field_validator("regex")(_compiles)


# A bare string tests equality, a list membership; a mapping gives the other tests.
Condition = str | list[str] | TextTest
When = dict[RowField, Condition]


class Parse(_Model):
    """Read values out of a row field: a regex's named groups, or ``key=value`` pairs."""

    field: RowField = "shape"
    regex: str | None = None
    key_value: bool = False  # every "name=value" pair of the field
    keys: list[str] | None = None  # the names a key_value parse accepts (all, when absent)
    required: list[str] = []
    name: str | None = None  # also bind every value read, as one mapping, to this name

    _regex_compiles = field_validator("regex")(_compiles)

    @model_validator(mode="after")
    def _one_kind(self) -> Parse:
        if (self.regex is None) == (not self.key_value):
            raise ValueError("give either 'regex' or 'key_value: true'")
        return self


class Map(_Model):
    """Validate the row against a simulated workload."""

    family: str
    workload: str | None = None  # for family power: the workload whose loop the rail was read over
    params: dict[str, Any] | str = {}  # a mapping, or one "{name}" bound to a mapping
    method: str
    conversion: str
    metric: str | None = None  # the metric whose SI conversion applies (the row's when absent)
    value: str | None = None  # the value compared (the row's when absent)


class Exclude(_Model):
    """Exclude the row: a reason code of the table and optional row-specific detail."""

    reason: str
    detail: str = ""


class PowerOf(_Model):
    """A power row: validate the run's workload, found by the source's rules with another metric."""

    metric: str = "latency_ms"
    shape: str | None = None  # the shape the workload rules read (a template)
    conversion: str = "{POWER_CONVERSION}"
    note: str = ""


class Rule(_Model):
    """When the row matches ``when``, parse what it needs and map, exclude or take its run's workload."""

    name: str = ""
    when: When = {}
    parse: list[Parse] = []
    machine: bool = False  # needs the source's machine (its sweep sizes)
    let: dict[str, str] = {}  # derived values: name -> expression
    map: Map | None = None
    exclude: Exclude | None = None
    power_of: PowerOf | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        if sum(a is not None for a in (self.map, self.exclude, self.power_of)) != 1:
            raise ValueError("a rule needs exactly one of 'map', 'exclude' or 'power_of'")
        return self


class Label(_Model):
    """A chip label the source spells its own way: the chip it means, or null when it cannot be told."""

    when: When
    chip: str | None
    note: str


class MethodText(_Model):
    """How the source measured, for the rows matching ``when`` (a template)."""

    when: When = {}
    text: str


class Machine(_Model):
    """A machine a source names in its section or notes, and the sizes its sweeps ran."""

    match: str
    vars: dict[str, Any]


class Restates(_Model):
    """Rows of one run (the section before ' :: ') that restate another row's workload."""

    section: Condition
    methods: list[str]


class Source(_Model):
    """One published source: which rows are its own, how it measured, and its rules."""

    name: str
    match: When
    labels: list[Label] = []
    methods: list[MethodText] = []
    machines: list[Machine] = []
    vars: dict[str, Any] = {}
    rules: list[Rule] = []
    restates: Restates | None = None


class Quantity(_Model):
    """What a metric measures and the factor from its printed value to SI units."""

    quantity: Literal["latency", "flop_rate", "byte_rate", "token_rate", "ratio", "bytes", "power"]
    scale: float


class TraceFile(_Model):
    """The trace file rows go to, by their chip label."""

    file: str
    when: When = {}


class RulesFile(_Model):
    """One rules file; the shipped table sets every key, an extra file adds to it."""

    schema_: Literal["anesim-curation/1"] = Field(SCHEMA, alias="schema")
    reasons: dict[str, str] = {}
    units: dict[str, str] = {}
    quantities: dict[str, Quantity] = {}
    vars: dict[str, Any] = {}
    labels: list[Label] = []
    before: list[Rule] = []
    sources: list[Source | str] = []
    after: list[Rule] = []
    default_method: str | None = None
    trace_files: list[TraceFile] = []
    max_dimension: int | None = None


class Table(_Model):
    """The merged table the engine reads."""

    reasons: dict[str, str]
    units: dict[str, str]
    quantities: dict[str, Quantity]
    vars: dict[str, Any]
    labels: list[Label]
    before: list[Rule]
    sources: list[Source]
    after: list[Rule]
    default_method: str
    trace_files: list[TraceFile]
    max_dimension: int
    files: list[str]  # the rules files read, in order


def file_of(item: Rule | Source) -> str | None:
    """The rules file a rule or source was read from (None when it was built in memory)."""
    return item._file


def _read(path: Path, what: str) -> Any:
    data = read_yaml(path, ConfigError, what)
    if not isinstance(data, dict):
        raise ConfigError(f"a {what} must be a YAML mapping", file=path, found=type(data).__name__)
    return data


def _first_error(exc: ValidationError, path: Path) -> ConfigError:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return ConfigError(f"bad curation rules: {err['msg']}", file=path, where=f"key '{where}'" if where else None)


def read_rules_file(path: Path) -> tuple[RulesFile, list[Source]]:
    """One rules file and its sources (a source given by file name is read relative to it); each
    rule and source remembers the file it was written in."""
    try:
        rules = RulesFile.model_validate(_read(path, "curation rules file"))
    except ValidationError as exc:
        raise _first_error(exc, path) from None
    sources = []
    for rule in [*rules.before, *rules.after]:
        rule._file = str(path)
    for item in rules.sources:
        file = path
        if not isinstance(item, Source):
            file = path.parent / item
            try:
                item = Source.model_validate(_read(file, "curation source file"))
            except ValidationError as exc:
                raise _first_error(exc, file) from None
        sources.append(item)
        for x in [item, *item.rules]:
            x._file = str(file)
    return rules, sources


def load_table(*extra: str | Path) -> Table:
    """The shipped table, with the sources and reasons of any extra rules files added."""
    base, base_sources = read_rules_file(TABLE_FILE)
    merged: dict[str, Any] = {
        "reasons": dict(base.reasons), "units": dict(base.units), "quantities": dict(base.quantities),
        "vars": dict(base.vars), "labels": list(base.labels), "before": list(base.before),
        "after": list(base.after), "default_method": base.default_method or "{source}",
        "trace_files": list(base.trace_files), "max_dimension": base.max_dimension or 65536,
        "files": [str(TABLE_FILE)],
    }
    added: list[Source] = []
    for item in extra:
        path = Path(item)
        rules, sources = read_rules_file(path)
        for key in ("reasons", "units", "quantities", "vars"):
            merged[key].update(getattr(rules, key))
        merged["labels"] = list(rules.labels) + merged["labels"]
        merged["before"] += rules.before
        merged["after"] = list(rules.after) + merged["after"]
        added += sources
        merged["files"].append(str(path))
    table = Table(sources=added + base_sources, **merged)
    check(table)
    return table


def check(table: Table) -> None:
    """Every reason a rule names is in the table's reasons."""
    rules = [*table.before, *table.after, *(r for s in table.sources for r in s.rules)]
    for rule in rules:
        if rule.exclude and rule.exclude.reason not in table.reasons:
            raise ConfigError("a rule names an unknown exclusion reason", where=f"rule '{rule.name}'",
                              file=file_of(rule), found=repr(rule.exclude.reason),
                              expected=", ".join(sorted(table.reasons)))
