"""Pausing Python's cyclic garbage collector around allocation-heavy work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration, its earlier state restored after.

    Compiling, planning and simulating a large model make hundreds of thousands of small objects
    and almost no reference cycles; each allocation burst triggered a collection that walked every
    live object, which took a third of a large compile and as long as planning itself. Reference
    counting still frees everything; only cycles wait for the collector's return.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
