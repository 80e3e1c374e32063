"""The cross-generation model: chip parameters derived from public facts by stated rules.

``chips/model/scaling.yaml`` holds the shared constants (fitted once on the calibration set by
``anesim calibrate --shared``), tables such as the foundry nodes' relative switching energy, and
the rules. A chip file names a rule instead of a value (``weight_bytes_per_s: {rule:
weight_stream}``); the loader evaluates the rule over the chip's merged Params and facts and
writes a Param with provenance ``predicted`` whose source states the rule and its inputs.
Formulas are simpleeval expressions (arithmetic, comparisons, conditionals; no imports or I/O).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import simpleeval
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anesim.chips.params import Param
from anesim.datafiles import shipped_dir
from anesim.errors import ConfigError
from anesim.yamlfile import read_yaml

RULE_KEY = "rule"
SECTIONS = ("ne", "planar", "memory", "dram", "dispatch", "cpu", "power", "facts", "identity")
_DOTTED = re.compile(r"\b(" + "|".join(SECTIONS) + r")\.([a-z_0-9]+)")
_NAME = re.compile(r"\b[a-z_][a-z_0-9]*\b")


class Rule(BaseModel):
    """One derived parameter: the dotted key it sets and the formula that gives its value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    param: Annotated[str, Field(pattern=r"^[a-z]+\.[a-z_0-9]+$")]
    formula: Annotated[str, Field(min_length=1)]
    integer: bool = False
    text: Annotated[str, Field(min_length=1)]  # the rule in words, for sources and docs


class FitRange(BaseModel):
    """How ``calibrate --shared`` searches one fitted constant: where it starts and its bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: Annotated[float, Field(gt=0)]  # the surrogate's linearisation point and the search start
    low: Annotated[float, Field(gt=0)]
    high: Annotated[float, Field(gt=0)]


class ScalingModel(BaseModel):
    """The shipped cross-generation model: constants, tables, named inputs and rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Annotated[str, Field(alias="schema", pattern=r"^anesim-scaling/1$")]
    constants: dict[str, Param[float]]
    tables: dict[str, dict[str, Param[float]]] = {}
    inputs: dict[str, str] = {}
    rules: dict[str, Rule]
    fit: dict[str, FitRange] = {}


def model_path() -> Path:
    """The shipped scaling model file."""
    return shipped_dir("chips", "_chipdata") / "model" / "scaling.yaml"


@lru_cache(maxsize=4)
def _load(path: str) -> ScalingModel:
    data = read_yaml(Path(path), ConfigError, "scaling model")
    try:
        return ScalingModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first.get("msg", "invalid value"), file=path, where=f"key '{where}'") from None


def load_model(path: str | Path | None = None) -> ScalingModel:
    """The scaling model (the shipped one unless a path is given)."""
    return _load(str(path or model_path()))


def constants_of(model: ScalingModel) -> dict[str, float]:
    """The model's constants as plain numbers."""
    return {k: float(p.value) for k, p in model.constants.items()}


def _pow2ceil(x: float) -> int:
    """The smallest power of two >= x (1 for x <= 1)."""
    return 1 if x <= 1 else 1 << max(0, math.ceil(math.log2(x) - 1e-12))


def _namespace(data: Mapping[str, Any]) -> dict[str, SimpleNamespace]:
    out = {}
    for section in SECTIONS:
        block = _block(data, section)
        values = {}
        for key, item in block.items():
            value = item.get("value") if isinstance(item, Mapping) else item
            if isinstance(value, str):  # YAML 1.1 reads 6.0e9 as text; the schema coerces it alike
                try:
                    value = float(value)
                except ValueError:
                    pass
            values[key] = value
        out[section] = SimpleNamespace(**values)
    return out


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _block(data: Mapping[str, Any], section: str) -> Mapping[str, Any]:
    block = data.get(section)
    return block if isinstance(block, Mapping) else {}


def _bad_number(v: Any) -> bool:
    return isinstance(v, bool) or (isinstance(v, (int, float)) and not (math.isfinite(v) and v > 0))


