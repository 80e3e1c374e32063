"""``assert_on_ane``: fail a test when too much of a model leaves the Neural Engine."""

from __future__ import annotations

from pathlib import Path

from anesim.check.report import ChipCheck, check_graph
from anesim.compiler.graph.graph import Graph


def _table(rows: list) -> str:
    return "\n".join(f"  {r.name} ({r.op}): {r.placement}, rule '{r.rule}': {r.reason} [{r.citation}]" for r in rows)


def assert_on_ane(model: Graph | str | Path, chip: str = "m1", min_engine_fraction: float = 1.0,
                  *, by: str = "macs") -> ChipCheck:
    """Check ``model`` on ``chip``; raise AssertionError listing the host layers when too little runs on the engine.

    ``by`` is "macs" (share of multiply-accumulates on the engine) or "time" (share of the
    predicted latency). Returns the report when the assertion holds.
    """
    from anesim.check.load import load_for_check

    graph = model if isinstance(model, Graph) else load_for_check(model)[0]
    report = check_graph(graph, chip)
    fraction = report.engine_mac_fraction if by == "macs" else report.engine_time_fraction
    host = report.host_layers()
    if fraction < min_engine_fraction or (min_engine_fraction >= 1.0 and host):
        raise AssertionError(
            f"{report.model} on {report.chip}: {fraction:.1%} of the {'MACs' if by == 'macs' else 'predicted time'} "
            f"on the engine (required {min_engine_fraction:.1%}); layers that left the engine:\n{_table(host)}")
    return report
