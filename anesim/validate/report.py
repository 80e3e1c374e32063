"""Validation report: accuracy tables (Markdown, CSV, JSON) and plots (matplotlib)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anesim.chips.schema import ChipConfig
from anesim.validate import workloads
from anesim.validate.runner import ChipValidation, chip_families, to_json
from anesim.validate.stats import LATENCY_QUANTITIES, Point
from anesim.validate.traces import TraceRow

_MARKERS = "osD^v<>pPX*hH8"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _styles(families: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """A (colour, marker) pair per family, fixed by name order so every panel agrees."""
    cmap = _plt().get_cmap("tab10")
    return {f: (cmap(i % 10), _MARKERS[i % len(_MARKERS)]) for i, f in enumerate(sorted(families))}


def fmt(x: float | None, digits: int = 1) -> str:
    """A number for a table cell; '-' when absent."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


# ----------------------------------------------------------------------------- tables


def summary_rows(results: dict[str, ChipValidation]) -> list[list[str]]:
    """One row per chip and family (family '(all)' first): n, median, mean, max, r."""
    out = []
    families = chip_families(results)
    for name, s in families.items():
        if len([n for n in results if n.split()[0] + " family" == name]) > 1:
            out.append([name, "(all)", str(s["n_points"]), str(s["n_excluded"]), fmt(s["median_abs_pct_error"]),
                        fmt(s["mean_abs_pct_error"]), fmt(s["max_abs_pct_error"]), fmt(s["log_pearson_r"], 3)])
    for name, v in results.items():
        s = v.summary()
        out.append([name, "(all)", str(s["n_points"]), str(s["n_excluded"]), fmt(s["median_abs_pct_error"]),
                    fmt(s["mean_abs_pct_error"]), fmt(s["max_abs_pct_error"]), fmt(s["log_pearson_r"], 3)])
        for fam, f in s["families"].items():
            out.append([name, fam, str(f["n_points"]), "", fmt(f["median_abs_pct_error"]),
                        fmt(f["mean_abs_pct_error"]), fmt(f["max_abs_pct_error"]), fmt(f["log_pearson_r"], 3)])
    return out


SUMMARY_HEADERS = ["chip", "family", "points", "excluded", "median |err| %", "mean |err| %",
                   "max |err| %", "log r"]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def point_rows(points: Sequence[Point]) -> list[list[str]]:
    """One row per point: id, family, method, metric, measured and simulated value, error."""
    return [[p.id, p.family, p.method, p.metric, f"{p.measured:.4g}", f"{p.simulated:.4g}",
             fmt(p.error_pct)] for p in points]


POINT_HEADERS = ["id", "family", "method", "metric", "measured (SI)", "simulated (SI)", "error %"]


def write_tables(results: dict[str, ChipValidation], out: Path, rows: Sequence[TraceRow] | None = None,
                 measurements: str | None = None) -> None:
    """accuracy.md, validation.json and one points CSV per chip."""
    md = ["# Validation accuracy\n", markdown_table(SUMMARY_HEADERS, summary_rows(results))]
    for name, v in results.items():
        if v.failures:
            md.append(f"\n{name}: {len(v.failures)} mapped rows could not be simulated:\n")
            md += [f"- {rid}: {msg}\n" for rid, msg in v.failures]
    (out / "accuracy.md").write_text("".join(md), encoding="utf-8")
    (out / "validation.json").write_text(json.dumps(to_json(results, rows, measurements), indent=1) + "\n", encoding="utf-8")
    for name, v in results.items():
        slug = name.lower().replace(" ", "-")
        with (out / f"points-{slug}.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "family", "method", "quantity", "metric", "value", "measured", "simulated",
                        "measured_latency_s", "simulated_latency_s", "error_pct", "workload", "shape"])
            for p in v.points:
                w.writerow([p.id, p.family, p.method, p.quantity, p.metric, p.value, p.measured, p.simulated,
                            p.measured_latency_s, p.simulated_latency_s, p.error_pct, p.workload, p.shape])


# ------------------------------------------------------------------------------ plots


def _identity(ax: Any, lo: float, hi: float) -> None:
    """The y = x line, the ±10 % band around it, and square limits [lo, hi]."""
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    for f in (0.9, 1.1):
        ax.plot([lo, hi], [lo * f, hi * f], color="gray", lw=0.6, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)