def derive(data: dict[str, Any], file: Path, model: ScalingModel | None = None,
           constants: Mapping[str, float] | None = None) -> dict[str, str]:
    """Replace every ``{rule: NAME}`` Param in merged chip data by its value; returns key -> rule.

    Rules run in the model file's order, so a rule may read a parameter an earlier rule set.
    ``constants`` overrides the model's constants (cross-validation fits them per fold).
    """
    model = model or load_model()
    consts = constants_of(model)
    if constants:
        consts.update(constants)
    wanted: dict[str, str] = {}
    for section in SECTIONS:
        for key, item in _block(data, section).items():
            if isinstance(item, Mapping) and RULE_KEY in item:
                name = item[RULE_KEY]
                if not isinstance(name, str) or name not in model.rules or model.rules[name].param != f"{section}.{key}":
                    raise ConfigError("unknown rule for this parameter", file=file, where=f"key '{section}.{key}'",
                                      expected=" or ".join(n for n, r in model.rules.items()
                                                           if r.param == f"{section}.{key}") or "a value",
                                      found=repr(name))
                wanted[f"{section}.{key}"] = name
    if not wanted:
        return {}
    tables = {n: {k: float(p.value) for k, p in t.items()} for n, t in model.tables.items()}

    def table(name: str, key: Any) -> float:
        try:
            return tables[name][str(key)]
        except KeyError:
            raise ConfigError("no table entry", file=file, where=f"table '{name}'",
                              expected=", ".join(tables.get(name, {})), found=repr(key)) from None

    functions = {"pow2ceil": _pow2ceil, "min": min, "max": max, "table": table}
    for rule_name, rule in model.rules.items():
        if rule.param not in wanted:
            continue
        names: dict[str, Any] = {**consts, **_namespace(data)}
        inputs = [m for m in _DOTTED.findall(rule.formula + " " + " ".join(model.inputs.values()))]
        if any(_bad_number(getattr(names[sec], key, None)) for sec, key in inputs):
            # an input the schema will refuse (zero cores, a negative clock): leave a placeholder so
            # that validation reports the input, not the rule
            section, key = rule.param.split(".")
            data[section][key] = {"value": 1 if rule.integer else 1.0, "provenance": "predicted",
                                  "source": f"rule {rule_name} not evaluated: an input is invalid"}
            continue
        ev = simpleeval.EvalWithCompoundTypes(names=names, functions=functions)
        try:
            for input_name, expr in model.inputs.items():
                if re.search(rf"\b{input_name}\b", rule.formula):
                    names[input_name] = ev.eval(expr)
            value = ev.eval(rule.formula)
            if value is None or not math.isfinite(float(value)) or float(value) <= 0:
                raise ValueError(f"gave {value!r}")
        except ConfigError:
            raise
        except Exception as exc:  # a missing fact (None in arithmetic) or a bad formula
            raise ConfigError(f"rule '{rule_name}' cannot be evaluated ({exc})", file=file,
                              where=f"key '{rule.param}'",
                              expected="the facts the rule reads: " + ", ".join(sorted(set(
                                  ".".join(m) for m in _DOTTED.findall(rule.formula + " ".join(model.inputs.values())))))
                              ) from None
        value = int(round(value)) if rule.integer else float(f"{float(value):.6g}")
        used = [f"{n} = {_fmt(consts[n])}" for n in consts if re.search(rf"\b{n}\b", rule.formula)]
        dotted = sorted(set(".".join(m) for m in _DOTTED.findall(
            rule.formula + " " + " ".join(e for n, e in model.inputs.items() if re.search(rf"\b{n}\b", rule.formula)))))
        for d in dotted:
            sec, key = d.split(".")
            used.append(f"{d} = {_fmt(getattr(names[sec], key, None))}")
        section, key = rule.param.split(".")
        note = data[section][key].get("note")
        derived = {"value": value, "provenance": "predicted",
                   "source": f"rule {rule_name} (chips/model/scaling.yaml): {rule.text}; " + ", ".join(used)}
        if note:
            derived["note"] = note
        data[section][key] = derived
    return wanted
