"""Write a timing result's timeline: Chrome trace-event JSON or Perfetto's native protobuf.

Both formats open in the Perfetto UI; the Chrome JSON also opens in chrome://tracing. Every
unit (host, firmware, kernel DMA, tile DMA source, NE, planar engine, tile DMA destination)
gets its own track. Perfetto traces go through the ``perfetto`` package's trace builder when it
is installed; otherwise a small built-in encoder writes the same packets (the handful of
protobuf fields used are listed below, numbered as in Perfetto's trace protos).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anesim.timing.result import TimingResult

# Perfetto proto field numbers (perfetto/trace/trace.proto, trace_packet.proto,
# track_event/track_event.proto, track_event/track_descriptor.proto).
_TRACE_PACKET = 1
_PKT_TIMESTAMP = 8
_PKT_SEQUENCE_ID = 10
_PKT_TRACK_EVENT = 11
_PKT_TRACK_DESCRIPTOR = 60
_TE_TYPE = 9
_TE_TRACK_UUID = 11
_TE_NAME = 23
_TD_UUID = 1
_TD_NAME = 2
_TD_PARENT_UUID = 5
SLICE_BEGIN = 1
SLICE_END = 2

_SEQUENCE_ID = 1
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


def pftrace_bytes(result: TimingResult, *, use_package: bool | None = None) -> bytes:
    """The timeline as a serialised Perfetto ``Trace`` message.

    ``use_package`` None means: the ``perfetto`` package if importable, else the built-in encoder.
    """
    tracks, edges = _packet_plan(result)
    if use_package is not False:
        try:
            from perfetto.trace_builder.proto_builder import TraceProtoBuilder
        except ImportError:
            if use_package:
                raise
        else:
            return _with_package(TraceProtoBuilder(), tracks, edges)
    return _encode(tracks, edges)


def write_pftrace(result: TimingResult, path: str | Path, *, use_package: bool | None = None) -> None:
    """Write the Perfetto protobuf trace file."""
    Path(path).write_bytes(pftrace_bytes(result, use_package=use_package))


def write_trace(result: TimingResult, path: str | Path) -> str:
    """Write ``path`` in the format its suffix names (.json: Chrome; else Perfetto); return the format."""
    if str(path).lower().endswith(".json"):
        write_chrome_json(result, path)
        return "chrome-json"
    write_pftrace(result, path)
    return "perfetto"


def _with_package(builder: Any, tracks: list[tuple[int, int, str]], edges: list[tuple[int, int, int, str]]) -> bytes:
    for uuid, parent, name in tracks:
        td = builder.add_packet().track_descriptor
        td.uuid = uuid
        td.name = name
        if parent:
            td.parent_uuid = parent
    for ts, kind, track, name in edges:
        p = builder.add_packet()
        p.timestamp = ts
        p.trusted_packet_sequence_id = _SEQUENCE_ID
        te = p.track_event
        te.type = kind
        te.track_uuid = track
        if name:
            te.name = name
    return builder.serialize()


# --------------------------------------------------------------------------- built-in encoder


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encode(tracks: list[tuple[int, int, str]], edges: list[tuple[int, int, int, str]]) -> bytes:
    out = bytearray()
    for uuid, parent, name in tracks:
        td = _field_varint(_TD_UUID, uuid) + _field_bytes(_TD_NAME, name.encode())
        if parent:
            td += _field_varint(_TD_PARENT_UUID, parent)
        out += _field_bytes(_TRACE_PACKET, _field_bytes(_PKT_TRACK_DESCRIPTOR, td))
    seq = _field_varint(_PKT_SEQUENCE_ID, _SEQUENCE_ID)
    for ts, kind, track, name in edges:
        te = _field_varint(_TE_TYPE, kind) + _field_varint(_TE_TRACK_UUID, track)
        if name:
            te += _field_bytes(_TE_NAME, name.encode())
        pkt = _field_varint(_PKT_TIMESTAMP, ts) + seq + _field_bytes(_PKT_TRACK_EVENT, te)
        out += _field_bytes(_TRACE_PACKET, pkt)
    return bytes(out)
