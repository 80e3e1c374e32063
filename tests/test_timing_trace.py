"""Traces parse back: Chrome JSON with json, Perfetto protobuf with the perfetto package's protos."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from timing_support import add_task, conv_task, make_chip, program

from anesim.errors import AnesimError
from anesim.timing import simulate
from anesim.timing.trace import SLICE_BEGIN, SLICE_END, chrome_trace, pftrace_bytes, write_trace

needs_perfetto = pytest.mark.skipif(
    importlib.util.find_spec("perfetto") is None,
    reason="the perfetto package (the trace extra) is not installed",
)


def parse_pftrace(data: bytes) -> tuple[dict[int, tuple[str, int]], list[tuple[int, int, int, str]]]:
    """Track descriptors {uuid: (name, parent)} and slice edges (ts, type, track, name)."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace

    trace = Trace()
    trace.ParseFromString(data)
    tracks: dict[int, tuple[str, int]] = {}
    edges = []
    for packet in trace.packet:
        if packet.HasField("track_descriptor"):
            td = packet.track_descriptor
            tracks[td.uuid] = (td.name, td.parent_uuid)
        else:
            assert packet.HasField("track_event")
            assert packet.trusted_packet_sequence_id == 1
            te = packet.track_event
            edges.append((packet.timestamp, te.type, te.track_uuid, te.name))
    return tracks, edges


def check_pftrace(data: bytes, units: tuple[str, ...]) -> int:
    """Assert a well-formed trace with one track per unit; return the number of slices."""
    tracks, edges = parse_pftrace(data)
    names = {name for name, _parent in tracks.values()}
    assert set(units) <= names
    assert len(tracks) == len(units) + 1  # the root track plus one per unit
    open_on: dict[int, int] = {}
    last_ts = -1
    slices = 0
    for ts, kind, track, name in edges:
        assert ts >= last_ts
        last_ts = ts
        assert track in tracks and tracks[track][1] != 0
        if kind == SLICE_BEGIN:
            assert track not in open_on and name
            open_on[track] = ts
            slices += 1
        else:
            assert kind == SLICE_END and open_on.pop(track) < ts
    assert not open_on
    return slices


@pytest.fixture(scope="module")
def result():
    chip = make_chip()
    a = conv_task(0, 64, 32, 16, 16, dst_space="pool", tile_height=4, ocg=8)
    b = conv_task(1, 32, 16, 16, 16, src_space="pool", tile_height=4, ocg=4)
    return simulate(program(a, b, add_task(2, 16, 16, 16)), chip)


def test_chrome_json_round_trip(result, tmp_path):
    path = tmp_path / "t.json"
    assert write_trace(result, path) == "chrome-json"
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    threads = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert threads == set(result.trace_units)
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == sum(1 for e in result.trace if e.end_s > e.start_s)
    assert all(e["dur"] > 0 and e["ts"] >= 0 for e in slices)
    last = max(e["ts"] + e["dur"] for e in slices)
    assert last == pytest.approx(result.latency_s * 1e6)


@needs_perfetto
def test_pftrace_round_trip(result, tmp_path):
    path = tmp_path / "t.pftrace"
    assert write_trace(result, path) == "perfetto"
    data = path.read_bytes()
    assert data == pftrace_bytes(result)
    n = check_pftrace(data, result.trace_units)
    assert n == len(chrome_trace(result)["traceEvents"]) - 1 - 2 * len(result.trace_units)
    tracks, edges = parse_pftrace(data)
    assert len(edges) == 2 * n
    # Every slice of the timeline, in nanoseconds on its unit's track.
    begins = sorted((ts, tracks[track][0], name) for ts, kind, track, name in edges if kind == SLICE_BEGIN)
    to_ns = 1e9 / result.clock_hz
    expected = sorted((int(round(e[2] * to_ns)), result.trace_units[e[0]], e[1])
                      for e in result.raw_trace() if int(round(e[3] * to_ns)) > int(round(e[2] * to_ns)))
    assert begins == expected


def test_pftrace_without_perfetto_names_the_way_out(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "perfetto.trace_builder.proto_builder", None)  # import fails
    path = tmp_path / "t.pftrace"
    with pytest.raises(AnesimError, match=r"anesim\[trace\].*\.json"):
        write_trace(result, path)
    assert not path.exists()
    assert write_trace(result, tmp_path / "t.json") == "chrome-json"  # needs nothing


@needs_perfetto
def test_a_timeline_past_the_pftrace_timestamps_is_refused_in_one_line(tmp_path):
    """A chip file may state a DRAM of 1e-20 B/s: the timeline's nanoseconds then overflow the
    uint64 timestamps, which escaped from protobuf as a ValueError traceback; JSON takes it."""
    import anesim
    from anesim.cli import main

    conv = str(Path(__file__).resolve().parents[1] / "programs" / "conv3x3.yaml")
    chip = tmp_path / "slow.yaml"
    chip.write_text("inherits: h13\nname: Slow\n"
                    "dram: {peak_bytes_per_s: {value: 1.0e-20, provenance: predicted, source: test}}\n")
    slow = anesim.simulate(anesim.compile(conv, str(chip)), str(chip))
    with pytest.raises(AnesimError, match=r"t.pftrace: the timeline is too long for a Perfetto trace"):
        write_trace(slow, tmp_path / "t.pftrace")
    args = ["run", conv, "--chip", str(chip), "--timing-only", "--trace"]
    assert main([*args, str(tmp_path / "t.pftrace")]) == 2
    assert main([*args, str(tmp_path / "t.json")]) == 0


@needs_perfetto
def test_trace_of_a_real_sample(shared_dir, tmp_path):
    import anesim

    sample = shared_dir / "hwx" / "tinygrad" / "conv.hwx"
    try:
        prog = anesim.load(sample)
    except Exception as exc:  # the decoder is another module; say why this cannot run
        pytest.skip(f"anesim.load cannot read {sample.name} yet: {exc}")
    r = simulate(prog, "m1")
    for name in ("conv.json", "conv.pftrace"):
        write_trace(r, tmp_path / name)
    data = json.loads((tmp_path / "conv.json").read_text())
    assert any(e["ph"] == "X" and e["tid"] == 1 + r.trace_units.index("ne") for e in data["traceEvents"])
    assert check_pftrace((tmp_path / "conv.pftrace").read_bytes(), r.trace_units) > 0
