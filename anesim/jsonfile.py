"""Reading a JSON file a user wrote: bounded size and depth, UTF-8 checked, errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anesim.errors import AnesimError
from anesim.yamlfile import read_text

MAX_JSON_BYTES = 64 << 20
MAX_JSON_DEPTH = 64


def parse_json(text: str, error: type[AnesimError], file: str | Path | None, what: str = "JSON") -> Any:
    """The value of JSON ``text``; malformed, too deep or with an unreadable number raises ``error``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON", file=file, where=f"line {exc.lineno}, column {exc.colno}",
                    found=exc.msg) from None
    except RecursionError:
        raise error(f"{what} is nested too deeply", file=file, expected=f"at most {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # an integer literal too long for Python's int conversion
        raise error(f"{what} holds an unreadable number", file=file, found=str(exc).split(";")[0]) from None
    check_depth(value, error, file, what)
    return value


def check_depth(value: Any, error: type[AnesimError], file: str | Path | None, what: str,
                limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse lists and dictionaries nested deeper than ``limit`` (later passes recurse over them)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise error(f"{what} is nested too deeply", file=file, expected=f"at most {limit} levels",
                        found=f"more than {limit}")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def read_json(path: str | Path, error: type[AnesimError], what: str = "JSON file",
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The parsed contents of the JSON file at ``path``; every failure raises ``error`` naming it."""
    return parse_json(read_text(Path(path), error, what, max_bytes), error, str(path), what)
