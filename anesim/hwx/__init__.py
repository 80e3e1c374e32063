"""Decode real ANE programs: .hwx containers and raw command buffers, and encode them back.

    >>> import anesim.hwx as hwx
    >>> path = "../shared/hwx/tinygrad/sigmoid.hwx"
    >>> prog = hwx.load_hwx(path)                                     # doctest: +SKIP
    >>> print(hwx.listing(prog))                                      # doctest: +SKIP
    >>> hwx.encode(hwx.to_json(prog)) == open(path, "rb").read()      # doctest: +SKIP
    True

Every malformed input ends in :class:`anesim.errors.FormatError` (bad bytes) or
:class:`anesim.errors.ProgramError` (bad JSON / sidecar) naming the file and position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from anesim.errors import InputError
from anesim.hwx import container, raw
from anesim.hwx.container import Container
from anesim.hwx.encode import encode_doc
from anesim.hwx.jsonform import Doc
from anesim.hwx.raw import RawBuffer, Sidecar, load_sidecar

Decoded = Union[Container, RawBuffer]
HWX_MAGIC_BYTES = (0xBEEFFACE).to_bytes(4, "little")
SIDECAR_SUFFIX = ".sidecar.json"

__all__ = [
    "Container", "Decoded", "RawBuffer", "Sidecar", "decode_bytes", "encode", "listing", "load",
    "load_hwx", "load_raw", "load_sidecar", "summarize", "to_json",
]


def load_hwx(path: str | Path) -> Container:
    """Decode the .hwx file at ``path``."""
    return container.parse(Path(path).read_bytes(), str(path))


def load_raw(path: str | Path, sidecar: str | Path | Sidecar | None = None) -> RawBuffer:
    """Decode the raw command buffer at ``path``, described by ``sidecar`` (a path or a Sidecar)."""
    sc = load_sidecar(sidecar) if isinstance(sidecar, (str, Path)) else sidecar
    return raw.parse(Path(path).read_bytes(), sc, str(path))


def decode_bytes(data: bytes, *, file: str | None = None, sidecar: Sidecar | None = None, raw_buffer: bool = False) -> Decoded:
    """Decode bytes as .hwx when they start with its magic, else as a raw buffer if asked to."""
    if data[:4] == HWX_MAGIC_BYTES or not (raw_buffer or sidecar is not None):
        return container.parse(data, file)
    return raw.parse(data, sidecar, file)


def load(path: str | Path, *, sidecar: str | Path | Sidecar | None = None, raw_buffer: bool = False) -> Decoded:
    """Decode ``path``: .hwx by magic; otherwise a raw buffer when a sidecar is given or found.

    A sidecar is looked for beside the file as ``<file>.sidecar.json`` (or with ``.bin``
    replaced by ``.sidecar.json``) when none is given.
    """
    p = Path(path)
    data = p.read_bytes()
    if sidecar is not None and data[:4] == HWX_MAGIC_BYTES:
        # (an .hwx container describes its own tensors: a sidecar given with one would go unread)
        raise InputError("a sidecar describes a raw command buffer's tensors; this is an .hwx container, "
                         "which carries its own", file=path, expected="a raw command buffer, or no sidecar",
                         found=f"the .hwx magic and sidecar {sidecar if isinstance(sidecar, (str, Path)) else '(given)'}")
    sc = load_sidecar(sidecar) if isinstance(sidecar, (str, Path)) else sidecar
    if sc is None and data[:4] != HWX_MAGIC_BYTES:
        for candidate in (p.with_name(p.name + SIDECAR_SUFFIX), p.with_suffix(SIDECAR_SUFFIX)):
            if candidate.is_file():
                sc = load_sidecar(candidate)
                break
    return decode_bytes(data, file=str(path), sidecar=sc, raw_buffer=raw_buffer)


def to_json(decoded: Decoded, *, summary: bool = True) -> dict[str, Any]:
    """The JSON form of a decoded program (``summary`` adds an informational digest)."""
    out = dict(decoded.doc)
    if decoded.notes:
        out["notes"] = list(decoded.notes)
    if summary:
        from anesim.hwx.summary import summarize

        out["summary"] = summarize(decoded).to_json()
    return out


def encode(value: Decoded | dict[str, Any] | Doc) -> bytes:
    """The bytes of a decoded program or of its JSON form (bit-exact for unedited input)."""
    if isinstance(value, (Container, RawBuffer)):
        value = value.doc
    return encode_doc(value)


def listing(decoded: Decoded) -> str:
    """The human-readable disassembly listing."""
    from anesim.hwx.disasm import listing as _listing

    return _listing(decoded)


def summarize(decoded: Decoded) -> Any:
    """The plain-terms digest (slots, tensors, weights, per-task bindings)."""
    from anesim.hwx.summary import summarize as _summarize

    return _summarize(decoded)
