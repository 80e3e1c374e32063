"""The steady-state shortcut of closed-form batches gives the recurrence's values to the last bit."""

from __future__ import annotations

import random

import pytest

from anesim.timing.batch import _add_n, _steady_compute


def _recurrence(look: tuple[float, float, float, float, float], a: float, b: int, c: float, m: int):
    """The closed-form batch's recurrence (docs/timing.md), step by step, as its specification
    states it: a source read starts when the previous read is done and the compute two back has
    freed its buffer; a compute when its source is read, the compute before is done and the write
    two back has freed its output buffer; a write when its compute and the write before are done.
    Returns the source, compute and destination ends, the input and output stalls, and the
    look-backs after the last step."""
    src_1, cmp_2, cmp_1, dst_2, dst_1 = look
    stall_in = stall_out = 0.0
    ends: tuple[list[float], list[float], list[float]] = ([], [], [])
    for _ in range(m):
        read_end = max(src_1, cmp_2) + a
        inputs_ready = max(read_end, cmp_1)
        start = max(inputs_ready, dst_2)
        stall_in += max(read_end - cmp_1, 0.0)
        stall_out += start - inputs_ready
        compute_end = start + b
        write_end = max(compute_end, dst_1) + c
        for seq, value in zip(ends, (read_end, compute_end, write_end)):
            seq.append(value)
        src_1, cmp_2, cmp_1, dst_2, dst_1 = read_end, cmp_1, compute_end, dst_1, write_end
    return (*ends, stall_in, stall_out, (src_1, cmp_2, cmp_1, dst_2, dst_1))


def _look_backs(rnd: random.Random, a: float, b: int, c: float) -> tuple[float, float, float, float, float]:
    """Look-backs a batch may find: after a step or two of it, or any order of the five ends
    (where one of the checks must refuse), some just below a power of two, where an addition
    that crosses it rounds."""
    t = rnd.choice([rnd.uniform(0.0, 5e7), 2.0 ** rnd.randint(10, 30) - rnd.uniform(0.0, 3.0 * b + 1.0)])
    t += rnd.random()  # (fraction bits that a sum of whole cycles must carry)
    if rnd.random() < 0.5:
        look = (t, t, t + rnd.uniform(0, 3 * b), t, t + rnd.uniform(0, 2 * b))
        return _recurrence(look, a, b, c, rnd.choice([1, 2]))[-1]
    cmp_2 = t
    cmp_1 = cmp_2 + rnd.uniform(0, 2 * b)
    dst_2 = t + rnd.uniform(-b, 2 * b)
    return (t + rnd.uniform(-b, 2 * b), cmp_2, cmp_1, dst_2, dst_2 + rnd.uniform(0, 2 * b))


@pytest.mark.parametrize("seed", range(600))
def test_steady_state_matches_the_recurrence_bit_for_bit(seed):
    rnd = random.Random(seed)
    b = rnd.choice([1, 4, 512, 1695, rnd.randint(1, 5000)])
    # source and destination times below, near and above the compute time (where the shortcut
    # must stop, or refuse), fractions as pool rates give them
    a = rnd.choice([0.0, b / 3, b * 0.999, float(b), b * rnd.uniform(0.2, 1.5), 88.27586206896552])
    c = rnd.choice([0.0, 4.0, b / 7, b * rnd.uniform(0.2, 1.5)])
    m = rnd.randint(1, 300)
    look = _look_backs(rnd, a, b, c)
    src, cmp_, dst, *_ = _recurrence(look, a, b, c, m)
    found = _steady_compute(*look, a, b, c, m)
    if found is None:
        return
    n, s, k, d, after = found
    assert 1 <= n <= m
    assert (s, k, d) == (src[:n], cmp_[:n], dst[:n])
    assert after == _recurrence(look, a, b, c, n)[-1]
    assert _recurrence(look, a, b, c, n)[3:5] == (0.0, 0.0)  # no stall in the steps it holds for


def test_a_compute_bound_run_is_covered_whole():
    # (an attention tile's score product on the A11: pool reads of 330 cycles, 512-cycle
    # products, 4-cycle pool writes)
    t = 12_345_678.123
    look = _recurrence((t, t, t, t, t), 330.0, 512, 4.0, 2)[-1]
    n, src, cmp_, dst, after = _steady_compute(*look, 330.0, 512, 4.0, 253)
    assert n == 253 and (src, cmp_, dst) == _recurrence(look, 330.0, 512, 4.0, 253)[:3]
    # a source-bound run is not compute-bound: refused at once
    assert _steady_compute(*_recurrence((t, t, t, t, t), 700.0, 512, 4.0, 2)[-1], 700.0, 512, 4.0, 100) is None


def test_adding_a_step_n_times_rounds_as_a_loop():
    rnd = random.Random(7)
    for _ in range(500):
        total, step, n = rnd.uniform(0, 1e9), rnd.choice([1 / 3, 88.27586206896552, rnd.uniform(0, 1e4), 512]), rnd.randint(1, 400)
        expected = total
        for _ in range(n):
            expected += step
        assert _add_n(total, step, n) == expected
    assert _add_n(3.25, 0, 10) == 3.25
