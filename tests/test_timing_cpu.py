"""The CPU-fallback cost of host operations: traffic by element type, and no silent widths."""

from __future__ import annotations

import dataclasses

import pytest

from anesim.chips import load_chip
from anesim.compiler import Builder, compile_graph
from anesim.errors import UnsupportedError
from anesim.timing.cpu import ENGINE_TYPE_BYTES, host_cost


def _transpose_on_host():
    b = Builder("host")
    x = b.input("x", (1, 4, 6, 8))
    y = b.transpose(b.conv2d(x, 4, kernel=1), (0, 1, 3, 2))  # moves the width axis: host
    b.output(b.relu(b.conv2d(y, 4, kernel=1)))
    graph = b.build()
    return graph, compile_graph(graph, load_chip("m1"))


def test_host_traffic_counts_fp16_as_fp32() -> None:
    _graph, result = _transpose_on_host()
    (host,) = result.host_ops
    cost = host_cost(result.graph, host.node, load_chip("m1"))
    elements = 4 * 6 * 8
    assert cost.bytes == 2 * elements * ENGINE_TYPE_BYTES["fp16"]  # read and written, widened


def test_unknown_engine_type_is_refused() -> None:
    _graph, result = _transpose_on_host()
    (host,) = result.host_ops
    name = host.node.output
    info = result.graph.info(name)
    result.graph.values[name] = dataclasses.replace(info, dtype="bf16")
    with pytest.raises(UnsupportedError, match="bf16"):
        host_cost(result.graph, host.node, load_chip("m1"))
