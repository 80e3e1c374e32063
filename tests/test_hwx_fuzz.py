"""Damaged samples end in AnesimError or decode and re-encode to the same bytes; nothing else escapes.

The default suite runs a few hundred seeded cases over every sample; benchmarks/fuzz_hwx.py runs
ten thousand, and the slow job's fuzzing of every input kind (tests/test_fuzz_inputs.py) takes
.hwx files through decoding, re-encoding, timing and execution in capped worker processes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from anesim import hwx
from anesim.errors import AnesimError
from anesim.hwx.fuzzing import Sample, fuzz, load_samples, mutate, mutate_json, run_case

SIDECARS = Path(__file__).resolve().parents[1] / "programs" / "eiln"
CASE_SECONDS = 1.0


@pytest.fixture(scope="module")
def samples(shared_dir: Path) -> list[Sample]:
    return load_samples(shared_dir, SIDECARS)


def test_unmodified_samples_pass_every_stage(samples: list[Sample]) -> None:
    assert len(samples) == 11 + 2 * 28
    for sample in samples:
        outcome = run_case(sample, sample.data)
        assert outcome.decoded, sample.name


def test_truncation_at_every_word_of_the_header_and_commands(samples: list[Sample]) -> None:
    sigmoid = next(s for s in samples if s.name == "sigmoid.hwx")
    for cut in range(0, 0xE10, 4):
        assert not run_case(sigmoid, sigmoid.data[:cut]).decoded


@pytest.mark.parametrize("seed", range(4))
def test_seeded_mutations(samples: list[Sample], seed: int) -> None:
    tally = fuzz(samples, 80, seed=seed)
    assert tally.cases == 80
    assert tally.slowest < CASE_SECONDS
    assert tally.decoded + sum(tally.errors.values()) == tally.cases


def test_mutation_is_seeded(samples: list[Sample]) -> None:
    a = [mutate(samples[0], random.Random(5)) for _ in range(3)]
    b = [mutate(samples[0], random.Random(5)) for _ in range(3)]
    assert a == b


def test_damaged_json_ends_in_anesim_errors(samples: list[Sample]) -> None:
    """asm on a JSON form with wrong types, huge sizes or missing keys raises only AnesimError."""
    rng = random.Random(99)
    docs = [hwx.to_json(hwx.decode_bytes(s.data, file=s.name, sidecar=s.sidecar), summary=False) for s in samples[::3]]
    refused = 0
    for i in range(300):
        try:
            hwx.encode(mutate_json(docs[i % len(docs)], rng))  # type: ignore[arg-type]
        except AnesimError:
            refused += 1
    assert refused > 100
