"""Which task last wrote each byte of memory: a task reading those bytes waits for that one."""

from __future__ import annotations

import bisect

from anesim.program.model import Layout


class LastWriter:
    """Which task last wrote each byte range, per memory (a DRAM slot or the pool)."""

    def __init__(self) -> None:
        # per memory: sorted, disjoint [start, end) intervals and the task that wrote each
        self._maps: dict[tuple[str, int | None], tuple[list[int], list[int], list[int]]] = {}

    @staticmethod
    def _where(layout: Layout) -> tuple[tuple[str, int | None], int, int]:
        """The memory ``layout`` lies in and its [start, end) byte range there."""
        a = layout.offset_bytes
        return (layout.space, layout.slot if layout.space == "dram" else None), a, a + max(1, layout.span_bytes)

    def record(self, layout: Layout, pos: int) -> None:
        """Note that task ``pos`` wrote ``layout``."""
        key, a, b = self._where(layout)
        m = self._maps.get(key)
        if m is None:
            m = self._maps[key] = ([], [], [])
        starts, ends, who = m
        i = bisect.bisect_right(ends, a)  # first interval ending after a
        n = len(starts)
        if i == n or starts[i] >= b:  # overlaps nothing: insert it
            starts.insert(i, a); ends.insert(i, b); who.insert(i, pos)
            return
        if starts[i] == a and ends[i] == b:  # exactly an earlier write's range: take it over
            who[i] = pos
            return
        j = i
        keep_s, keep_e, keep_w = [], [], []
        while j < len(starts) and starts[j] < b:
            if starts[j] < a:  # left remainder survives
                keep_s.append(starts[j]); keep_e.append(a); keep_w.append(who[j])
            if ends[j] > b:  # right remainder survives
                keep_s.append(b); keep_e.append(ends[j]); keep_w.append(who[j])
            j += 1
        new = sorted(zip(keep_s + [a], keep_e + [b], keep_w + [pos]))
        starts[i:j] = [n[0] for n in new]
        ends[i:j] = [n[1] for n in new]
        who[i:j] = [n[2] for n in new]

    def last(self, layout: Layout) -> int | None:
        """The latest task that wrote any byte of ``layout``, or None."""
        key, a, b = self._where(layout)
        m = self._maps.get(key)
        if m is None:
            return None
        starts, ends, who = m
        i = bisect.bisect_right(ends, a)  # the first interval ending after a
        j = bisect.bisect_left(starts, b, i)  # the first starting at or after b
        return max(who[i:j]) if j > i else None
