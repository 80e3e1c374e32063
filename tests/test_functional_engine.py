"""The functional engine's contract: input checking, determinism, on-chip streams, guide probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anesim
from anesim.errors import InputError, ProgramError
from anesim.functional.memory import Memory, streamed
from anesim.program.model import Layout, Program

SIDECARS = Path(__file__).resolve().parents[1] / "programs" / "eiln"
SHAPE = (1, 1, 2560, 1600)


def load(eiln_dir: Path, rel: str) -> Program:
    return anesim.load(eiln_dir / rel, sidecar=SIDECARS / rel.replace(".bin", ".sidecar.json"))


@pytest.fixture(scope="module")
def add(eiln_dir: Path) -> Program:
    return load(eiln_dir, "binary/add.bin")


@pytest.fixture(scope="module")
def softmax(eiln_dir: Path) -> Program:
    return load(eiln_dir, "activation/softmax.bin")


# ------------------------------------------------------------------------------ input errors


def _ones() -> np.ndarray:
    return np.ones(SHAPE, np.float16)


def test_unknown_input_is_named(add: Program) -> None:
    with pytest.raises(InputError) as err:
        anesim.execute(add, {"src0": _ones(), "src1": _ones(), "bias": _ones()})
    assert "'bias'" in str(err.value) and "src0" in str(err.value)


def test_missing_input_is_named_with_its_shape(add: Program) -> None:
    with pytest.raises(InputError) as err:
        anesim.execute(add, {"src0": _ones()})
    assert "'src1'" in str(err.value) and "(1, 1, 2560, 1600)" in str(err.value)


def test_wrong_shape_names_the_tensor_and_the_expected_shape(add: Program) -> None:
    with pytest.raises(InputError) as err:
        anesim.execute(add, {"src0": np.ones((1, 1, 1600, 2560), np.float16), "src1": _ones()})
    text = str(err.value)
    assert "'src0'" in text and "(1, 1, 2560, 1600)" in text and "(1, 1, 1600, 2560)" in text


@pytest.mark.parametrize("bad", [np.ones(SHAPE, bool), np.full(SHAPE, "x"), np.ones(SHAPE, complex)])
def test_wrong_dtype_names_the_tensor(add: Program, bad: np.ndarray) -> None:
    with pytest.raises(InputError) as err:
        anesim.execute(add, {"src0": _ones(), "src1": bad})
    assert "'src1'" in str(err.value) and "(1, 1, 2560, 1600)" in str(err.value)


def test_squeezable_shapes_and_wider_floats_are_accepted(add: Program) -> None:
    x = np.full(SHAPE[2:], 1.5)  # float64, without the leading unit axes
    out = anesim.execute(add, {"src0": x, "src1": _ones()})["dst0"]
    assert out.shape == SHAPE and out.dtype == np.float16 and np.all(out == 2.5)


# ------------------------------------------------------------------------------ determinism


def test_two_runs_are_bit_identical(softmax: Program) -> None:
    x = np.random.default_rng(3).uniform(-8, 8, SHAPE).astype(np.float16)
    first = anesim.execute(softmax, {"src0": x})["dst0"]
    second = anesim.execute(softmax, {"src0": x.copy()})["dst0"]
    assert np.array_equal(first.view(np.uint16), second.view(np.uint16))


def test_rows_do_not_depend_on_their_neighbours(softmax: Program) -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(-8, 8, SHAPE).astype(np.float16)
    y = x.copy()
    y[0, 0, 1:] = rng.uniform(-8, 8, (2559, 1600)).astype(np.float16)
    a, b = (anesim.execute(softmax, {"src0": v})["dst0"] for v in (x, y))
    assert np.array_equal(a[0, 0, 0].view(np.uint16), b[0, 0, 0].view(np.uint16))


# ------------------------------------------------------------------------------ guide probes


def test_softmax_subtracts_the_maximum_first(softmax: Program) -> None:
    # guide ch. 3: a softmax of [1000, 1, 2, 3] returns [1, 0, 0, 0] although exp(1000) overflows
    x = np.zeros(SHAPE, np.float16)
    x[0, 0, :, :4] = [1000, 1, 2, 3]
    x[0, 0, :, 4:] = -60000
    y = anesim.execute(softmax, {"src0": x})["dst0"].astype(np.float64)
    assert np.all(y[0, 0, :, 0] == 1.0) and np.all(y[0, 0, :, 1:] == 0.0)


def test_softmax_of_equal_values_is_uniform(softmax: Program) -> None:
    y = anesim.execute(softmax, {"src0": np.full(SHAPE, 0.25, np.float16)})["dst0"]
    assert np.all(y == np.float16(1 / 1600))


def test_softmax_puts_all_the_mass_on_a_nan(softmax: Program) -> None:
    # guide ch. 3: NaN enters as +inf, so the max is inf, inf - inf flushes to +0 and exp gives 1
    x = np.random.default_rng(5).uniform(-8, 8, SHAPE).astype(np.float16)
    x[0, 0, :, 7] = np.nan
    y = anesim.execute(softmax, {"src0": x})["dst0"].astype(np.float64)
    assert np.all(y[0, 0, :, 7] == 1.0)
    assert np.all(np.delete(y[0, 0], 7, axis=1) == 0.0)


def test_sqrt_and_log_of_negatives_are_positive_zero(eiln_dir: Path) -> None:
    # guide ch. 3: sqrt(-1) and log(-1) return +0 (the tables' positive-only input fold)
    x = np.full(SHAPE, -1.0, np.float16)
    for rel in ("unary/sqrt.bin", "unary/log.bin", "unary/log2.bin"):
        y = anesim.execute(load(eiln_dir, rel), {"src0": x})["dst0"]
        assert np.all(y.view(np.uint16) == 0), rel


def test_nan_lands_on_the_upper_clamp(eiln_dir: Path) -> None:
    # guide ch. 3: NaN into sigmoid or tanh returns 1.0, into exp returns inf
    x = np.full(SHAPE, np.nan, np.float16)
    for rel, want in (("unary/sigmoid.bin", 1.0), ("unary/tanh.bin", 1.0), ("unary/exp.bin", np.inf)):
        y = anesim.execute(load(eiln_dir, rel), {"src0": x})["dst0"]
        assert np.all(y.astype(np.float64) == want), rel


def test_reciprocal_of_negative_zero_is_positive_infinity(eiln_dir: Path) -> None:
    # guide ch. 3: 1/-0 = +inf; norm.bin's last table is the plain reciprocal (no epsilon)
    program = load(eiln_dir, "unary/norm.bin")
    table = program.tasks[6].ne.table
    from anesim.functional.tasks import table_to_lut
    from anesim.numerics import apply_lut
    y = apply_lut(np.array([0x8000, 0x0000], np.uint16), table_to_lut(table))
    assert y.view(np.float16).tolist() == [np.inf, np.inf]


# ------------------------------------------------------------------------------ streams


def test_ring_buffer_layouts_are_streams() -> None:
    ring = Layout("pool", None, 0, 1, 2560, 1600, "fp16", 32, 32)
    rows = Layout("pool", None, 0, 1, 2560, 1, "fp16", 16, 0xA020)
    assert streamed(ring) and not streamed(rows)
    assert not streamed(Layout("dram", 3, 0, 1, 2560, 1600, "fp16", 32, 32))


def test_a_stream_hands_the_whole_tile_to_the_next_task() -> None:
    memory = Memory({}, np.zeros(1 << 16, np.uint8))
    ring = Layout("pool", None, 0x20, 1, 2560, 1600, "fp16", 32, 32)
    tile = np.arange(2560 * 1600, dtype=np.uint16).reshape(1, 2560, 1600)
    memory.write(ring, tile)
    assert np.array_equal(memory.read(ring), tile)
    assert not memory.pool.any()  # the pool bytes are untouched


def test_reading_a_stream_nobody_wrote_is_a_program_error() -> None:
    memory = Memory({}, np.zeros(1 << 16, np.uint8))
    with pytest.raises(ProgramError):
        memory.read(Layout("pool", None, 0x40, 1, 2560, 1600, "fp16", 32, 32), what="task 3 source 1")


def test_a_source_larger_than_its_destination_is_refused_before_it_is_computed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged raw buffer held a 139-million-element source for a relu: the functional engine
    computed it for seconds before refusing its result's shape (found by fuzzing)."""
    import anesim.functional.tasks as tasks
    from anesim.errors import UnsupportedError
    from anesim.program.model import NeStage, Task

    def pool(channels: int, height: int, width: int) -> Layout:
        return Layout("pool", None, 0, channels, height, width)

    relu = Task(0, (pool(8, 16, 64),), pool(4, 2, 3), ne=NeStage("bypass", activation="relu"))
    monkeypatch.setattr(tasks, "_ne_stage", lambda *a, **k: pytest.fail("computed before the check"))
    with pytest.raises(UnsupportedError, match=r"computes a \(8, 16, 64\) result for a \(4, 2, 3\) destination"):
        tasks.run_task(relu, [np.zeros((8, 16, 64), np.uint16)], tasks.M1_RULES)
    monkeypatch.undo()
    fits = Task(0, (pool(8, 16, 64),), pool(8, 64, 16), ne=NeStage("bypass", activation="relu"))
    assert tasks.run_task(fits, [np.zeros((8, 16, 64), np.uint16)], tasks.M1_RULES).shape == (8, 64, 16)
