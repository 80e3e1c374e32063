"""Seeded mutation fuzzing of the decoder, shared by the test suite and benchmarks/fuzz_hwx.py.

A case takes one real sample, damages it (truncation, byte flips, a u32 overwritten with an
awkward value such as 0, 0xFFFFFFFF or a huge count, or a mix), then runs the whole pipeline:
decode, listing, program model, JSON form and re-encode. The only acceptable failure is an
AnesimError; when decoding succeeds the re-encoded bytes must equal the damaged input, since
the decoder keeps every byte.
"""

from __future__ import annotations

import copy

import json
import random
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from anesim.errors import AnesimError
from anesim.hwx import decode_bytes, encode, listing, to_json
from anesim.hwx.raw import Sidecar, load_sidecar
from anesim.hwx.to_program import build_program

AWKWARD_WORDS = (0, 1, 2, 3, 4, 0x10, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x4000, 0xFFFF, 0x10000,
                 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0xBEEFFACE, 0x30000000, 0xF401F800, 0x3C000000)


@dataclass(frozen=True)
class Sample:
    """A starting point: the bytes of a real program and, for raw buffers, its sidecar."""

    name: str
    data: bytes
    sidecar: Sidecar | None = None
    hot: int = 0x5000  # mutations favour the first ``hot`` bytes, where the structure lives


@dataclass
class Outcome:
    """What happened to one case."""

    decoded: bool
    error: str  # the AnesimError class name, or '' when decoding succeeded
    seconds: float


@dataclass
class Tally:
    """Counts over many cases."""

    cases: int = 0
    decoded: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    total_seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.cases += 1
        self.decoded += outcome.decoded
        if outcome.error:
            self.errors[outcome.error] = self.errors.get(outcome.error, 0) + 1
        self.slowest = max(self.slowest, outcome.seconds)
        self.total_seconds += outcome.seconds


def mutate(sample: Sample, rng: random.Random) -> bytes:
    """One damaged copy of ``sample``."""
    data = bytearray(sample.data)
    kind = rng.random()
    hot = min(sample.hot, len(data))

    def where(width: int = 1) -> int:
        """A random offset, usually inside the structural part of the file."""
        span = hot if rng.random() < 0.85 else len(data)
        return rng.randrange(0, max(span - width, 1))

    if kind < 0.2:
        return bytes(data[:rng.randrange(0, len(data))])
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        if rng.random() < 0.5:
            i = where(4) & ~3
            data[i:i + 4] = rng.choice(AWKWARD_WORDS).to_bytes(4, "little")
        else:
            data[where()] ^= 1 << rng.randrange(8)
    if kind > 0.9:
        data = data[:rng.randrange(len(data) // 2, len(data) + 1)]
    return bytes(data)


def run_case(sample: Sample, data: bytes) -> Outcome:
    """Push one (possibly damaged) input through every stage; only AnesimError may escape."""
    start = time.perf_counter()
    try:
        decoded = decode_bytes(data, file=sample.name, sidecar=sample.sidecar)
        listing(decoded)
        build_program(decoded)
        doc = json.loads(json.dumps(to_json(decoded)))
        back = encode(doc)
        if back != data:
            raise AssertionError(f"{sample.name}: re-encoding a decodable input changed its bytes")
    except AnesimError as exc:
        return Outcome(False, type(exc).__name__, time.perf_counter() - start)
    return Outcome(True, "", time.perf_counter() - start)


def fuzz(samples: list[Sample], cases: int, seed: int = 0) -> Tally:
    """Run ``cases`` seeded cases spread over ``samples``; raises on any non-AnesimError."""
    rng = random.Random(seed)
    tally = Tally()
    for i in range(cases):
        sample = samples[i % len(samples)]
        tally.add(run_case(sample, mutate(sample, rng)))
    return tally


AWKWARD_JSON = (None, [], {}, "x", "0x", "0x" + "f" * 20, -1, 1 << 70, 1.5, True, [1, 2], "LC_NOPE", 0, 1 << 32,
                {"size": 5}, {"size": 1 << 40}, {"size": 4, "base64": "!!"}, {"hex": "zz"})


def mutate_json(doc: object, rng: random.Random) -> object:
    """A copy of a decoded program's JSON form with one to three values replaced or keys removed."""
    out = json.loads(json.dumps(doc))
    paths: list[tuple[object, ...]] = []

    def walk(node: object, path: tuple[object, ...]) -> None:
        paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            walk(child, path + (key,))

    walk(out, ())
    for _ in range(rng.choice((1, 1, 2, 3))):
        path = rng.choice(paths[1:])
        node = out
        try:
            for key in path[:-1]:
                node = node[key]  # type: ignore[index]
            if isinstance(node, dict) and rng.random() < 0.2:
                node.pop(path[-1], None)
            else:
                # (a copy: a later edit must not change the table for the next document)
                node[path[-1]] = copy.deepcopy(rng.choice(AWKWARD_JSON))  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed this path
    return out


def eiln_kernels(shared: Path) -> list[tuple[str, bytes]]:
    """(path inside the archive, bytes) of every raw kernel in ``shared``/hwx/eiln/kernels.tar.gz."""
    out = []
    with tarfile.open(shared / "hwx" / "eiln" / "kernels.tar.gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.endswith(".bin"):
                handle = tar.extractfile(member)
                if handle is not None:
                    out.append((member.name.split("kernels/", 1)[1], handle.read()))
    return out


def load_samples(shared: Path, sidecars: Path) -> list[Sample]:
    """Every public sample: the .hwx files, and each eiln kernel with its sidecar and with none."""
    samples = [Sample(p.name, p.read_bytes()) for p in sorted((shared / "hwx").glob("*/*.hwx*"))]
    for rel, data in eiln_kernels(shared):
        sidecar = load_sidecar(sidecars / rel.replace(".bin", ".sidecar.json"))
        samples.append(Sample(rel, data, sidecar, hot=0x2000))
        samples.append(Sample(rel + " (no sidecar)", data, Sidecar(), hot=0x2000))
    return samples
