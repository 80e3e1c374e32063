"""How the decoder reads activation tables and planar configurations (docs/functional.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import anesim
from anesim.functional.tasks import table_to_lut
from anesim.hwx.tables import decode_table
from anesim.numerics import apply_lut
from anesim.program.model import ActivationTable, Program

SIDECARS = Path(__file__).resolve().parents[1] / "programs" / "eiln"


def load(eiln_dir: Path, rel: str) -> Program:
    return anesim.load(eiln_dir / rel, sidecar=SIDECARS / rel.replace(".bin", ".sidecar.json"))


def table(eiln_dir: Path, rel: str, task: int = 0) -> ActivationTable:
    t = load(eiln_dir, rel).tasks[task].ne.table
    assert t is not None
    return t


# rel, task: (reduction, symmetry, knot span, tails present)
INFERRED = {
    ("activation/gelu.bin", 0): ("none", "none", (-4.0, 4.0), True),
    ("unary/sigmoid.bin", 0): ("none", "odd", (0.0, 8.0), True),
    ("unary/tanh.bin", 0): ("none", "odd", (0.0, 4.0), True),
    ("unary/exp.bin", 0): ("exp2", "none", (0.0, 1.0), True),
    ("unary/log2.bin", 0): ("log2", "positive", (0.5, 1.0), True),
    ("unary/sqrt.bin", 0): ("sqrt", "positive", (0.0, 2.0), True),
    ("unary/inv.bin", 0): ("recip", "odd", (0.5, 1.0), True),
    ("unary/sign.bin", 0): ("none", "odd", (0.0, 0.0), True),
    ("activation/relu6.bin", 0): ("none", "none", (0.0, 0.0), True),
    ("activation/leakyrelu.bin", 0): ("none", "none", (0.0, 0.0), True),
    ("unary/ceil.bin", 0): ("frac", "odd", (0.0, 32.0), True),
    ("unary/ceil.bin", 2): ("int", "odd", (0.0, 1.0), True),
}


@pytest.mark.parametrize("rel,task", sorted(INFERRED))
def test_table_reading_inferred_from_the_program(eiln_dir: Path, rel: str, task: int) -> None:
    t = table(eiln_dir, rel, task)
    reduction, symmetry, span, has_tails = INFERRED[rel, task]
    assert (t.reduction, t.symmetry, t.knot_span, t.tails is not None) == (reduction, symmetry, span, has_tails)


def test_tails_continue_the_curves_they_end(eiln_dir: Path) -> None:
    # the upper tail of the sigmoid table meets its last knot; gelu's upper tail is y = x
    sig = table(eiln_dir, "unary/sigmoid.bin")
    last = float(sig.samples[-1:].view(np.float16)[0])
    slope, intercept = sig.tails[2:]
    assert abs(slope * 8.0 + intercept - last) < 2e-4
    assert table(eiln_dir, "activation/gelu.bin").tails == (0.0, 0.0, 1.0, 0.0)
    # leaky relu's lower tail is PyTorch's default slope, rrelu's the mean of its bounds
    assert table(eiln_dir, "activation/leakyrelu.bin").tails[0] == float(np.float16(0.01))
    assert table(eiln_dir, "activation/rrelu.bin").tails[0] == float(np.float16((1 / 8 + 1 / 3) / 2))


def test_inverse_adds_the_accumulator_epsilon(eiln_dir: Path) -> None:
    ne = load(eiln_dir, "unary/inv.bin").tasks[0].ne
    assert ne.op == "bypass" and ne.acc_bias == float(np.float16(1e-4))


@pytest.mark.parametrize("rel,ops", [
    ("unary/abs.bin", ["abs"]),
    ("binary/sub.bin", ["add"]),
    ("activation/softmax.bin", ["reduce_max", "sub", None, "recip_sum", "mul"]),
    ("activation/logsoftmax.bin", ["reduce_max", "sub", None, "recip_sum", "mul", None, "copy"]),
    ("unary/norm.bin", ["abs", "mul", "reduce_sum", None, None, "copy", None, "mul"]),
])
def test_planar_configurations(eiln_dir: Path, rel: str, ops: list[str | None]) -> None:
    program = load(eiln_dir, rel)
    assert [t.planar.op if t.planar else None for t in program.tasks] == ops
    assert not program.notes and not program.approximations


def test_row_reductions_leave_one_value_per_row_and_readers_broadcast_it(eiln_dir: Path) -> None:
    first, second = load(eiln_dir, "activation/softmax.bin").tasks[:2]
    src = first.sources[0]
    assert (src.groups, src.height, src.width, src.group_stride_bytes) == (2560, 1, 1600, 3200)
    res = first.result
    assert (res.space, res.groups, res.width, res.group_stride_bytes) == ("pool", 2560, 1, 16)
    row_max = second.sources[1]
    assert (row_max.space, row_max.offset_bytes, row_max.height, row_max.width) == ("pool", 0, 2560, 1)
    assert row_max.row_stride_bytes == 16


# ------------------------------------------------------------------------------ the blob reader


def _blob(head: list[float], samples: np.ndarray, tails: list[float], shift: int, mode: int) -> np.ndarray:
    words = np.zeros(64, np.uint16)
    words[:4] = np.array(head, np.float16).view(np.uint16)
    words[4:37] = np.asarray(samples, np.float16).view(np.uint16)
    words[37:41] = np.array(tails, np.float16).view(np.uint16)
    words[41], words[42] = shift, mode
    return words


def test_a_blob_without_its_parameter_words_is_a_plain_table() -> None:
    words = _blob([-8, 8, 0, 1], np.linspace(0, 1, 33), [0, 0, 0, 0], 0, 0)
    t, notes = decode_table(words, "t")
    assert (t.reduction, t.symmetry, t.knot_span, t.tails, notes) == ("none", "none", None, None, [])
    assert (t.range_lo, t.range_hi) == (-8.0, 8.0)


def test_centred_and_folded_spans() -> None:
    centred, _ = decode_table(_blob([-math.inf, math.inf, 0, 0], np.zeros(33), [0, 0, 0, 0], 3, 0x01), "t")
    folded, _ = decode_table(_blob([0, 4, 0, 1], np.zeros(33), [0, 0, 0, 1], 3, 0x60), "t")
    assert centred.knot_span == (-2.0, 2.0) and folded.knot_span == (0.0, 4.0)
    assert folded.symmetry == "odd"


def test_unknown_modes_are_reported() -> None:
    _, notes = decode_table(_blob([0, 1, 0, 1], np.zeros(33), [0, 0, 0, 0], 2, 0x1B), "t")
    assert any("mode 11" in n[2] for n in notes) and any("fold 0x10" in n[2] for n in notes)


def test_a_tails_only_table_is_piecewise_linear_through_zero() -> None:
    # leaky relu: tails (0.01, 0) below and (1, 0) above an empty span at 0
    words = _blob([-math.inf, math.inf, -math.inf, math.inf], np.zeros(33), [0.01, 0, 1, 0], 0x40, 0x01)
    lut = table_to_lut(decode_table(words, "t")[0])
    x = np.array([-100.0, -1.0, -0.0, 0.0, 2.0, 65504.0], np.float16)
    y = apply_lut(x.view(np.uint16), lut).view(np.float16)
    want = np.where(x > 0, x, (np.float16(0.01) * x.astype(np.float32)).astype(np.float16))
    assert np.array_equal(y.view(np.uint16) & 0x7FFF, want.view(np.uint16) & 0x7FFF)


@pytest.mark.parametrize("rel,task", sorted(INFERRED))
def test_tables_encode_back_to_what_they_decode_from(eiln_dir: Path, rel: str, task: int) -> None:
    from anesim.hwx.tables import decode_table, encode_table

    t = table(eiln_dir, rel, task)
    words = encode_table(t)
    assert words is not None
    back, notes = decode_table(words, t.name)
    assert not notes
    assert (back.range_lo, back.range_hi, back.knot_span, back.tails, back.reduction, back.symmetry) == \
           (t.range_lo, t.range_hi, t.knot_span, t.tails, t.reduction, t.symmetry)
    assert np.array_equal(back.samples, t.samples)
