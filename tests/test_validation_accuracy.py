"""The simulator's error on the measured traces must not rise above the recorded figures.

``validation/accuracy.json`` is written by ``anesim validate --chip all --record``; re-record it
when a change improves the figures. Simulating every trace takes minutes, so the test is marked
slow: ``benchmarks/validate_accuracy.py`` runs it (or ``pytest -m slow``).
"""

from __future__ import annotations

import json

import pytest

from anesim.validate.runner import chip_families, validate
from anesim.validate.traces import ACCURACY_FILE, trace_dir

# Slack for float noise between platforms; the simulation itself is deterministic.
PCT_SLACK = 0.25
R_SLACK = 0.002


def _recorded() -> dict:  # type: ignore[type-arg]
    path = trace_dir() / ACCURACY_FILE
    if not path.is_file():
        pytest.skip(f"no recorded accuracy ({path.name}); run anesim validate --chip all --record")
    return json.loads(path.read_text(encoding="utf-8"))


def _check(label: str, now: dict, then: dict) -> list[str]:  # type: ignore[type-arg]
    bad = []
    for key in ("median_abs_pct_error", "mean_abs_pct_error"):
        if then.get(key) is not None and (now.get(key) is None or now[key] > then[key] + PCT_SLACK):
            bad.append(f"{label}: {key} {now.get(key)} > recorded {then[key]}")
    if then.get("log_pearson_r") is not None and (
        now.get("log_pearson_r") is None or now["log_pearson_r"] < then["log_pearson_r"] - R_SLACK
    ):
        bad.append(f"{label}: log_pearson_r {now.get('log_pearson_r')} < recorded {then['log_pearson_r']}")
    if now["n_points"] < then["n_points"]:
        bad.append(f"{label}: {now['n_points']} points simulated, {then['n_points']} recorded")
    return bad


@pytest.mark.cost(18)
@pytest.mark.slow
def test_validation_error_does_not_rise_above_the_record() -> None:
    recorded = _recorded()["chips"]
    try:
        from anesim.compiler import compile_graph  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"compile pipeline unavailable: {exc}")
    results = validate("all")
    problems = []
    for fam, then in _recorded().get("chip_families", {}).items():
        problems += _check(fam, chip_families(results)[fam], then)
    for name, then in recorded.items():
        now = results[name].summary()
        problems += _check(name, now, then)
        for fam, fthen in then["families"].items():
            fnow = now["families"].get(fam)
            if fnow is None:
                problems.append(f"{name}/{fam}: no longer simulated")
            else:
                problems += _check(f"{name}/{fam}", fnow, fthen)
    assert not problems, "\n".join(problems)
