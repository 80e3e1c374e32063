"""A figure of a check report: engine segments, host work and cut transfers along the predicted time."""

from __future__ import annotations

from pathlib import Path

from anesim.check.report import ChipCheck


def plot_segments(report: ChipCheck, path: str | Path) -> None:
    """Write a PNG: one bar per segment (engine), per cut (host compute, transfer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engine_each = report.engine_s / max(report.segments, 1)
    fig, ax = plt.subplots(figsize=(9, 2.2))
    t = 0.0
    cuts = {c.after_segment: c for c in report.cuts}
    for seg in range(report.segments):
        ax.barh(0, engine_each * 1e3, left=t * 1e3, color="#3b7dd8", edgecolor="white")
        ax.text((t + engine_each / 2) * 1e3, 0, f"seg {seg}", ha="center", va="center", color="white", fontsize=8)
        t += engine_each
        cut = cuts.get(seg)
        if cut is not None:
            ax.barh(0, cut.transfer_s * 1e3, left=t * 1e3, color="#999999")
            t += cut.transfer_s
            ax.barh(0, cut.host_compute_s * 1e3, left=t * 1e3, color="#e07b39")
            t += cut.host_compute_s
    ax.set_yticks([])
    ax.set_xlabel("predicted time (ms): blue engine segments, grey cut transfers, orange host work")
    ax.set_title(f"{report.model} on {report.chip}: {report.segments} segments, "
                 f"{report.engine_mac_fraction:.0%} of MACs on the engine")
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
