"""Mutations shared by the fuzzers: bytes, parsed documents (JSON / YAML values) and hostile text."""

from __future__ import annotations

import copy
import random
from typing import Any

AWKWARD_NUMBERS: tuple[Any, ...] = (
    0, 1, -1, 2, 3, 7, 63, 64, 65, 255, 4096, 65535, 65536, 1 << 31, (1 << 31) - 1, 1 << 32, 1 << 40,
    1 << 62, 1 << 64, 10**18, 1_000_000_000, -(1 << 31), 0.5, -0.0, 1e-300, 1e300, float("inf"),
    float("-inf"), float("nan"),
)
AWKWARD_VALUES: tuple[Any, ...] = AWKWARD_NUMBERS + (
    None, True, False, "", "x", "$x", "${1/0}", "${10**10}", "0x", "0xffffffff", [], {}, [0], [1, 2],
    [4096, 4096, 4096], [1, 1 << 20, 1 << 20], [-1, 3], {"value": 1}, "nan", "é", "\x00",
)


def flip_bytes(data: bytes, rng: random.Random, hot: int | None = None) -> bytes:
    """Truncation, bit flips, awkward 32-bit words, or a mix; offsets favour the first ``hot`` bytes."""
    out = bytearray(data)
    if not out:
        return bytes(rng.randbytes(rng.randrange(1, 64)))
    span_hot = min(hot or len(out), len(out))

    def where(width: int = 1) -> int:
        span = span_hot if rng.random() < 0.85 else len(out)
        return rng.randrange(0, max(span - width, 1))

    roll = rng.random()
    if roll < 0.15:
        return bytes(out[:rng.randrange(0, len(out))])
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        r = rng.random()
        if r < 0.45:
            i = where(4)
            word = rng.choice((0, 1, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 0x40000000, rng.getrandbits(32)))
            out[i:i + 4] = word.to_bytes(4, "little")
        elif r < 0.55:
            i = where(8)
            out[i:i + 8] = rng.choice((1 << 40, (1 << 64) - 1, 1 << 62, 0)).to_bytes(8, "little")
        else:
            out[where()] ^= 1 << rng.randrange(8)
    if roll > 0.92:
        out = out[:rng.randrange(len(out) // 2, len(out) + 1)]
    return bytes(out)


def paths_of(doc: Any) -> list[tuple[Any, ...]]:
    """Every key path into a nested dict/list document (the root excluded)."""
    paths: list[tuple[Any, ...]] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        if path:
            paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((child, path + (key,)) for key, child in items)
    return sorted(paths, key=repr)


def awkward_like(value: Any, rng: random.Random) -> Any:
    """A replacement for ``value``: usually an awkward number near its kind, sometimes anything."""
    if isinstance(value, bool) or rng.random() < 0.3:
        return copy.deepcopy(rng.choice(AWKWARD_VALUES))
    if isinstance(value, (int, float)):
        r = rng.random()
        if r < 0.5:
            return rng.choice(AWKWARD_NUMBERS)
        if r < 0.75:
            return value * rng.choice((0, -1, 2, 10, 1000, 10**6, 10**9))
        return value + rng.choice((-1, 1, -value - 1))
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        out = list(value)
        out[rng.randrange(len(out))] = rng.choice(AWKWARD_NUMBERS)
        return out if rng.random() < 0.7 else out + [rng.choice((1, 2, 7))]
    return copy.deepcopy(rng.choice(AWKWARD_VALUES))


def mutate_doc(doc: Any, rng: random.Random, edits: int | None = None) -> Any:
    """A deep copy of ``doc`` with one to four values replaced, keys removed or containers grown."""
    out = copy.deepcopy(doc)
    for _ in range(edits or rng.choice((1, 1, 1, 2, 3, 4))):
        paths = paths_of(out)
        if not paths:
            return out
        leaves = [p for p in paths if _is_leaf(out, p)]
        path = rng.choice(leaves if leaves and rng.random() < 0.75 else paths)
        parent = out
        try:
            for key in path[:-1]:
                parent = parent[key]
            key = path[-1]
            r = rng.random()
            if isinstance(parent, dict) and r < 0.15:
                parent.pop(key, None)
            elif isinstance(parent, dict) and r < 0.22:
                # (a copy: a later edit of this case must not change the table for the next case)
                parent[rng.choice(("extra", "value", "repeat", "shape", "size"))] = copy.deepcopy(
                    rng.choice(AWKWARD_VALUES))
            elif isinstance(parent, list) and r < 0.3:
                parent.append(copy.deepcopy(parent[key]))
            else:
                parent[key] = awkward_like(parent[key], rng)
        except (KeyError, IndexError, TypeError):
            continue
    return out


def _is_leaf(doc: Any, path: tuple[Any, ...]) -> bool:
    node = doc
    for key in path:
        node = node[key]
    return not isinstance(node, (dict, list)) or (isinstance(node, list) and all(
        isinstance(v, (int, float)) for v in node))


def deep_nest(depth: int, open_: str = "[", close: str = "]") -> str:
    """Text of a container nested ``depth`` times."""
    return open_ * depth + close * depth


def yaml_alias_bomb(levels: int = 9, fan: int = 10) -> str:
    """The billion-laughs document: each anchor repeats the previous one ``fan`` times."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


def hostile_text(text: str, rng: random.Random) -> str | bytes:
    """Text-level damage: an alias bomb, deep nesting, invalid UTF-8, NULs, truncation or a byte flip."""
    r = rng.random()
    if r < 0.12:
        return yaml_alias_bomb(rng.choice((6, 9, 12))) + text if rng.random() < 0.5 else text + "\n" + yaml_alias_bomb()
    if r < 0.22:
        depth = rng.choice((70, 500, 5000, 100_000))
        return text + f"\nnest: {deep_nest(depth, *rng.choice((('[', ']'), ('{a: ', '}'))))}\n"
    if r < 0.32:
        raw = bytearray(text.encode("utf-8"))
        raw[rng.randrange(len(raw))] = rng.choice((0xFF, 0xC3, 0x80, 0x00))
        return bytes(raw)
    if r < 0.45:
        return text[:rng.randrange(len(text))]
    if r < 0.55:
        return text + "\n" + rng.choice(("x: &r [*r]", "? [a, b]\n: c", "!!python/object:os.system [ls]",
                                         "x: !!binary AAAA", "x: 1e999999", "x: " + "9" * 5000, "\t- x"))
    return flip_bytes(text.encode("utf-8"), rng).decode("latin-1")
