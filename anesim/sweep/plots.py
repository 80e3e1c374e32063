"""The sweep's figures: latency by chip, a roofline with every point, scaling curves."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r.get("error")]


def plain_log_axis(axis: Any) -> None:
    """Label a log axis with plain numbers (1.4, 20, 0.5), not as powers of ten (1.4 x 10^0);
    the in-between ticks are labelled only where the axis spans less than about two decades."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def latency_by_chip(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: one group per chip, one bar per program (log scale); swept points take their best."""
    plt = _pyplot()
    rows = _ok(rows)
    chips = list(dict.fromkeys(r["chip"] for r in rows))
    programs = list(dict.fromkeys(r["program"] for r in rows))
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["chip"], r["program"])
        if key not in best or r["latency_s"] < best[key]["latency_s"]:
            best[key] = r
    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.45 * len(chips) + 3)), 5))
    width = 0.8 / max(len(programs), 1)
    x = np.arange(len(chips))
    for i, prog in enumerate(programs):
        at = x + i * width - 0.4 + width / 2
        found = [best.get((c, prog)) for c in chips]
        ys = [r["latency_s"] * 1e3 if r else np.nan for r in found]
        ax.bar(at, ys, width, label=prog)
        # a chip without calibration rows: its 80 % range as a whisker
        ranged = [(a, r) for a, r in zip(at, found) if r and r.get("latency_low_s") is not None]
        if ranged:
            mid = np.array([r["latency_s"] for _, r in ranged]) * 1e3
            low = mid - np.array([r["latency_low_s"] for _, r in ranged]) * 1e3
            high = np.array([r["latency_high_s"] for _, r in ranged]) * 1e3 - mid
            ax.errorbar([a for a, _ in ranged], mid, yerr=[low, high], fmt="none", ecolor="#333", capsize=2,
                        linewidth=0.8)
    ax.set_xticks(x, chips, rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_ylabel("predicted latency (ms)")
    swept = len(best) < len(rows)  # (a program swept over parameters or overrides: its fastest point)
    ax.set_title("Latency by chip, predicted by anesim\n(whiskers: the 80 % range on chips without calibration rows"
                 + (";\na program swept over parameters or chip settings: its fastest point)" if swept else ")"), fontsize=9)
    # beside the axes, not over them: with many programs the legend would hide the last chips' bars
    if ax.get_legend_handles_labels()[0]:  # (every point failed: nothing to label)
        ax.legend(fontsize=7, ncol=1 if len(programs) <= 14 else 2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def roofline(rows: list[dict[str, Any]], path: Path) -> None:
    """Achieved FLOP/s against arithmetic intensity for every point, over each chip's two ceilings."""
    plt = _pyplot()
    everything = _ok(rows)
    rows = [r for r in everything if r["flops"] > 0 and r["dram_bytes"] > 0]
    left_out = len(everything) - len(rows)  # no MACs (pure elementwise) or no DRAM traffic: off a log axis
    fig, ax = plt.subplots(figsize=(8, 5.5))
    chips = list(dict.fromkeys(r["chip"] for r in rows))
    colours = plt.get_cmap("turbo")(np.linspace(0.05, 0.95, max(len(chips), 1)))
    markers = "osD^v<>"
    xs = np.array([r["intensity_flop_per_byte"] for r in rows]) if rows else np.array([1.0])
    span = np.logspace(np.log10(max(xs.min() / 4, 1e-3)), np.log10(xs.max() * 4), 100)
    seen = set()
    for r in rows:
        c = colours[chips.index(r["chip"])]
        ax.scatter(r["intensity_flop_per_byte"], r["flops_per_s"], color=c, s=16,
                   marker=markers[chips.index(r["chip"]) % len(markers)],
                   label=r["chip"] if r["chip"] not in seen else None)
        ceiling = (r["chip"], r["peak_flops_per_s"], r["dram_peak_bytes_per_s"])
        if ceiling not in seen:
            ax.plot(span, np.minimum(r["peak_flops_per_s"], span * r["dram_peak_bytes_per_s"]), color=c,
                    lw=0.7, alpha=0.5)
            seen.add(ceiling)
        seen.add(r["chip"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per DRAM byte)")
    ax.set_ylabel("achieved FLOP/s over the call")
    note = f"; {left_out} without MACs or DRAM traffic not shown" if left_out else ""
    ax.set_title(f"Roofline: {len(rows)} points (lines: each chip's ceilings{note})", fontsize=10)
    if chips:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scaling(rows: list[dict[str, Any]], swept: list[str], path: Path) -> None:
    """Latency against each swept key, one line per program and chip; with nothing swept, latency
    against the chips' peak FLOP/s, one line per program (how each program scales across chips)."""
    rows = _ok(rows)
    keys = [k for k in swept if len({r.get(k) for r in rows}) > 1] or ["peak_flops_per_s"]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        across_chips = key == "peak_flops_per_s"
        group = ["program"] + ([] if across_chips else ["chip"]) + [k for k in swept if k != key]
        lines: dict[tuple[Any, ...], list[tuple[Any, float]]] = defaultdict(list)
        for r in rows:
            lines[tuple(r.get(k) for k in group)].append((r[key], r["latency_s"]))
        for label, pts in sorted(lines.items(), key=lambda kv: str(kv[0])):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], marker="o", ms=3, lw=0 if across_chips else 1,
                    label=" / ".join(str(v) for v in label))
        ax.set_xlabel("chip peak fp16 FLOP/s" if across_chips else key)
        ax.set_ylabel("predicted latency (ms)")
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        if across_chips:
            ax.set_xscale("log")
        ax.set_title("Scaling across chips" if across_chips else f"Scaling with {key}")
        if len(lines) <= 12 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_figures(rows: list[dict[str, Any]], swept: list[str], out: Path) -> list[Path]:
    """All figures of a sweep under ``out``; returns the paths written."""
    written = [out / "latency_by_chip.png", out / "roofline.png", out / "scaling.png"]
    latency_by_chip(rows, written[0])
    roofline(rows, written[1])
    scaling(rows, swept, written[2])
    return written
