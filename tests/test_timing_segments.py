"""A model split into several dispatches is timed as consecutive commands."""

from __future__ import annotations

import numpy as np
import pytest

import anesim
from anesim.chips import load_chip
from anesim.compiler import Builder
from anesim.functional import random_inputs


def _split_model():
    b = Builder("split")
    x = b.input("x", (1, 4, 6, 8))
    y = b.conv2d(x, 4, kernel=1, bias=True)
    t = b.transpose(y, (0, 1, 3, 2))  # moves the width axis: the host does it between segments
    b.output(b.relu(b.conv2d(t, 4, kernel=1)))
    return anesim.compile(b, "m1")


def test_each_segment_pays_its_own_dispatch() -> None:
    compiled = _split_model()
    assert compiled.dispatches == 2
    whole = anesim.simulate(compiled, "m1")
    parts = [anesim.simulate(s.program, "m1") for s in compiled.segments]
    # the host's transpose between them is the CPU fallback: its time and two handoffs
    (host,) = whole.host_tasks
    assert host.op == "transpose" and whole.handoffs == 2
    assert whole.host_s == pytest.approx(host.end_s - host.start_s + 2 * load_chip("m1").cpu.handoff_s.value)
    assert whole.latency_s == pytest.approx(sum(p.latency_s for p in parts) + whole.host_s)
    assert whole.engine_cycles == sum(p.engine_cycles for p in parts)
    assert [t.index for t in whole.tasks] == list(range(len(compiled.program.tasks)))
    floor = parts[0].latency_s - parts[0].engine_s
    assert whole.latency_s > 2 * floor  # two dispatch sequences, not one
    assert whole.tasks[-1].start_s >= parts[0].latency_s + whole.host_s  # the second command starts after the host


def test_compiled_model_executes_with_host_work_between_segments() -> None:
    compiled = _split_model()
    inputs = random_inputs(compiled.program, 3)
    out = anesim.execute(compiled, inputs, "m1")
    again = anesim.execute(compiled, inputs, "m1")
    assert out.keys() == again.keys()
    for key in out:
        assert out[key].dtype == np.float16 and np.array_equal(out[key].view(np.uint16), again[key].view(np.uint16))
