"""Activation tables as the kernel DMA fetches them: 64 fp16 words -> ActivationTable.

The layout, derived from the 28 H13 raw kernels (docs/functional.md gives the evidence):

====== ===============================================================================
words  meaning
====== ===============================================================================
0-3    clamps ``[lo, hi, below, above]``: after the symmetry fold, ``u < lo`` gives
       ``below`` and ``u > hi`` gives ``above`` (command-stream.md §5)
4-36   33 samples, evenly spaced over the knot span
37-40  tails: slope and intercept of the line used below the knot span, then above it
41     bits [5:0] ``shift``: the knot spacing is ``2**-shift``, so the span is
       ``32 * 2**-shift`` long; bit 6: no samples, the tails alone (the span is empty)
42     bits [3:0] the argument mode (below); bits [7:5] the input fold: ``0b011`` odd
       (``|x|``, sign restored), ``0b110`` positive (``|x|``, negative inputs give +0)
====== ===============================================================================

Argument modes (word 42, bits [3:0]) and where the span starts:

==== ========= ===================================================================
mode reduction span start
==== ========= ===================================================================
0    none      0 (tables of a folded input: sigmoid, tanh, sign)
1    none      ``-16 * 2**-shift``: the span is centred on zero (gelu)
3    frac      (no samples)
4    int       (no samples)
5    sqrt      0: the samples cover [0, 2], the mantissa is taken in [0.5, 2)
7    recip     0.5: the mantissa in [0.5, 1)
9    log2      0.5: the mantissa in [0.5, 1)
10   exp2      0: the fraction in [0, 1)
==== ========= ===================================================================

A table whose words 37-42 are all zero (what anesim's own compiler writes) is a plain table
over ``[lo, hi]`` that extends its end segments.
"""

from __future__ import annotations

import numpy as np

from anesim.program.model import ActivationTable

WORDS = 64
SAMPLES = 33
TAIL_WORD, SHIFT_WORD, MODE_WORD = 37, 41, 42
BYPASS_BIT = 0x40
# mode -> (reduction, start of the knot span in units of the spacing, or a fixed start)
MODES: dict[int, tuple[str, float | None, float]] = {
    0: ("none", 0.0, 0.0),
    1: ("none", -16.0, 0.0),
    3: ("frac", None, 0.0),
    4: ("int", None, 0.0),
    5: ("sqrt", None, 0.0),
    7: ("recip", None, 0.5),
    9: ("log2", None, 0.5),
    10: ("exp2", None, 0.0),
}
FOLDS = {0x00: "none", 0x60: "odd", 0xC0: "positive"}


def _f16(words: np.ndarray) -> list[float]:
    return [float(v) for v in words.astype(np.uint16).view(np.float16).astype(np.float64)]


# (field, value, message): a table word whose value no document describes; the caller turns it
# into a refusal (anesim.program.notes), since reading the samples any other way is a guess.
TableNote = tuple[str, int, str]
SHIFT_MASK = 0x3F | BYPASS_BIT
MODE_MASK, FOLD_MASK = 0x0F, 0xF0


def decode_table(words: np.ndarray, name: str) -> tuple[ActivationTable, list[TableNote]]:
    """The table a 64-word blob holds, and the words in it no document describes."""
    words = np.asarray(words, np.uint16)
    lo, hi, below, above = _f16(words[:4])
    samples = words[4:4 + SAMPLES].copy()
    trailer = words[TAIL_WORD:MODE_WORD + 1]
    notes: list[TableNote] = []
    extra = np.flatnonzero(words[MODE_WORD + 1:])
    if extra.size:
        at = MODE_WORD + 1 + int(extra[0])
        notes.append((f"LUT[{at}]", int(words[at]), "table words 43-63 hold data no document describes"))
    if not trailer.any():
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            notes.append(("LUT[0]", int(words[0]), "a table without trailer words spans [lo, hi], which must be "
                          f"finite and increasing (found [{lo}, {hi}])"))
        return ActivationTable(lo, hi, below, above, samples, name), notes
    param, flags = int(words[SHIFT_WORD]), int(words[MODE_WORD])
    mode, fold = flags & MODE_MASK, flags & FOLD_MASK
    if param & ~SHIFT_MASK:
        notes.append((f"LUT[{SHIFT_WORD}]", param, "bits above 6 of the knot-spacing word are not described"))
    if flags & ~(MODE_MASK | FOLD_MASK):
        notes.append((f"LUT[{MODE_WORD}]", flags, "bits above 7 of the mode word are not described"))
    if mode not in MODES:
        notes.append((f"LUT[{MODE_WORD}].ArgMode", mode, f"table argument mode {mode} is not described by any "
                       "source (known: " + ", ".join(f"{m} {MODES[m][0]}" for m in sorted(MODES)) + ")"))
    if fold not in FOLDS:
        notes.append((f"LUT[{MODE_WORD}].InputFold", fold >> 4, f"table input fold {fold:#x} is not described "
                       "by any source (known: 0x0 none, 0x60 odd, 0xc0 positive)"))
    reduction, start_steps, start = MODES.get(mode, ("none", 0.0, 0.0))
    symmetry = FOLDS.get(fold, "none")
    step = 2.0 ** -(param & 0x3F)
    if param & BYPASS_BIT:
        span = (0.0, 0.0)
    else:
        first = start_steps * step if start_steps is not None else start
        span = (first, first + 32 * step)
    tails = tuple(_f16(words[TAIL_WORD:TAIL_WORD + 4]))
    table = ActivationTable(lo, hi, below, above, samples, name, reduction,  # type: ignore[arg-type]
                            symmetry, span, tails)  # type: ignore[arg-type]
    return table, notes


def encode_table(table: ActivationTable) -> np.ndarray | None:
    """The 64-word blob of a table (the inverse of :func:`decode_table`); None when the trailer
    cannot say the table's knot span, reduction or fold."""
    head = np.array([table.range_lo, table.range_hi, table.value_below, table.value_above], np.float32)
    words = np.zeros(WORDS, np.uint16)
    with np.errstate(over="ignore"):
        words[:4] = head.astype(np.float16).view(np.uint16)
    words[4:4 + SAMPLES] = np.asarray(table.samples, np.uint16)[:SAMPLES]
    plain = table.knot_span is None or table.knot_span == (table.range_lo, table.range_hi)
    if table.tails is None and plain and table.reduction == "none" and table.symmetry == "none":
        return words  # a plain table: the trailer stays zero
    fold = {v: k for k, v in FOLDS.items()}.get(table.symmetry)
    if fold is None or table.tails is None or table.knot_span is None:
        return None
    first, last = table.knot_span
    for mode, (reduction, start_steps, start) in MODES.items():
        if reduction != table.reduction:
            continue
        if first == last:  # tails only
            shift = BYPASS_BIT
        else:
            step = (last - first) / 32
            shift = round(-np.log2(step)) if step > 0 else -1
            if not 0 <= shift < 0x40 or 2.0 ** -shift != step:
                continue
            if (start_steps * step if start_steps is not None else start) != first:
                continue
        with np.errstate(over="ignore"):
            words[TAIL_WORD:TAIL_WORD + 4] = np.array(table.tails, np.float32).astype(np.float16).view(np.uint16)
        words[SHIFT_WORD] = shift
        words[MODE_WORD] = mode | fold
        return words
    return None
