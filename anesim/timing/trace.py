"""Write a timing result's timeline: Chrome trace-event JSON or Perfetto's native protobuf.

Both formats open in the Perfetto UI; the Chrome JSON also opens in chrome://tracing. Every
unit (host, firmware, kernel DMA, tile DMA source, NE, planar engine, tile DMA destination)
gets its own track. The Chrome JSON needs nothing beyond the standard library; Perfetto traces
are built with the ``perfetto`` package's ``TraceProtoBuilder`` (the ``trace`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anesim.errors import InputError, UnsupportedError
from anesim.timing.result import TimingResult

# TrackEvent.Type values (perfetto/trace/track_event/track_event.proto).
SLICE_BEGIN = 1
SLICE_END = 2

_SEQUENCE_ID = 1
MAX_TIMESTAMP_NS = (1 << 64) - 1  # TracePacket.timestamp is a uint64 (about 585 years)
_ROOT_UUID = 1
_UNIT_UUID_BASE = 100


def _slices_ns(result: TimingResult) -> list[tuple[int, int, int, str, int]]:
    """(start ns, end ns, unit index, name, task) for every non-empty slice."""
    to_ns = 1e9 / result.clock_hz
    out = []
    for unit, name, start, end, task in result.raw_trace():
        s, e = int(round(start * to_ns)), int(round(end * to_ns))
        if e > s:
            out.append((s, e, unit, name, task))
    return out


def chrome_trace(result: TimingResult) -> dict[str, Any]:
    """The timeline as a Chrome trace-event object (timestamps in microseconds)."""
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": f"ANE {result.chip}: {result.program}"}},
    ]
    for i, unit in enumerate(result.trace_units):
        events.append({"ph": "M", "pid": 1, "tid": i + 1, "name": "thread_name", "args": {"name": unit}})
        events.append({"ph": "M", "pid": 1, "tid": i + 1, "name": "thread_sort_index", "args": {"sort_index": i}})
    to_us = 1e6 / result.clock_hz
    for unit, name, start, end, task in result.raw_trace():
        if end <= start:
            continue
        ev: dict[str, Any] = {
            "ph": "X", "pid": 1, "tid": unit + 1, "name": name, "cat": result.trace_units[unit],
            "ts": start * to_us, "dur": (end - start) * to_us,
        }
        if task >= 0:
            ev["args"] = {"task": task}
        events.append(ev)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {"chip": result.chip, "program": result.program, "latency_s": result.latency_s},
    }


def write_chrome_json(result: TimingResult, path: str | Path) -> None:
    """Write the Chrome trace-event JSON file."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(chrome_trace(result), fh, separators=(",", ":"))


def _packet_plan(result: TimingResult) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, int, str]]]:
    """Track descriptors (uuid, parent, name) and ordered slice edges (ts, type, track, name)."""
    tracks = [(_ROOT_UUID, 0, f"ANE {result.chip}: {result.program}")]
    tracks += [(_UNIT_UUID_BASE + i, _ROOT_UUID, u) for i, u in enumerate(result.trace_units)]
    edges: list[tuple[int, int, int, str]] = []
    for s, e, unit, name, _task in _slices_ns(result):
        track = _UNIT_UUID_BASE + unit
        edges.append((s, SLICE_BEGIN, track, name))
        edges.append((e, SLICE_END, track, ""))
    # Time order; at one instant close slices before opening the next on the same track.
    edges.sort(key=lambda x: (x[0], x[1] != SLICE_END, x[2]))
    return tracks, edges


def pftrace_bytes(result: TimingResult, *, path: str | Path | None = None) -> bytes:
    """The timeline as a serialised Perfetto ``Trace`` message (needs the ``perfetto`` package).

    ``path`` only names the file in the error raised when the package is missing.
    """
    try:
        from perfetto.trace_builder.proto_builder import TraceProtoBuilder
    except ImportError:
        raise UnsupportedError(
            "writing a Perfetto trace needs the perfetto package", file=path,
            expected="pip install 'anesim[trace]', or a .json path for the Chrome trace",
            found="no module named perfetto",
        ) from None
    builder = TraceProtoBuilder()
    tracks, edges = _packet_plan(result)
    if edges and edges[-1][0] > MAX_TIMESTAMP_NS:
        raise InputError("the timeline is too long for a Perfetto trace's 64-bit nanosecond timestamps",
                         file=path, expected=f"at most {MAX_TIMESTAMP_NS / 1e9:.3g} s (or a .json path for the "
                         "Chrome trace)", found=f"{edges[-1][0] / 1e9:.3g} s")
    for uuid, parent, name in tracks:
        td = builder.add_packet().track_descriptor
        td.uuid = uuid
        td.name = name
        if parent:
            td.parent_uuid = parent
    for ts, kind, track, name in edges:
        packet = builder.add_packet()
        packet.timestamp = ts
        packet.trusted_packet_sequence_id = _SEQUENCE_ID
        event = packet.track_event
        event.type = kind
        event.track_uuid = track
        if name:
            event.name = name
    return builder.serialize()


def write_pftrace(result: TimingResult, path: str | Path) -> None:
    """Write the Perfetto protobuf trace file."""
    data = pftrace_bytes(result, path=path)
    Path(path).write_bytes(data)


def write_trace(result: TimingResult, path: str | Path) -> str:
    """Write ``path`` in the format its suffix names (.json: Chrome; else Perfetto); return the format."""
    if str(path).lower().endswith(".json"):
        write_chrome_json(result, path)
        return "chrome-json"
    write_pftrace(result, path)
    return "perfetto"
