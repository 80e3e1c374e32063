"""Validation traces: reproducible from the shared table, every row mapped or excluded for a reason."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from anesim.validate import workloads
from anesim.validate.curate import CSV_NAME, build, dump
from anesim.validate.curation import load_table
from anesim.validate.methods import METHODS, expand
from anesim.validate.traces import QUANTITIES, TRACE_FILES, load_traces, trace_dir

TABLE_ROWS = 668  # rows of measurements/m1-m5-calibration.csv
TARGETS = {"M1", "M1 Max", "M5", "M5 Pro"}
REASONS = load_table().reasons


def test_curation_reproduces_the_committed_traces(shared_dir: Path) -> None:
    docs = build(shared_dir / CSV_NAME)
    for name in TRACE_FILES:
        committed = (trace_dir() / name).read_text(encoding="utf-8")
        assert dump(docs[name]) == committed, f"validation/{name} is stale: run python -m anesim.validate.curate"


def test_traces_keep_every_field_of_the_table(shared_dir: Path) -> None:
    with (shared_dir / CSV_NAME).open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    rows = {r.row: r for r in load_traces()}
    assert len(table) == TABLE_ROWS
    for i, src in enumerate(table):
        r = rows[i]
        assert (r.chip, r.source, r.section, r.provenance) == (
            src["chip"], src["source_repo_or_url"], src["source_path_or_section"], src["provenance"])
        assert (r.workload, r.shape, r.metric, r.value, r.notes) == (
            src["workload"], src["shape"], src["metric"], src["value"], src["notes"])


def test_every_row_is_mapped_or_excluded_with_a_reason() -> None:
    rows = load_traces()
    assert sorted(r.row for r in rows) == list(range(TABLE_ROWS))
    assert len({r.id for r in rows}) == len(rows)
    for r in rows:
        assert r.units and r.source_method, r.id
        if r.mapped:
            assert r.target in TARGETS, r.id
            assert r.family in workloads.FAMILIES or r.family in ("roofline", "power"), r.id
            if r.family == "power":
                assert r.params["workload"] in workloads.FAMILIES, r.id
            assert r.method in METHODS and r.quantity in QUANTITIES, r.id
            assert r.measured is not None and r.measured > 0 and r.conversion, r.id
            assert r.reason is None
        else:
            assert r.status == "excluded", r.id
            assert r.reason in REASONS and r.why and r.why.startswith(REASONS[r.reason]), r.id
            assert r.family is None and r.measured is None, r.id


def test_restated_rows_point_at_a_mapped_row_of_the_same_run() -> None:
    rows = {r.id: r for r in load_traces()}
    for r in rows.values():
        if r.restates:
            first = rows[r.restates]
            assert first.mapped and first.family == r.family and first.params == r.params
            assert first.section.split(" :: ")[0] == r.section.split(" :: ")[0]


def test_every_mapped_workload_builds() -> None:
    for r in load_traces():
        if not r.mapped or r.family == "roofline":
            continue
        p = dict(r.params)
        family = p.pop("workload") if r.family == "power" else r.family
        if family == "ocg_passes":
            p = {"c": p["c_from"], "h": p["h"], "w": p["w"], "depth": p["depths"][0]}
        elif "depths" in p:
            p["depth"] = p.pop("depths")[0]
        for q in expand(family, p) if ("sizes" in p or "configs" in p) else [p]:
            graph = workloads.family(family).build(q)
            assert graph.outputs, r.id


def test_at_most_a_quarter_of_rows_are_excluded() -> None:
    rows = load_traces()
    assert sum(not r.mapped for r in rows) <= len(rows) / 4


def test_exclusion_breakdown_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "validation.md").read_text(encoding="utf-8")
    counts = Counter(r.reason for r in load_traces() if not r.mapped)
    for reason, n in counts.items():
        assert f"`{reason}`" in doc, f"docs/validation.md does not explain exclusion reason {reason}"
