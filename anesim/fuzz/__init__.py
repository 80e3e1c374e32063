"""Seeded, reproducible fuzzing of every kind of file anesim reads.

Eight kinds: ``hwx`` (.hwx containers), ``raw`` (raw command buffer + sidecar JSON), ``chip``
(chip YAML), ``program`` (program YAML), ``npy`` (.npy inputs), ``onnx``, ``coreml`` and
``plist`` (ANE netplists). A case
is ``(kind, index)``; its random stream is seeded by ``"{seed}:{kind}:{index}"`` alone, so any
case can be replayed by itself (:func:`anesim.fuzz.pool.replay`). Cases run in worker processes
under an address-space cap and a time limit (:mod:`anesim.fuzz.pool`); each ends as one of
:data:`anesim.fuzz.pool.STATUSES`, and only ``accepted`` and ``refused`` are acceptable.

    python benchmarks/fuzz_inputs.py --cases 10000 --seed 1234
"""

from __future__ import annotations

import os
from pathlib import Path

KINDS = ("hwx", "raw", "chip", "program", "npy", "onnx", "coreml", "plist")

# How a run's cases are shared out: cheap kinds get more of them.
DEFAULT_SHARES = {"hwx": 0.17, "raw": 0.15, "chip": 0.08, "program": 0.14, "npy": 0.19, "onnx": 0.13,
                  "coreml": 0.08, "plist": 0.06}


def sources(checkout: Path) -> object:
    """The samples a checkout offers: ../shared (or $ANESIM_SHARED) and programs/eiln's sidecars."""
    from anesim.fuzz.kinds import Sources

    env = os.environ.get("ANESIM_SHARED")
    shared = next((p for p in ([Path(env)] if env else []) + [checkout.parent / "shared"]
                   if (p / "hwx").is_dir()), None)
    sidecars = checkout / "programs" / "eiln"
    return Sources(str(shared) if shared else None, str(sidecars) if sidecars.is_dir() else None)


def available(kind: str, src: object) -> str | None:
    """Why ``kind`` cannot run here (None when it can)."""
    import importlib.util

    if kind == "hwx" and getattr(src, "shared", None) is None:
        return "../shared (the .hwx samples) is not beside the checkout"
    if kind == "raw" and (getattr(src, "shared", None) is None or getattr(src, "sidecars", None) is None):
        return "../shared (the raw kernels) or programs/eiln (their sidecars) is missing"
    if kind == "onnx" and importlib.util.find_spec("onnx") is None:
        return "onnx is not installed (pip install '.[test]')"
    if kind == "coreml" and importlib.util.find_spec("coremltools") is None:
        return "coremltools is not installed (pip install '.[test]')"
    return None


def case_counts(total: int, kinds: list[str], src: object) -> dict[str, int]:
    """Cases per kind for a run of ``total``, over the kinds that can run here."""
    usable = [k for k in kinds if available(k, src) is None]
    share = sum(DEFAULT_SHARES[k] for k in usable) or 1.0
    counts = {k: int(total * DEFAULT_SHARES[k] / share) for k in usable}
    if usable:
        counts[usable[0]] += total - sum(counts.values())
    return counts
