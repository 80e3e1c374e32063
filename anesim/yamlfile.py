"""Reading a YAML file a user wrote, with errors that name the file and the line.

The loader is PyYAML's safe loader with bounds a hostile file cannot get past: the file's size,
the nesting depth and the number of nodes *after alias expansion* (an alias bomb - a few anchors
each repeating the previous one ten times - is refused while it is being composed, before any
object is built or walked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from anesim.errors import AnesimError

MAX_YAML_BYTES = 16 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000  # expanded: an alias counts every node it stands for
# libyaml's parser when PyYAML was built with it: an order of magnitude faster than the
# pure-Python one (the 28 chip files take 2 s through it). Documents with aliases, or nested
# past the bound, go through the bounded pure-Python loader, which counts what aliases expand to.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that bounds depth and expanded node count while composing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> expanded node count

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, counting its expanded size and refusing what goes past the bounds."""
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._sizes.get(id(node))
        if size is None:
            if alias:  # an alias to a node still being composed: a structure that contains itself
                raise _Refused("an alias refers to the node that contains it (a recursive structure)", mark)
            size = 1 + sum(self._sizes[id(c)] for c in _children(node))
            self._sizes[id(node)] = size
        if size > MAX_YAML_NODES:
            raise _Refused(f"expands to more than {MAX_YAML_NODES:,} nodes (aliases counted in full)", mark)
        return node


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def read_bounded(path: Path, error: type[AnesimError], what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``; missing, unreadable or larger than ``max_bytes`` raises ``error``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"no such {what}", file=path) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", file=path) from None
    if len(raw) > max_bytes:
        raise error(f"{what} is too large", file=path, expected=f"<= {max_bytes:,} bytes",
                    found=f"more than {max_bytes:,}")
    return raw


def read_text(path: Path, error: type[AnesimError], what: str, max_bytes: int) -> str:
    """The UTF-8 text of ``path``; missing, unreadable, too large or not UTF-8 raises ``error``."""
    raw = read_bounded(path, error, what, max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text", file=path, where=f"byte {exc.start}",
                    found=f"byte {raw[exc.start]:#04x}") from None


def _plain(text: str) -> bool:
    """True when libyaml may load ``text`` as it is: no alias, nesting within the bound."""
    depth = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        if isinstance(event, yaml.AliasEvent):
            return False
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return False
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return True


def parse_yaml(text: str, error: type[AnesimError], file: str | Path | None) -> Any:
    """The parsed contents of YAML ``text``; malformed or unbounded YAML raises ``error``."""
    loader = None
    try:
        if _FAST_LOADER is not None and _plain(text):
            return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
        loader = BoundedLoader(text)  # the reader refuses control characters here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise error(f"malformed YAML: {problem}", file=file, where=where) from None
    except RecursionError:  # PyYAML's own recursion while constructing, past our depth check
        raise error("malformed YAML: nested too deeply", file=file) from None
    except ValueError as exc:  # a scalar PyYAML cannot convert: an int past 4300 digits, a bad date
        raise error("malformed YAML: unreadable value", file=file, found=" ".join(str(exc).split())[:100]) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path, error: type[AnesimError], what: str) -> Any:
    """The parsed contents of ``path``; a missing, unreadable or malformed file raises ``error``."""
    return parse_yaml(read_text(path, error, what, MAX_YAML_BYTES), error, path)
