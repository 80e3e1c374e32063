"""The program file format of ``programs/*.yaml``: a model as data.

    name: basic_block
    seed: 0
    inputs:
      x: {shape: [1, 64, 56, 56]}
    blocks:                           # named sub-blocks, instantiated with `use:`
      conv_bn_relu:
        params: {x: null, c: null, stride: 1}
        ops:
          - {op: conv2d, in: $x, out: y, out_channels: $c, kernel: 3, stride: $stride,
             padding: 1, bias: true, activation: relu}
        returns: y
    ops:
      - {use: conv_bn_relu, with: {x: x, c: 64}, out: a}
      - {op: conv2d, out: b, out_channels: 64, kernel: 3, padding: 1, bias: true}  # in: previous
      - {op: add, in: [b, x], out: c}
      - repeat: 2                     # the body once per value of the loop variable
        as: i
        ops:
          - {op: relu, in: "c${i}", out: "c${i+1}"}
    outputs: [c2]

Values ``$name`` and ``${expression}`` are substituted from block parameters, loop variables and
the program's own ``params:`` (named numbers with defaults, visible everywhere, input and
constant shapes included; ``load_program_file(path, params={"batch": 4})`` overrides them)
(``+ - * / // %`` on numbers). An op without ``in:`` reads the previous op's output. Weights are
generated from the file's seed and the op's name unless given (``weights: {init: normal,
std: 0.02}``, or the name of a constant). Every error names the file and the key path.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.graph.constants import INIT_KINDS
from anesim.compiler.graph.graph import Graph
from anesim.compiler.graph.ops import SPECS
from anesim.errors import AnesimError, ProgramError
from anesim.limits import check_steps
from anesim.yamlfile import read_yaml

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]  # an initialiser's parameters
MAX_EXPANDED_OPS = 200_000
MAX_DEPTH = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputModel(_Strict):
    """An input tensor."""

    shape: list[int | str] = Field(min_length=1, max_length=4)  # a string: an expression of the params
    dtype: str = "fp16"


class ConstantModel(_Strict):
    """A named constant: given values or a seeded initialiser."""

    shape: list[int | str] | None = Field(default=None, min_length=1, max_length=4)  # as an input's shape
    value: float | list[Any] | None = None
    init: str | None = None
    std: FiniteFloat | None = None
    low: FiniteFloat | None = None
    high: FiniteFloat | None = None
    gain: FiniteFloat | None = None
    seed: int | None = None


class BlockModel(_Strict):
    """A named sub-block."""

    params: dict[str, Any] | list[str] = Field(default_factory=dict)
    ops: list[dict[str, Any]]
    returns: str | list[str]


class ProgramModel(_Strict):
    """The whole file."""

    name: str = Field(min_length=1)
    description: str | None = None
    seed: int = 0
    params: dict[str, int | float] = Field(default_factory=dict)  # named numbers, overridable when loading
    inputs: dict[str, InputModel] = Field(min_length=1)
    constants: dict[str, ConstantModel] = Field(default_factory=dict)
    blocks: dict[str, BlockModel] = Field(default_factory=dict)
    ops: list[dict[str, Any]] = Field(min_length=1)
    outputs: list[str] = Field(min_length=1)


# Keys an op entry may carry besides the op's own attributes.
META_KEYS = {"op", "in", "out"}
# Layer-level keys (weights and shapes the builder turns into constants), per op.
LAYER_KEYS: dict[str, set[str]] = {
    "conv2d": {"out_channels", "kernel", "stride", "padding", "dilation", "groups", "weights", "bias",
               "activation", "weight_format", "palette_bits", "sparsity"},
    "linear": {"out_features", "weights", "bias", "activation", "weight_format", "palette_bits", "sparsity"},
    "batch_norm": {"eps", "gamma", "beta", "mean", "var"},
    "layer_norm": {"axis", "eps", "gamma", "beta"},
    "rms_norm": {"axis", "eps", "gamma"},
}
REQUIRED_KEYS = {"conv2d": ("out_channels", "kernel"), "linear": ("out_features",)}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_SUBST = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _path(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Expander:
    """Expands blocks and repeats into builder calls, tracking key paths for errors."""

    def __init__(self, model: ProgramModel, file: str, params: dict[str, Any] | None = None) -> None:
        self.model = model
        self.file = file
        self.params = {**model.params, **(params or {})}  # visible in every block, under its own names
        self.builder = Builder(model.name, seed=model.seed, source=file)
        self.count = 0
        # each expression's syntax tree, parsed once: a block used a hundred times repeats its
        # expressions a hundred times (the tree is only read)
        self._trees: dict[str, ast.Expression] = {}

    def error(self, key: str, problem: str, context: str = "", **kw: Any) -> ProgramError:
        where = f"key '{key}'" + (f" ({context})" if context else "")
        return ProgramError(problem, file=self.file, where=where, **kw)

    # -- substitution ----------------------------------------------------------------------

    def _eval(self, text: str, env: dict[str, Any], key: str, ctx: str) -> Any:
        tree = self._trees.get(text)
        if tree is None:
            try:
                tree = self._trees[text] = ast.parse(text.strip(), mode="eval")
            except SyntaxError:
                raise self.error(key, "malformed expression", ctx, found=repr(text)) from None
        return self._walk(tree.body, text, env, key, ctx)

    # A method, not a closure in _eval: a recursive closure refers to itself, and the cycle left
    # one garbage function per expression for the cyclic collector.
    def _walk(self, node: ast.AST, text: str, env: dict[str, Any], key: str, ctx: str) -> Any:
        """The value of one node of an expression's syntax tree."""
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in self.params:
                return self.params[node.id]
            raise self.error(key, "unknown name in expression", ctx, found=repr(node.id),
                             expected="a block parameter, loop variable or program parameter")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left = self._walk(node.left, text, env, key, ctx)
            right = self._walk(node.right, text, env, key, ctx)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
                raise self.error(key, "arithmetic needs numbers", ctx, found=repr(text))
            try:
                return _BINOPS[type(node.op)](left, right)
            except ZeroDivisionError:
                raise self.error(key, "division by zero", ctx, found=repr(text)) from None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            base = self._walk(node.left, text, env, key, ctx)
            exponent = self._walk(node.right, text, env, key, ctx)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (base, exponent)):
                raise self.error(key, "arithmetic needs numbers", ctx, found=repr(text))
            return self._power(base, exponent, text, key, ctx)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._walk(node.operand, text, env, key, ctx)
            if not isinstance(value, (int, float)):
                raise self.error(key, "arithmetic needs numbers", ctx, found=repr(text))
            return -value if isinstance(node.op, ast.USub) else value
        raise self.error(key, "unsupported expression", ctx, found=repr(text),
                         expected="numbers, names and + - * / // % **")

    def _power(self, base: int | float, exponent: int | float, text: str, key: str, ctx: str) -> int | float:
        """``base ** exponent``: whole for whole numbers and a non-negative exponent, else a float
        (``(c / heads) ** -0.5``); refused past 2**63 before it is computed (a file could otherwise
        ask for a number of billions of digits)."""
        if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
            if abs(base) > 1 and exponent * math.log2(abs(base)) > 63:
                raise self.error(key, "power too large", ctx, found=repr(text), expected="at most 2**63")
            return base ** exponent
        try:
            value = float(base) ** float(exponent)
        except (OverflowError, ZeroDivisionError):
            value = math.inf
        if isinstance(value, complex) or not math.isfinite(value):
            raise self.error(key, "power out of range", ctx, found=repr(text),
                             expected="a finite real number (no negative base to a fractional exponent, no 0 to a negative one)")
        return value

    def subst(self, value: Any, env: dict[str, Any], key: str, ctx: str) -> Any:
        """Replace $name and ${expr} in strings (recursively in lists and mappings)."""
        if isinstance(value, str):
            whole = _SUBST.fullmatch(value.strip())
            if whole:
                return self._eval(whole.group(1) or whole.group(2), env, key, ctx)
            if "$" not in value:
                return value
            return _SUBST.sub(lambda m: str(self._eval(m.group(1) or m.group(2), env, key, ctx)), value)
        if isinstance(value, list):
            return [self.subst(v, env, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.subst(v, env, f"{key}.{k}", ctx) for k, v in value.items()}
        return value

    # -- expansion -------------------------------------------------------------------------

    def run(self) -> Graph:
        """Build the graph."""
        b = self.builder
        for name, spec in self.model.inputs.items():
            if spec.dtype not in ("fp16", "uint8"):
                raise self.error(f"inputs.{name}.dtype", "program inputs must be fp16 or uint8",
                                 found=repr(spec.dtype))
            shape = self._dims(spec.shape, f"inputs.{name}.shape")
            self._guard(f"inputs.{name}", lambda n=name, s=spec, sh=shape: b.input(n, sh, s.dtype))
        for name, spec in self.model.constants.items():
            self._constant(name, spec)
        scope = Scope(None, "", {})
        self._ops(self.model.ops, "ops", scope, {}, "", 0)
        for i, out in enumerate(self.model.outputs):
            resolved = scope.resolve(out)
            if resolved not in b.graph.values:
                raise self.error(f"outputs[{i}]", "unknown tensor", found=repr(out))
            self._guard(f"outputs[{i}]", lambda o=resolved: b.output(o))
        return b.build()

    def _dims(self, dims: list[int | str], key: str) -> list[int]:
        """A shape whose entries may be expressions of the program's params, each a positive integer."""
        shape = [self.subst(d, {}, f"{key}[{i}]", "") for i, d in enumerate(dims)]
        if any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
            raise self.error(key, "dimensions must be positive integers", found=shape)
        return shape

    def _guard(self, key: str, fn: Any, ctx: str = "") -> Any:
        try:
            return fn()
        except ProgramError:
            raise
        except AnesimError as exc:
            raise self.error(key, exc.problem, ctx, expected=exc.expected, found=exc.found) from None

    def _constant(self, name: str, spec: ConstantModel) -> None:
        key = f"constants.{name}"
        if spec.value is None and spec.init is None:
            raise self.error(key, "a constant needs 'value' or 'init'")
        if spec.init is not None and spec.init not in INIT_KINDS:
            raise self.error(f"{key}.init", "unknown initialiser", expected=", ".join(INIT_KINDS),
                             found=repr(spec.init))
        extra = {k: getattr(spec, k) for k in ("std", "low", "high", "gain", "seed") if getattr(spec, k) is not None}
        value = spec.value if spec.value is not None else spec.init
        shape = tuple(self._dims(spec.shape, f"{key}.shape")) if spec.shape else None
        self._guard(key, lambda: self.builder.constant(name, value, shape=shape, **extra))

    def _ops(self, ops: list[Any], key: str, scope: Scope, env: dict[str, Any], ctx: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.error(key, "blocks and repeats nest too deeply", ctx, expected=f"at most {MAX_DEPTH} levels")
        for i, entry in enumerate(ops):
            k = f"{key}[{i}]"
            if not isinstance(entry, dict):
                raise self.error(k, "an op must be a mapping", ctx, found=type(entry).__name__)
            if "repeat" in entry:
                self._repeat(entry, k, scope, env, ctx, depth)
            elif "use" in entry:
                self._use(entry, k, scope, env, ctx, depth)
            elif "op" in entry:
                self._op(entry, k, scope, env, ctx)
            else:
                raise self.error(k, "an op needs one of 'op', 'use' or 'repeat'", ctx,
                                 found=", ".join(sorted(map(str, entry))) or "an empty mapping")

    def _repeat(self, entry: dict[str, Any], key: str, scope: Scope, env: dict[str, Any], ctx: str,
                depth: int) -> None:
        extra = set(entry) - {"repeat", "as", "ops"}
        if extra:
            raise self.error(f"{key}.{sorted(extra)[0]}", "unknown key", ctx, expected="repeat, as, ops")
        count = self.subst(entry["repeat"], env, f"{key}.repeat", ctx)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise self.error(f"{key}.repeat", "repeat needs a non-negative integer", ctx, found=repr(count))
        var = entry.get("as", "i")
        if not isinstance(var, str) or not var.isidentifier():
            raise self.error(f"{key}.as", "the loop variable must be a name", ctx, found=repr(var))
        body = entry.get("ops")
        if not isinstance(body, list) or not body:
            raise self.error(f"{key}.ops", "repeat needs a non-empty list of ops", ctx)
        check_steps(self.count + count, file=self.file, field=f"key '{key}.repeat'")
        for n in range(count):
            self.count += 1  # an iteration is a step even when its body adds no op
            if self.count > MAX_EXPANDED_OPS:
                raise self.error(f"{key}.repeat", "the program expands to too many steps", ctx,
                                 expected=f"at most {MAX_EXPANDED_OPS}")
            self._ops(body, f"{key}.ops", scope, {**env, var: n}, _ctx(ctx, f"{var}={n}"), depth + 1)

    def _use(self, entry: dict[str, Any], key: str, scope: Scope, env: dict[str, Any], ctx: str,
             depth: int) -> None:
        extra = set(entry) - {"use", "with", "out"}
        if extra:
            raise self.error(f"{key}.{sorted(extra)[0]}", "unknown key", ctx, expected="use, with, out")
        name = self.subst(entry["use"], env, f"{key}.use", ctx)
        block = self.model.blocks.get(name) if isinstance(name, str) else None
        if block is None:
            raise self.error(f"{key}.use", "unknown block", ctx,
                             expected=", ".join(self.model.blocks) or "a block defined under 'blocks'",
                             found=repr(name))
        args = entry.get("with", {}) or {}
        if not isinstance(args, dict):
            raise self.error(f"{key}.with", "'with' must be a mapping of parameter values", ctx)
        params = block.params if isinstance(block.params, dict) else {p: None for p in block.params}
        unknown = set(args) - set(params)
        if unknown:
            raise self.error(f"{key}.with.{sorted(unknown)[0]}", "unknown block parameter", ctx,
                             expected=", ".join(params) or "none")
        values: dict[str, Any] = {}
        for p, default in params.items():
            if p in args:
                v = self.subst(args[p], env, f"{key}.with.{p}", ctx)
                values[p] = scope.resolve(v) if isinstance(v, str) else v
            elif default is not None:
                values[p] = default
            else:
                raise self.error(f"{key}.with", "missing block parameter", ctx, found=repr(p))
        out = self.subst(entry.get("out"), env, f"{key}.out", ctx)
        if out is None:
            out = self._auto(f"{name}")
        returns = block.returns if isinstance(block.returns, list) else [block.returns]
        returns = [self.subst(r, values, f"blocks.{name}.returns", ctx) for r in returns]
        outs = out if isinstance(out, list) else [out]
        if len(outs) != len(returns):
            raise self.error(f"{key}.out", "the block returns a different number of tensors", ctx,
                             expected=len(returns), found=len(outs))
        prefix = outs[0] if len(outs) == 1 else "/".join(map(str, outs))
        inner = Scope(scope, scope.qualify(str(prefix)), {})
        inner_ctx = _ctx(ctx, f"block '{name}' used at {key}")
        self._ops(block.ops, f"blocks.{name}.ops", inner, values, inner_ctx, depth + 1)
        for target, ret in zip(outs, returns):
            local = inner.names.get(ret)
            if local is None:
                raise self.error(f"blocks.{name}.returns", "the block does not define this tensor", inner_ctx,
                                 found=repr(ret))
            full = scope.qualify(str(target))
            if full in self.builder.graph.values:
                raise self.error(f"{key}.out", "a tensor of this name already exists", ctx, found=repr(full))
            self._alias(full, local, f"{key}.out", ctx)
            scope.define(str(target), full)

    def _alias(self, name: str, source: str, key: str, ctx: str) -> None:
        if name == source:
            return
        self._guard(key, lambda: self.builder.op("identity", [source], name=name, where=f"key '{key}'"), ctx)

    def _auto(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def _op(self, entry: dict[str, Any], key: str, scope: Scope, env: dict[str, Any], ctx: str) -> None:
        self.count += 1
        if self.count > MAX_EXPANDED_OPS:
            raise self.error(key, "the program expands to too many ops", ctx, expected=f"at most {MAX_EXPANDED_OPS}")
        op = entry["op"]
        if not isinstance(op, str) or op not in SPECS:
            raise self.error(f"{key}.op", "unknown operation", ctx, expected="one of " + ", ".join(sorted(SPECS)),
                             found=repr(op))
        allowed = _allowed_keys(op)
        for k in entry:
            if k not in allowed:
                raise self.error(f"{key}.{k}", f"unknown key for {op}", ctx,
                                 expected=", ".join(sorted(allowed - {'op'})))
        for req in REQUIRED_KEYS.get(op, ()):
            if req not in entry:
                raise self.error(f"{key}.{req}", f"{op} needs '{req}'", ctx)
        # numbers and plain names are most values: only the others are worth a call (and a key path)
        values = {k: v if isinstance(v, (int, float)) or (isinstance(v, str) and "$" not in v)
                  else self.subst(v, env, f"{key}.{k}", ctx) for k, v in entry.items() if k != "op"}
        raw_in = values.pop("in", None)
        if raw_in is None:
            if scope.last is None:
                raise self.error(f"{key}.in", "no input given and no previous op to read", ctx)
            inputs = [scope.last]
        else:
            inputs = raw_in if isinstance(raw_in, list) else [raw_in]
        if not inputs:
            raise self.error(f"{key}.in", "an op needs at least one input", ctx)
        if op in LAYER_KEYS and len(inputs) != 1:
            raise self.error(f"{key}.in", f"{op} takes one input (its weights are attributes)", ctx,
                             found=len(inputs))
        names = []
        for j, name in enumerate(inputs):
            if not isinstance(name, str):
                raise self.error(f"{key}.in" + (f"[{j}]" if isinstance(raw_in, list) else ""),
                                 "inputs must be tensor names", ctx, found=repr(name))
            resolved = scope.resolve(name)
            if resolved not in self.builder.graph.values:
                raise self.error(f"{key}.in" + (f"[{j}]" if isinstance(raw_in, list) else ""), "unknown tensor", ctx,
                                 found=repr(name))
            names.append(resolved)
        out = values.pop("out", None)
        if out is not None and not isinstance(out, str):
            raise self.error(f"{key}.out", "the output must be a tensor name", ctx, found=repr(out))
        local = out or self._auto(op)
        full = scope.qualify(local)
        if full in self.builder.graph.values:
            raise self.error(f"{key}.out", "a tensor of this name already exists", ctx, found=repr(full))
        where = f"key '{key}'" + (f" ({ctx})" if ctx else "")
        try:
            self._call(op, names, full, values, where, key, ctx)
        except ProgramError:
            raise
        except (AnesimError, TypeError, ValueError) as exc:
            # A value of the wrong kind reaching a builder method (a list where a number goes).
            problem = exc.problem if isinstance(exc, AnesimError) else f"bad value: {exc}"
            named = [k for k in re.findall(r"'(\w+)'", problem) if k in entry]
            at = f"{key}.{named[0]}" if named else key
            raise self.error(at, problem, ctx, expected=getattr(exc, "expected", None),
                             found=getattr(exc, "found", None)) from None
        scope.define(local, scope.result(full, self.builder))

    def _call(self, op: str, inputs: list[str], name: str, attrs: dict[str, Any], where: str, key: str,
              ctx: str) -> None:
        b = self.builder
        for wkey in ("weights", "bias", "gamma", "beta", "mean", "var"):
            if isinstance(attrs.get(wkey), str) and attrs[wkey] in b.graph.constants:
                attrs[wkey] = b.tensor(attrs[wkey])
        if op == "conv2d":
            t = b.conv2d(inputs[0], name=name, **attrs)
        elif op == "linear":
            t = b.linear(inputs[0], name=name, **attrs)
        elif op == "batch_norm":
            t = b.batch_norm(inputs[0], name=name, **attrs)
        elif op == "layer_norm":
            t = b.layer_norm(inputs[0], name=name, **attrs)
        elif op == "rms_norm":
            t = b.rms_norm(inputs[0], name=name, **attrs)
        elif op == "clip" and len(inputs) == 1 and "activation" not in attrs:  # (a bound past fp16: max/min)
            bounds = {**SPECS["clip"].defaults, **attrs}
            t = b.clip(inputs[0], bounds["min"], bounds["max"], name=name)
        else:
            activation = attrs.pop("activation", None)
            t = b.op(op, inputs, name=name, where=where, **attrs)
            if activation:
                t = b._activate(t, activation)
        node = b.graph.nodes[-1]
        if not node.where or node.where.startswith("op '"):
            for n in reversed(b.graph.nodes):  # not a reversed copy: that made the expansion quadratic
                if n.where and not n.where.startswith("op '"):
                    break
                n.where = where
        self._last = t.name


class Scope:
    """Names visible in one block instance (locals first, then the enclosing scopes)."""

    def __init__(self, parent: Scope | None, prefix: str, names: dict[str, str]) -> None:
        self.parent = parent
        self.prefix = prefix
        self.names = names
        self.last: str | None = None

    def qualify(self, local: str) -> str:
        """The global name of a tensor defined here."""
        return f"{self.prefix}/{local}" if self.prefix else local

    def define(self, local: str, full: str) -> None:
        """Record a tensor defined in this scope."""
        self.names[local] = full
        self.last = full

    def result(self, full: str, builder: Builder) -> str:
        """The tensor an op produced (an attached activation keeps the op's name)."""
        return full

    def resolve(self, name: str) -> str:
        """A name as seen from this scope."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return name


@lru_cache(maxsize=None)
def _allowed_keys(op: str) -> frozenset[str]:
    """The keys an op entry may have (checked for every op of an expanded program)."""
    allowed = META_KEYS | LAYER_KEYS.get(op, set(SPECS[op].defaults))
    return frozenset(allowed if op in LAYER_KEYS else allowed | {"activation"})


def _ctx(outer: str, inner: str) -> str:
    return f"{outer}; {inner}" if outer else inner


def _validation_error(exc: ValidationError, file: str) -> ProgramError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        problem = "unknown key"
    elif kind == "missing":
        problem = "missing key"
    else:
        problem = first.get("msg", "invalid value")
    found = first.get("input")
    found_text = None if kind in ("extra_forbidden", "missing") or isinstance(found, (dict, list)) else repr(found)
    return ProgramError(problem, file=file, where=f"key '{_path(loc)}'" if loc else None, found=found_text)


def parse_program(data: Any, file: str = "<program>", params: dict[str, Any] | None = None) -> Graph:
    """Validate a parsed program mapping and build its graph, ``params`` overriding the file's ``params:``."""
    if not isinstance(data, dict):
        raise ProgramError("a program file must be a mapping of keys", file=file,
                           expected="a YAML mapping", found=type(data).__name__)
    try:
        model = ProgramModel.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, file) from None
    for name, value in (params or {}).items():
        if name not in model.params:
            raise ProgramError("unknown program parameter", file=file, where="key 'params'",
                               expected=", ".join(model.params) or "none (the file declares no params)",
                               found=repr(name))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProgramError(f"program parameter '{name}' must be a number", file=file, found=repr(value))
    return _Expander(model, file, params).run()


def load_program_file(path: str | Path, params: dict[str, Any] | None = None) -> Graph:
    """Read, validate and expand a program YAML file into a graph (``params`` override its ``params:``)."""
    file = Path(path)
    data = read_yaml(file, ProgramError, "program file")
    return parse_program(data, str(path), params)


def declared_params(path: str | Path) -> dict[str, int | float]:
    """The ``params:`` a program file declares, with their defaults (without expanding the program)."""
    data = read_yaml(Path(path), ProgramError, "program file")
    raw = data.get("params", {}) if isinstance(data, dict) else {}
    return dict(raw) if isinstance(raw, dict) else {}
