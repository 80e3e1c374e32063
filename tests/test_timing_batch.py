"""The steady-state shortcut of closed-form batches gives the recurrence's values to the last bit."""

from __future__ import annotations

import random

import pytest

from anesim.timing.batch import _add_n, _steady_compute


def _recurrence(look: tuple[float, float, float, float, float], a: float, b: int, c: float, m: int):
    """The closed-form batch's recurrence, step by step (as ``_run_batch`` without a trace)."""
    src_1, cmp_2, cmp_1, dst_2, dst_1 = look
    stall_in = stall_out = 0.0
    src, cmp_, dst = [], [], []
    for _ in range(m):
        s0 = src_1 if src_1 >= cmp_2 else cmp_2
        s1 = s0 + a
        ready = s1 if s1 >= cmp_1 else cmp_1
        c0 = ready if ready >= dst_2 else dst_2
        d = s1 - cmp_1
        stall_in += d if d > 0.0 else 0.0
        stall_out += c0 - ready
        c1 = c0 + b
        d0 = c1 if c1 >= dst_1 else dst_1
        d1 = d0 + c
        src.append(s1)
        cmp_.append(c1)
        dst.append(d1)
        src_1, cmp_2, cmp_1, dst_2, dst_1 = s1, cmp_1, c1, dst_1, d1
    return src, cmp_, dst, stall_in, stall_out, (src_1, cmp_2, cmp_1, dst_2, dst_1)


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
