"""The fast numerics mode: float32 BLAS sums, the port rules kept, deviation within its stated bound."""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest

import anesim
import anesim.numerics as N
from anesim.cli import main
from anesim.compiler import Builder
from anesim.errors import InputError
from anesim.numerics.fast import blas_owns_cores
from anesim.numerics.rules import IEEE_PORT_RULES, M1_RULES

REPO = Path(__file__).resolve().parents[1]


def _ordered(bits: np.ndarray) -> np.ndarray:
    b = bits.astype(np.int32)
    return np.where(b & 0x8000, -(b & 0x7FFF), b & 0x7FFF)


def _operands(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = N.to_bits(rng.standard_normal((m, k)).astype(np.float16))
    b = N.to_bits((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float16))
    return a, b


def test_fast_matmul_is_one_rounding_of_the_float_sum() -> None:
    """Fast mode lands within one ulp of the float64 sum almost everywhere; exact mode does not."""
    rng = np.random.default_rng(1)
    a, b = _operands(rng, 64, 512, 256)
    fast = N.matmul(a, b, mode="fast")
    exact = N.matmul(a, b)
    af, bf = (N.from_bits(v).astype(np.float64) for v in (a, b))
    af[np.abs(af) < 2.0**-14] = 0.0  # the M1 MAC flushes subnormal operands
    bf[np.abs(bf) < 2.0**-14] = 0.0
    truth = N.to_bits((af @ bf).astype(np.float16))
    truth[(truth & 0x7C00) == 0] = 0  # the M1 port flushes subnormals
    fast_err = np.abs(_ordered(fast) - _ordered(truth))
    exact_err = np.abs(_ordered(exact) - _ordered(truth))
    assert np.percentile(fast_err, 99.9) <= 1 < np.percentile(exact_err, 99.9)
    assert not np.array_equal(fast, exact)  # the modes really differ
    assert np.mean(fast == exact) > 0.5


def test_fast_conv_agrees_with_fast_matmul_and_with_exact_closely() -> None:
    rng = np.random.default_rng(2)
    x = N.to_bits(rng.standard_normal((1, 16, 9, 9)).astype(np.float16))
    w = N.to_bits((rng.standard_normal((8, 16, 3, 3)) / 12).astype(np.float16))
    fast = N.conv2d(x, w, padding=1, mode="fast")
    exact = N.conv2d(x, w, padding=1)
    assert fast.shape == exact.shape == (1, 8, 9, 9)
    rel = np.abs(N.from_bits(fast).astype(np.float64) - N.from_bits(exact))
    assert rel.max() < 4e-3 * np.sqrt(np.mean(N.from_bits(exact).astype(np.float64) ** 2)) * 10


def test_infinite_operands_follow_the_exact_rule() -> None:
    """Outputs touching an infinity (or a NaN, which enters as +inf) are replayed exactly."""
    rng = np.random.default_rng(3)
    a, b = _operands(rng, 8, 16, 8)
    a[2, 5] = 0x7C00  # +inf
    a[4, 1] = 0x7E00  # NaN → +inf
    b[5, 3] = 0  # inf × 0 → +0 under the rule, NaN in BLAS
    b[:, 6] = 0
    fast = N.matmul(a, b, mode="fast")
    exact = N.matmul(a, b)
    np.testing.assert_array_equal(fast[[2, 4]], exact[[2, 4]])
    assert np.all(np.isfinite(N.from_bits(fast[2, [3, 6]]))) and fast[2, 6] == 0


@pytest.mark.parametrize("rules, limit_inf", [(M1_RULES, True), (IEEE_PORT_RULES, False)])
def test_the_output_port_limit_is_kept(rules: object, limit_inf: bool) -> None:
    a = N.to_bits(np.array([[16384.0, 16384.0]], np.float16))
    b = N.to_bits(np.array([[1.0], [1.0]], np.float16))
    out = N.from_bits(N.matmul(a, b, rules=rules, mode="fast"))
    assert np.isinf(out[0, 0]) == limit_inf
    sub = N.to_bits(np.array([[2.0**-20]], np.float16))
    one = N.to_bits(np.array([[1.0]], np.float16))
    assert N.from_bits(N.matmul(sub, one, rules=rules, mode="fast"))[0, 0] == (0.0 if rules is M1_RULES else 2.0**-20)


def test_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="numerics mode"):
        N.matmul(np.zeros((2, 2), np.uint16), np.zeros((2, 2), np.uint16), mode="quick")
    b = Builder("m")
    b.output(b.relu(b.input("x", (1, 4, 4, 4))))
    compiled = anesim.compile(b, "m1")
    with pytest.raises(InputError, match="numerics mode"):
        anesim.execute(compiled, {"x": np.zeros((1, 4, 4, 4), np.float16)}, numerics="quick")


def test_blas_owns_cores_restores_the_thread_count() -> None:
    before = numba.get_num_threads()
    with blas_owns_cores():
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_execute_and_run_in_fast_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The API and `anesim run --numerics fast --out` give the same files as exact mode, close values."""
    prog = REPO / "programs" / "conv3x3.yaml"
    for mode in ("exact", "fast"):
        assert main(["run", str(prog), "--chip", "m1", "--numerics", mode, "--out", str(tmp_path / mode)]) == 0
    out = capsys.readouterr().out
    assert "numerics 'fast': not bit-exact" in out
    exact_files = sorted(p.relative_to(tmp_path / "exact") for p in (tmp_path / "exact").rglob("*.npy"))
    fast_files = sorted(p.relative_to(tmp_path / "fast") for p in (tmp_path / "fast").rglob("*.npy"))
    assert exact_files == fast_files and exact_files
    for rel in exact_files:
        e = np.load(tmp_path / "exact" / rel).astype(np.float64)
        f = np.load(tmp_path / "fast" / rel).astype(np.float64)
        assert e.shape == f.shape
        assert np.max(np.abs(e - f)) <= 0.01 * np.max(np.abs(e)) + 1e-3


def test_fast_numerics_with_timing_only_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(REPO / "programs" / "conv3x3.yaml"), "--timing-only", "--numerics", "fast"]) == 2
    assert "--timing-only skips that run" in capsys.readouterr().err
