"""Lookup-table activations: accuracy of the built-in tables and the table mechanics.

The error figures asserted here are the ones docs/numerics.md reports; each is the largest
error over every finite fp16 input in the stated domain, against the exact function rounded to
fp16. ``abs`` is the absolute error; ``ulp`` counts fp16 spacings at the exact value (only for
normal-range outputs) and is given where the output spans many binades.
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

import anesim.numerics as N
from anesim.numerics import reference as R

ALL = np.arange(65536, dtype=np.uint16)
VALUES = ALL.view(np.float16).astype(np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


# name: (exact function, input domain, documented max abs error, documented max ulp error)
DOCUMENTED = {
    "sigmoid": (_sigmoid, (-16.0, 16.0), 0.0044, None),
    "tanh": (np.tanh, (-16.0, 16.0), 0.0020, None),
    "gelu": (_gelu, (-16.0, 16.0), 0.0062, None),
    "silu": (lambda x: x * _sigmoid(x), (-32.0, 32.0), 0.0152, None),
    "exp": (np.exp, (-16.0, 11.08), None, 10),
    "exp2": (np.exp2, (-24.0, 15.99), None, 1),
    "recip": (lambda x: 1.0 / x, (2.0**-15, 65504.0), None, 2),
    "sqrt": (np.sqrt, (2.0**-24, 65504.0), None, 1),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), (2.0**-24, 65504.0), None, 2),
    "log2": (np.log2, (2.0**-14, 65504.0), 0.0079, None),
    "log": (np.log, (2.0**-14, 65504.0), 0.0079, None),
}


def measure(name: str) -> tuple[float, float, float]:
    """Max abs error, max ulp error (normal outputs) and the share of exact results."""
    fn, (lo, hi), _, _ = DOCUMENTED[name]
    inside = np.isfinite(VALUES) & (VALUES >= lo) & (VALUES <= hi)
    got = N.from_bits(N.apply_lut(ALL[inside], N.builtin_lut(name))).astype(np.float64)
    with np.errstate(all="ignore"):
        exact = fn(VALUES[inside]).astype(np.float16).astype(np.float64)
    assert np.array_equal(np.isfinite(got), np.isfinite(exact)), name
    ok = np.isfinite(exact)
    err = np.abs(got[ok] - exact[ok])
    mag = np.abs(exact[ok])
    normal = mag >= 2.0**-14
    spacing = np.ldexp(1.0, np.floor(np.log2(mag[normal])).astype(int) - 10)
    return float(err.max()), float((err[normal] / spacing).max()), float(np.mean(err == 0))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_table_error_is_within_the_documented_figure(name: str) -> None:
    max_abs, max_ulp, _ = measure(name)
    _, _, abs_bound, ulp_bound = DOCUMENTED[name]
    if abs_bound is not None:
        assert max_abs <= abs_bound
    if ulp_bound is not None:
        assert max_ulp <= ulp_bound


def test_guide_error_figures_are_the_right_magnitude() -> None:
    # measured on device (guide ch. 3): sigmoid 0.0034, tanh 0.0017, gelu 0.0059
    for name, device in (("sigmoid", 0.0034), ("tanh", 0.0017), ("gelu", 0.0059)):
        assert 0.5 * device <= measure(name)[0] <= 1.5 * device


def test_clamps_and_asymptotes() -> None:
    sig = N.builtin_lut("sigmoid")
    out = N.from_bits(N.apply_lut(N.to_bits(np.array([-100.0, -9.95, 8.33, 100.0, -np.inf, np.inf])),
                                  sig)).tolist()
    assert out == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    tanh = N.builtin_lut("tanh")
    assert N.from_bits(N.apply_lut(N.to_bits(np.array([-5.0, 5.0])), tanh)).tolist() == [-1.0, 1.0]


def test_odd_table_is_antisymmetric() -> None:
    x = N.to_bits(np.linspace(0, 6, 500))
    pos = N.apply_lut(x, N.builtin_lut("tanh"))
    neg = N.apply_lut(x ^ np.uint16(0x8000), N.builtin_lut("tanh"))
    assert np.array_equal(neg[1:], pos[1:] ^ np.uint16(0x8000))


def test_identity_tables_are_exact_clamps() -> None:
    x = ALL[np.isfinite(VALUES)]
    v = VALUES[np.isfinite(VALUES)]
    with np.errstate(invalid="ignore"):
        assert np.array_equal(N.from_bits(N.apply_lut(x, N.builtin_lut("relu6"))), np.clip(v, 0, 6))
        assert np.array_equal(N.from_bits(N.apply_lut(x, N.builtin_lut("relu"))),
                              np.maximum(v, 0) + 0.0)


def test_table_knots_are_reproduced_at_the_knots() -> None:
    rng = np.random.default_rng(1)
    samples = np.sort(rng.uniform(-1, 1, 33)).astype(np.float16).view(np.uint16)
    table = N.Lut.from_table(samples, 0.0, 32.0, -5.0, 5.0)
    at_knots = N.from_bits(N.apply_lut(N.to_bits(np.arange(33.0)), table)).astype(np.float64)
    knots = samples.view(np.float16).astype(np.float64)
    # slope·x + intercept in fp16 reproduces each knot to within a few fp16 spacings
    assert np.max(np.abs(at_knots - knots)) < 0.01


def test_lut_rejects_bad_tables() -> None:
    with pytest.raises(ValueError):
        N.Lut(np.zeros(32, np.uint16))
    with pytest.raises(ValueError):
        N.Lut(np.zeros(33, np.uint16), x_first=1.0, x_last=1.0)
    with pytest.raises(ValueError):
        N.builtin_lut("softsign")


def _decoded_table(shared: Path, member: str, offset: int) -> np.ndarray:
    """The 64 fp16 words of an activation table inside one of the M1 raw kernels."""
    with tarfile.open(shared / "hwx" / "eiln" / "kernels.tar.gz") as tar:
        handle = tar.extractfile(f"kernels/{member}.bin")
        assert handle is not None
        blob = handle.read()
    return np.frombuffer(blob[offset:offset + 128], np.uint16).copy()


def test_decoded_m1_tables_reach_the_guides_accuracy(shared_dir: Path) -> None:
    # tables taken from M1 command buffers, evaluated by our rule; the knot spans are the ones
    # the sampled values imply (tanh over [0, 4], gelu over [-4, 4], sigmoid − ½ over [0, 8])
    inside = np.isfinite(VALUES) & (np.abs(VALUES) <= 16.0)
    x, v = ALL[inside], VALUES[inside]
    tanh_words = _decoded_table(shared_dir, "unary/tanh", 0x280)
    tanh = N.Lut(tanh_words[4:37], 0.0, 4.0, lo=0.0, hi=4.0, below=0.0, above=1.0, symmetry="odd")
    gelu_words = _decoded_table(shared_dir, "activation/gelu", 0x280)
    gelu = N.Lut(gelu_words[4:37], -4.0, 4.0, lo=-4.4, hi=math.inf, below=0.0, above=math.inf)
    sig_words = _decoded_table(shared_dir, "unary/sigmoid", 0x580)
    sigmoid = N.Lut(sig_words[4:37], 0.0, 8.0, lo=-1.0, hi=10.0, below=0.0, above=0.5,
                    symmetry="odd", post_bias=0.5)
    for table, fn, device in ((tanh, np.tanh, 0.0017), (gelu, _gelu, 0.0059),
                              (sigmoid, _sigmoid, 0.0034)):
        got = N.from_bits(N.apply_lut(x, table)).astype(np.float64)
        err = np.abs(got - fn(v).astype(np.float16).astype(np.float64)).max()
        assert err <= 1.2 * device
    # the decoded gelu carries a small negative value at the origin, as the guide reports
    assert -0.001 < float(N.from_bits(N.apply_lut(np.zeros(1, np.uint16), gelu))[0]) < 0.0


# ------------------------------------------- tails, int/frac, positive-only fold: kernel = reference

INF = math.inf
_RNG = np.random.default_rng(30)


def _knots(scale: float = 1.0) -> np.ndarray:
    return (_RNG.standard_normal(33) * scale).astype(np.float16).view(np.uint16)


def _exp2_knots(x_first: float, x_last: float) -> np.ndarray:
    return N.lut.knots_of(np.exp2, x_first, x_last)


ZEROS = np.zeros(33, np.uint16)
# tables built to exercise each rule of docs/numerics.md (*Tables with tails, int/frac and the
# positive-only fold*), alone and with the fold, clamps, pre/post scale and post bias around it
FEATURE_TABLES = {
    "tails": N.Lut(_knots(), -2.0, 3.0, tails=(0.37, -1.1, -2.5, 4.0)),
    "tails clamped, post": N.Lut(_knots(), -2.0, 3.0, lo=-7.0, hi=9.0, below=-3.0, above=5.0,
                                 tails=(0.1, 0.2, 1.0, 0.0), post_scale=0.75, post_bias=-0.125),
    "tails odd": N.Lut(_knots(), 0.0, 4.0, symmetry="odd", tails=(0.0, 0.0, 0.001, 0.99)),
    "tails even, pre": N.Lut(_knots(), 0.5, 2.5, symmetry="even", pre_scale=1.4427,
                             tails=(3.0, -1.0, -0.5, 2.0)),
    "tails overflowing": N.Lut(_knots(1000.0), -100.0, 100.0, tails=(70000.0, 1e-5, -300.0, -6e4)),
    "tails identity": N.Lut(None, -1.0, 1.0, tails=(0.25, -0.75, 0.5, 0.5)),
    "tails only: relu6": N.Lut(ZEROS, 0.0, 0.0, lo=-INF, hi=6.0, below=0.0, above=6.0,
                               tails=(0.0, 0.0, 1.0, 0.0)),
    "tails only: leaky relu": N.Lut(ZEROS, 0.0, 0.0, tails=(0.01, 0.0, 1.0, 0.0)),
    "tails only: sign": N.Lut(ZEROS, 0.0, 0.0, lo=0.0, hi=1.0, below=0.0, above=1.0,
                              symmetry="odd", tails=(0.0, 0.0, 0.0, 1.0)),
    "tails only, knot 0": N.Lut(_knots(), 1.5, 1.5, tails=(-0.3, 0.7, 2.0, -1.5)),
    "tails only, knot 0 = -0": N.Lut(np.full(33, 0x8000, np.uint16), 0.0, 0.0,
                                     tails=(1.0, 0.0, 1.0, 0.0)),
    "tails only, identity": N.Lut(None, 0.0, 0.0, tails=(0.25, 0.0, 2.0, 0.0)),
    "tails of exp2 beyond the span": N.Lut(_exp2_knots(0.0, 0.5), 0.0, 0.5, lo=-25.0, hi=16.0,
                                           above=INF, reduction="exp2", tails=(0.5, 1.0, 0.75, 1.0)),
    "tails of exp2, empty span": N.Lut(_exp2_knots(0.0, 1.0), 0.5, 0.5, lo=-25.0, hi=16.0,
                                       above=INF, reduction="exp2", tails=(0.5, 1.0, 0.75, 1.0)),
    "tails of recip beyond the span": N.Lut(N.lut.knots_of(lambda m: 1 / m, 0.5, 0.75), 0.5, 0.75,
                                            lo=0.0, hi=INF, below=INF, symmetry="odd",
                                            reduction="recip", tails=(0.0, 2.0, -1.0, 2.0)),
    "int": N.Lut(None, lo=-INF, hi=INF, below=-INF, above=INF, reduction="int"),
    "int odd (ceil.bin)": N.Lut(ZEROS, 0.0, 1.0, lo=-INF, hi=INF, below=-INF, above=INF,
                                symmetry="odd", reduction="int", tails=(0.0, 0.0, 0.0, 0.0)),
    "int clamped, bias": N.Lut(None, lo=-50.0, hi=300.0, below=-1.0, above=2.0, reduction="int",
                               post_bias=0.25),
    "frac": N.Lut(None, lo=-INF, hi=INF, below=0.0, above=0.0, reduction="frac"),
    "frac odd (ceil.bin)": N.Lut(ZEROS, 0.0, 32.0, lo=-INF, hi=INF, below=0.0, above=0.0,
                                 symmetry="odd", reduction="frac", tails=(0.0, 0.0, 0.0, 0.0)),
    "frac even, pre, post": N.Lut(None, lo=-100.0, hi=100.0, below=7.0, above=-7.0,
                                  symmetry="even", reduction="frac", pre_scale=0.3,
                                  post_scale=-2.0, post_bias=0.5),
    "positive": N.Lut(_knots(), 0.0, 8.0, lo=-1.0, hi=10.0, below=3.0, above=4.0,
                      symmetry="positive"),
    "positive, post": N.Lut(_knots(), 0.0, 8.0, symmetry="positive", post_scale=-1.0,
                            post_bias=0.5),
    "positive with tails": N.Lut(_knots(), 1.0, 3.0, symmetry="positive",
                                 tails=(0.5, 0.5, 1.0, -1.0)),
    "positive int": N.Lut(None, symmetry="positive", reduction="int"),
    "positive sqrt": N.Lut(N.lut._even_mantissa_table(np.sqrt), 0.0, 2.0, lo=0.0, hi=INF,
                           below=0.0, above=INF, symmetry="positive", reduction="sqrt"),
    "positive log2": N.Lut(N.lut.knots_of(np.log2, 0.5, 1.0), 0.5, 1.0, lo=-INF, hi=INF,
                           below=0.0, above=INF, symmetry="positive", reduction="log2",
                           tails=(1.0, -1.0, 1.0, -1.0)),
    "positive exp2": N.Lut(_exp2_knots(0.0, 1.0), 0.0, 1.0, lo=-25.0, hi=16.0, above=INF,
                           symmetry="positive", reduction="exp2"),
}


@pytest.mark.parametrize("name", sorted(FEATURE_TABLES))
def test_table_features_match_the_reference_on_every_input(name: str) -> None:
    table = FEATURE_TABLES[name]
    assert np.array_equal(N.apply_lut(ALL, table), R.apply_lut(ALL, table))


def _at(table: N.Lut, xs: list[float]) -> list[float]:
    bits = N.to_bits(np.array(xs))
    got = N.from_bits(N.apply_lut(bits, table)).astype(np.float64).tolist()
    assert got == N.from_bits(R.apply_lut(bits, table)).astype(np.float64).tolist()
    return got


def test_int_frac_and_the_positive_fold_by_value() -> None:
    xs = [-2.5, -2.0, -0.75, 0.0, 0.5, 3.75, np.nan]
    assert _at(FEATURE_TABLES["int"], xs) == [-2.0, -2.0, -0.0, 0.0, 0.0, 3.0, INF]
    assert _at(FEATURE_TABLES["frac"], xs) == [-0.5, 0.0, -0.75, 0.0, 0.5, 0.75, 0.0]
    # the positive fold gives +0 before the clamps; post-scale and bias still apply
    assert _at(FEATURE_TABLES["positive"], [-100.0, -0.5, -INF]) == [0.0, 0.0, 0.0]
    assert _at(FEATURE_TABLES["positive, post"], [-3.0, -INF]) == [0.5, 0.5]
    assert _at(FEATURE_TABLES["positive sqrt"], [-4.0, 4.0, 0.0]) == [0.0, 2.0, 0.0]


def test_reduced_tables_use_their_tails_outside_the_knot_span() -> None:
    # exp2 over an empty span at 0.5: below it the lower tail 0.5·f + 1, above it 0.75·f + 1,
    # at it knot 0 (= 2**0), each scaled by 2**floor(x)
    table = FEATURE_TABLES["tails of exp2, empty span"]
    assert _at(table, [0.25, 1.75, 2.5]) == [1.125, 2 * 1.5625, 4.0]


def test_decoded_eiln_tables_match_the_reference_on_every_input(eiln_dir: Path) -> None:
    import anesim
    from anesim.functional.tasks import table_to_lut

    sidecars = Path(__file__).resolve().parents[1] / "programs" / "eiln"
    seen = {"tails": 0, "empty span": 0, "int": 0, "frac": 0, "positive": 0}
    for sidecar in sorted(sidecars.rglob("*.sidecar.json")):
        rel = sidecar.relative_to(sidecars).as_posix().replace(".sidecar.json", ".bin")
        for task in anesim.load(eiln_dir / rel, sidecar=sidecar).tasks:
            if task.ne is None or task.ne.table is None:
                continue
            table = table_to_lut(task.ne.table)
            assert np.array_equal(N.apply_lut(ALL, table), R.apply_lut(ALL, table)), (rel, table)
            seen["tails"] += table.tails is not None
            seen["empty span"] += table.tails is not None and table.x_first == table.x_last
            seen["int"] += table.reduction == "int"
            seen["frac"] += table.reduction == "frac"
            seen["positive"] += table.symmetry == "positive"
    assert all(seen.values()), seen  # every new feature occurs in a real table
