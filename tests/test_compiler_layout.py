"""The compiler's shape: imports flow frontends -> graph -> lowering -> backend, modules stay small.

Every import of every module under ``anesim/compiler`` is read with :mod:`ast` (imports inside
functions and ``if TYPE_CHECKING:`` blocks included) and checked against the flow the
subpackages' ``__init__`` docstrings state (docs/compiler.md, "Layout"):

- ``frontends`` read model descriptions into a graph: they import ``graph`` (and the
  ``reference``), never the lowering or the backend;
- ``graph`` imports none of ``frontends``, ``lowering`` and ``backend``;
- ``reference`` (what ops and tasks compute) reads the graph's data structures only;
- ``lowering`` imports ``graph`` and ``reference``, never a frontend or the backend;
- ``backend`` imports ``lowering``, ``graph`` and ``reference``, never a frontend;
- the top-level modules (``api``, ``result``, ``apple``, ``__init__``) may import anything; a
  subpackage may name one of them only for type annotations.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILER = ROOT / "anesim" / "compiler"
PACKAGE = "anesim.compiler"
MAX_LINES = 600

TOP = "top"
ALLOWED = {
    "frontends": {"frontends", "graph", "reference"},
    "graph": {"graph", "reference"},
    "reference": {"reference", "graph"},
    "lowering": {"lowering", "graph", "reference"},
    "backend": {"backend", "lowering", "graph", "reference"},
}
# The reference may read the graph's data structures, nothing that transforms a graph (the
# passes import the reference for constant folding).
REFERENCE_MAY_IMPORT = {"anesim.compiler.graph", "anesim.compiler.graph.graph"}


@dataclass(frozen=True)
class Import:
    """One import statement's target module, its line, and whether it is for types only."""

    module: str
    line: int
    type_only: bool


@dataclass(frozen=True)
class Source:
    """One module of the compiler: its file (for messages) and its text."""

    file: str
    text: str
    is_package: bool


def compiler_sources() -> dict[str, Source]:
    """Every module of the compiler package by dotted name."""
    out = {}
    for path in sorted(COMPILER.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = Source(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"), is_package)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, source: Source, known: set[str], *, nested: bool = True) -> list[Import]:
    """The modules a module imports (``from P import m`` counts as ``P.m`` when that is a
    module of ``known``); with ``nested=False`` only its module-level statements."""
    tree = ast.parse(source.text, source.file)
    package = name if source.is_package else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(candidate if candidate in known else base, node.lineno, type_only))
        if nested or isinstance(node, ast.Module):
            for child in ast.iter_child_nodes(node):
                visit(child, type_only)

    visit(tree, False)
    return found


def layer_of(module: str) -> str | None:
    """The subpackage a compiler module belongs to, ``top`` for the top-level ones, None outside."""
    if module == PACKAGE:
        return TOP
    if not module.startswith(PACKAGE + "."):
        return None
    first = module[len(PACKAGE) + 1:].split(".")[0]
    return first if first in ALLOWED else TOP


def flow_violations(sources: dict[str, Source]) -> list[str]:
    """Every import that runs against the flow, as ``file:line imports module (why)``."""
    known = set(sources)
    problems = []
    for name, source in sources.items():
        layer = layer_of(name)
        if layer == TOP or layer is None:
            continue
        for imp in imports_of(name, source, known):
            target = layer_of(imp.module)
            if target is None:
                continue
            where = f"{source.file}:{imp.line} imports {imp.module}"
            if target == TOP:
                if not imp.type_only:
                    problems.append(f"{where} (a subpackage may name a top-level module for types only)")
            elif target not in ALLOWED[layer]:
                problems.append(f"{where} ({layer} may import only {sorted(ALLOWED[layer])})")
            elif layer == "reference" and target == "graph" and imp.module not in REFERENCE_MAY_IMPORT:
                problems.append(f"{where} (the reference reads the graph's data structures only)")
    return problems


def test_every_module_is_in_a_known_place() -> None:
    subpackages = {p.name for p in COMPILER.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(ALLOWED)
    assert {p.name for p in COMPILER.glob("*.py")} == {"__init__.py", "api.py", "result.py", "apple.py"}


def test_imports_flow_frontends_graph_lowering_backend() -> None:
    problems = flow_violations(compiler_sources())
    assert not problems, "imports against the flow:\n" + "\n".join(problems)


def test_the_check_reports_an_arrow_against_the_flow() -> None:
    """Imports inside functions count; type-only imports of a stage do too."""
    sources = compiler_sources()
    sources["anesim.compiler.graph._probe"] = Source(
        "anesim/compiler/graph/_probe.py",
        "def f():\n    from anesim.compiler.lowering import views\n    return views\n", False)
    sources["anesim.compiler.backend._probe"] = Source(
        "anesim/compiler/backend/_probe.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anesim.compiler.frontends.builder import Builder\n"
        "    from anesim.compiler.result import CompileResult\nfrom anesim.compiler import api\n", False)
    problems = [p for p in flow_violations(sources) if "_probe" in p]
    assert len(problems) == 3, problems
    assert "graph/_probe.py:2 imports anesim.compiler.lowering.views" in problems[0]
    assert "backend/_probe.py:3 imports anesim.compiler.frontends.builder" in problems[1]
    assert "backend/_probe.py:5 imports anesim.compiler.api" in problems[2]


def test_no_import_cycle_between_compiler_modules() -> None:
    """Module-level imports form no cycle (lazy imports inside functions are not followed)."""
    sources = compiler_sources()
    known = set(sources)
    edges = {name: {i.module for i in imports_of(name, src, known, nested=False)
                    if i.module in known and i.module != name and not i.type_only}
             for name, src in sources.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            walk(name)


def test_no_compiler_module_exceeds_600_lines() -> None:
    long = {src.file: n for src in compiler_sources().values()
            if (n := len(src.text.splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_subpackage_says_what_comes_in_and_what_goes_out() -> None:
    sources = compiler_sources()
    for name in ALLOWED:
        doc = ast.get_docstring(ast.parse(sources[f"{PACKAGE}.{name}"].text)) or ""
        assert re.search(r"\bIn comes?\b", doc) and re.search(r"\bout goe?s?\b", doc), name
