"""The placement rule table (``placement_rules.yaml``): op support per tier and the conditions.

The table is data with its provenance, validated with pydantic when first read; the compiler's
placement (:mod:`.capability`) and ``anesim check`` both read it, so the report cites the row
that decided. A rule's per-tier status follows the guide's Appendix A marks.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from anesim.errors import ConfigError

RULES_FILE = Path(__file__).with_name("placement_rules.yaml")
Status = Literal["native", "decomposed", "bridge", "gated", "no_path"]
CHECKS = ("max_dimension", "max_batch", "max_channels", "kernel_size", "transpose_width", "reshape_width",
          "strided_width_slice", "matmul_transposed_rhs", "matmul_rank", "batch_reduction", "dtype",
          "dynamic_shape")
ENGINE_STATUSES = ("native", "decomposed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpRule(_Strict):
    """One row of the op-support table: a set of operations with one status per tier."""

    id: str
    table: str
    names: list[str]
    graph_ops: list[str] = []
    onnx: list[str] = []
    status: tuple[Status, Status, Status, Status]
    pre_a13: Status | None = None
    bridge: Literal["engine", "host"] | None = None
    lowered: bool = True
    source: str
    pre_a13_source: str | None = None
    note: str | None = None
    suggestion: str | None = None
    bridge_names: list[str] = []

    @model_validator(mode="after")
    def _bridge_named(self) -> "OpRule":
        if "bridge" in (*self.status, self.pre_a13) and self.bridge is None:
            raise ValueError(f"rule '{self.id}' has a bridge status but no 'bridge: engine|host'")
        return self


class Condition(_Strict):
    """A condition under which a node leaves the engine, with its limits per tier."""

    id: str
    check: str
    values: dict[str, Any] = {}
    message: str
    source: str
    detail: str
    provenance: Literal["measured", "decompiled", "estimated", "anesim"]
    fix: str | None = None
    suggestion: str | None = None

    @model_validator(mode="after")
    def _known_check(self) -> "Condition":
        if self.check not in CHECKS:
            raise ValueError(f"condition '{self.id}': unknown check '{self.check}' (expected one of {', '.join(CHECKS)})")
        return self

    def value(self, tier: str) -> Any:
        """This condition's limit on ``tier`` (the ``default`` entry when the tier has none)."""
        return self.values.get(tier, self.values.get("default"))


class _Index(NamedTuple):
    """A rule table's rows by key (:attr:`RuleTable._index`)."""

    graph_ops: dict[str, OpRule]
    names: dict[str, OpRule]  # MIL names, lower case
    onnx: dict[str, OpRule]
    checks: dict[str, Condition]


class RuleTable(_Strict):
    """The whole table."""

    version: int
    tiers: list[str]
    columns: dict[str, int]
    sources: dict[str, str]
    ops: list[OpRule]
    conditions: list[Condition]

    @model_validator(mode="after")
    def _consistent(self) -> "RuleTable":
        seen: dict[str, str] = {}
        for rule in self.ops:
            for key in [f"graph:{o}" for o in rule.graph_ops] + [f"name:{n}" for n in rule.names]:
                if key in seen:
                    raise ValueError(f"{key} is in rules '{seen[key]}' and '{rule.id}'")
                seen[key] = rule.id
            for src in (rule.source, rule.pre_a13_source):
                if src is not None and src not in self.sources:
                    raise ValueError(f"rule '{rule.id}' cites unknown source '{src}'")
        for cond in self.conditions:
            if cond.source not in self.sources:
                raise ValueError(f"condition '{cond.id}' cites unknown source '{cond.source}'")
        return self

    @cached_property
    def _index(self) -> _Index:
        """Rows by graph op, by source-model op name (MIL, ONNX) and by check: placement looks
        them up for every node of a model, and a scan of the rows each time cost more than the
        decision. The first row that lists a key wins, as in a scan of the rows in order."""
        index = _Index({}, {}, {}, {})
        for rule in self.ops:
            for op in rule.graph_ops:
                index.graph_ops.setdefault(op, rule)
            for name in rule.names:
                index.names.setdefault(name, rule)
            for name in rule.onnx:
                index.onnx.setdefault(name, rule)
        for cond in self.conditions:
            index.checks.setdefault(cond.check, cond)
        return index

    def op_rule(self, graph_op: str | None = None, name: str | None = None) -> OpRule | None:
        """The row for an anesim graph op, or (``graph_op`` not given) for a source-model op name
        (MIL or ONNX)."""
        if graph_op is not None and name is not None:
            raise TypeError("op_rule takes a graph op or a source-model op name, not both")
        index = self._index
        if graph_op is not None:
            return index.graph_ops.get(graph_op)
        if name is None:
            return None
        rows = [r for r in (index.names.get(name.lower()), index.onnx.get(name)) if r is not None]
        # the first row in table order that lists the name, as a scan of the rows finds it
        return min(rows, key=self.ops.index) if len(rows) == 2 else (rows[0] if rows else None)

    def condition(self, check: str) -> Condition:
        """The condition row with this check name."""
        return self._index.checks[check]

    def status(self, rule: OpRule, tier: str) -> tuple[Status, bool]:
        """The rule's status on ``tier`` and whether it is assumed (no cell for that tier)."""
        if tier == "pre-A13":
            if rule.pre_a13 is not None:
                return rule.pre_a13, False
            return rule.status[0], True
        if tier not in self.columns:
            raise ConfigError("unknown capability tier", file=str(RULES_FILE), where="columns",
                              expected=", ".join(self.columns), found=tier)
        return rule.status[self.columns[tier]], False

    def on_engine(self, rule: OpRule, tier: str) -> bool:
        """True when the guide's status puts the rule's operations on the engine on ``tier``."""
        status, _ = self.status(rule, tier)
        if status == "bridge":
            return rule.bridge == "engine"
        return status in ENGINE_STATUSES

    def citation(self, rule: OpRule | Condition, tier: str | None = None) -> str:
        """The source line a report prints for a row."""
        key = rule.source
        if isinstance(rule, OpRule) and tier == "pre-A13" and rule.pre_a13_source:
            key = rule.pre_a13_source
        text = self.sources[key]
        if isinstance(rule, OpRule) and key == "guide-A":
            text += f", table '{rule.table}'"
        return text


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=4)
def load_rules(path: str | None = None) -> RuleTable:
    """Read and validate the rule table (the shipped one by default)."""
    file = Path(path) if path else RULES_FILE
    try:
        # libyaml's parser when PyYAML has it (the same safe constructor; the pure-Python parser
        # took longer than compiling most models)
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
        return RuleTable.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError("not valid YAML", file=str(file), found=str(exc).splitlines()[0]) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(err["msg"], file=str(file), where=where or None) from None