def scatter_plot(results: dict[str, ChipValidation], path: Path) -> None:
    """Measured against simulated latency on log axes, one panel per chip, colour by family."""
    plt = _plt()
    names = list(results)
    cols = min(2, len(names)) or 1
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 5.6 * rows), squeeze=False)
    style = _styles(sorted({p.family for v in results.values() for p in v.points}))
    for ax, name in zip(axes.flat, names):
        v = results[name]
        pts = [p for p in v.points if p.quantity in LATENCY_QUANTITIES and p.measured_latency_s
               and p.simulated_latency_s]
        for fam in sorted({p.family for p in pts}):
            sel = [p for p in pts if p.family == fam]
            col, mark = style[fam]
            ax.scatter([p.measured_latency_s * 1e3 for p in sel], [p.simulated_latency_s * 1e3 for p in sel],
                       s=24, color=col, marker=mark, label=fam, edgecolors="black", linewidths=0.3)
        if pts:
            lo = min(min(p.measured_latency_s, p.simulated_latency_s) for p in pts) * 1e3 / 1.5
            hi = max(max(p.measured_latency_s, p.simulated_latency_s) for p in pts) * 1e3 * 1.5
            _identity(ax, lo, hi)
        s = v.summary()
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("simulated latency (ms)")
        ax.set_title(f"{name}: median |err| {fmt(s['median_abs_pct_error'])} %, log r {fmt(s['log_pearson_r'], 3)}",
                     fontsize=10)
        ax.grid(True, which="major", lw=0.3)
        ax.legend(fontsize=6.5, ncol=2, loc="upper left")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("anesim against measured M1/M5 traces (dashed: ±10 %)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def power_plot(results: dict[str, ChipValidation], path: Path) -> None:
    """Measured against simulated ANE-rail power, one marker per chip, colour by workload."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    pts = [(name, str((p.params or {}).get("workload", "?")), p)
           for name, v in results.items() for p in v.points if p.quantity == "power"]
    workloads_ = sorted({w for _, w, _ in pts})
    style = _styles(workloads_)
    marks = dict(zip(sorted(results), _MARKERS))
    for name in sorted(results):
        for w in workloads_:
            sel = [p for n, pw, p in pts if n == name and pw == w]
            if sel:
                ax.scatter([p.measured for p in sel], [p.simulated for p in sel], s=26, color=style[w][0],
                           marker=marks[name], edgecolors="black", linewidths=0.3)
    if pts:
        lo = min(min(p.measured, p.simulated) for _, _, p in pts) / 1.3
        hi = max(max(p.measured, p.simulated) for _, _, p in pts) * 1.3
        _identity(ax, lo, hi)
    for w in workloads_:
        ax.scatter([], [], s=26, color=style[w][0], label=w)
    for name in sorted(results):
        ax.scatter([], [], s=26, color="white", edgecolors="black", marker=marks[name], label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured ANE-rail power (W, powermetrics)")
    ax.set_ylabel("simulated power (W)")
    ax.set_title("energy model against measured power (dashed: ±10 %)", fontsize=10)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def roofline_points(points: Sequence[Point]) -> list[tuple[Point, float, float, float]]:
    """(point, FLOP/byte, measured FLOP/s, simulated FLOP/s) for points with a FLOP count."""
    out = []
    for p in points:
        if not (p.params and p.measured_latency_s and p.simulated_latency_s):
            continue
        fb = workloads.intensity(p.family, dict(p.params))
        if not fb or fb[0] <= 0 or fb[1] <= 0:
            continue
        flops, nbytes = fb
        out.append((p, flops / nbytes, flops / p.measured_latency_s, flops / p.simulated_latency_s))
    return out


def roofline_plot(chip: ChipConfig, points: Sequence[Point], path: Path, title: str | None = None) -> None:
    """The chip's roofs (peak fp16, activation and weight DRAM streams) with measured and simulated points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.6, 5.6))
    peak = chip.peak_fp16_flops_per_s
    roofs = [("activation stream", chip.dram.activation_bytes_per_s.value, "tab:red"),
             ("weight stream", chip.dram.weight_bytes_per_s.value, "tab:blue"),
             ("DRAM peak", chip.dram.peak_bytes_per_s.value, "tab:gray")]
    xs = [10 ** (i / 20) for i in range(-40, 101)]  # 0.01 .. 1e5 FLOP/B
    for label, bw, col in roofs:
        ax.plot(xs, [min(peak, bw * x) for x in xs], color=col, lw=1.2,
                label=f"{label} {bw / 1e9:.1f} GB/s, ridge {peak / bw:.0f} FLOP/B")
    ax.axhline(peak, color="black", lw=0.6, ls=":")
    ax.text(xs[0] * 1.2, peak * 1.08, f"peak fp16 {peak / 1e12:.2f} TFLOP/s (config)", fontsize=8)
    placed = roofline_points(points)
    style = _styles(sorted({p.family for p, *_ in placed}))
    for fam, (c, mark) in style.items():
        sel = [t for t in placed if t[0].family == fam]
        for _, ai, meas, sim in sel:
            ax.plot([ai, ai], [meas, sim], color=c, lw=0.6, alpha=0.7)
        ax.scatter([t[1] for t in sel], [t[2] for t in sel], s=30, marker=mark, facecolors="none",
                   edgecolors=[c], linewidths=1.1, label=fam)
        ax.scatter([t[1] for t in sel], [t[3] for t in sel], s=30, marker=mark, color=c,
                   edgecolors="black", linewidths=0.3)
    ax.scatter([], [], s=30, facecolors="none", edgecolors="black", label="measured: hollow")
    ax.scatter([], [], s=30, color="black", label="simulated: filled")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ymin = min([peak / 1e6] + [min(m, s) / 2 for _, _, m, s in placed])
    ax.set_ylim(ymin, peak * 3)
    ax.set_xlabel("arithmetic intensity (FLOP per DRAM byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(title or f"{chip.name} roofline: measured and simulated", fontsize=10)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=6.5, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_report(results: dict[str, ChipValidation], chips: dict[str, ChipConfig], out: Path,
                 rows: Sequence[TraceRow] | None = None, measurements: str | None = None) -> list[Path]:
    """Tables and plots for every chip validated; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    write_tables(results, out, rows, measurements)
    files = [out / "accuracy.md", out / "validation.json"]
    scatter_plot(results, out / "measured-vs-simulated.png")
    files.append(out / "measured-vs-simulated.png")
    if any(p.quantity == "power" for v in results.values() for p in v.points):
        power_plot(results, out / "power-measured-vs-simulated.png")
        files.append(out / "power-measured-vs-simulated.png")
    for name, v in results.items():
        path = out / f"roofline-{name.lower().replace(' ', '-')}.png"
        roofline_plot(chips[name], v.points, path)
        files.append(path)
    return files
