"""Differential fuzzing of the compiler (anesim.fuzz.graphs): random small graphs compute on the
engine what the numpy reference computes, or are refused; never a wrong value or a traceback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from anesim.fuzz.graphs import compare, run_graph_case

FAILURES = ("wrong", "escape")


def _cases(seed: int, indices: range | list[int]) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (fp16 overflow to inf is the engine's value)
        return [run_graph_case(seed, i) for i in indices]


def test_a_few_hundred_random_graphs_compute_their_values() -> None:
    cases = _cases(1, range(250))
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed
    # the draws are valid often enough that the fuzzer checks something
    assert sum(c.status == "ok" for c in cases) >= 150


@pytest.mark.parametrize("seed, index", [
    (4, 1160),  # A^T B with one contraction row: its weights were read as one output channel
])
def test_cases_the_fuzzer_found(seed: int, index: int) -> None:
    case = _cases(seed, [index])[0]
    assert case.status == "ok", (case.status, case.detail, case.ops)


def test_a_case_replays_alike() -> None:
    first, second = _cases(7, [3])[0], _cases(7, [3])[0]
    assert (first.status, first.detail, first.ops) == (second.status, second.detail, second.ops)


def test_the_comparison_catches_what_it_must() -> None:
    want = np.array([[1.0, -2.0], [0.5, np.inf]], np.float32)
    assert compare(want.copy(), want)[0]
    assert not compare(want.T.copy(), want[:, :1])[0]  # a shape
    assert not compare(want * 1.2, want)[0]  # values
    got = want.copy()
    got[0, 0] = np.nan
    assert not compare(got, want)[0]  # NaN where the reference is finite


@pytest.mark.slow
def test_four_thousand_random_graphs() -> None:
    cases = _cases(2, range(4000))
    failed = [(c.index, c.status, c.detail, c.ops) for c in cases if c.status in FAILURES]
    assert not failed, failed[:10]
