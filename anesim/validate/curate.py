"""Build ``validation/m1.yaml`` and ``validation/m5.yaml`` from the shared measurement table.

Run ``python -m anesim.validate.curate [--shared DIR] [--out DIR] [--check]``. The output is
a pure function of ``measurements/m1-m5-calibration.csv``: every row is attributed to a chip,
then either mapped to a workload family, parameters and measurement method, or excluded with
a reason. The rules are below, in the order they apply; docs/validation.md explains them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from anesim.validate.traces import SCHEMA, TRACE_FILES

CSV_NAME = "measurements/m1-m5-calibration.csv"

ANEFORGE = "github.com/sbryngelson/ANEForge"
GUIDE = "github.com/sbryngelson/ane-guide"
MADERIX = "github.com/maderix/ANE"

# ---------------------------------------------------------------------------- reasons

REASONS: dict[str, str] = {
    "power": "power figure without a workload anesim can rebuild (an unstated shape, a "
    "package rail that includes the CPU and DRAM, or an 'under 2.3 W' bound); anesim models the "
    "ANE rail of a workload it simulates",
    "numerics": "numerical-behaviour probe (fp16 overflow cliff or relative error); the "
    "functional engine's tests cover numerics, the timing validation does not",
    "compile_time": "compile or load time of the host toolchain; anesim times dispatch and "
    "execution of an already loaded program",
    "cold_start": "first call after load or after an idle gap (program load, power-state "
    "wake-up); anesim models a loaded, awake engine",
    "vendor_claim": "marketing figure (int8 TOPS or 'core' count) compiled by a third party, "
    "not a measurement of latency",
    "architecture_constant": "architecture or compiler constant (decompiled, estimated or "
    "guessed); it can set a chip parameter but is not a timing to validate against",
    "config_input": "a measured value the chip config takes as an input parameter (dispatch "
    "stage, working-set cap, memory-controller ceiling); comparing it with the simulation "
    "would compare the value with itself",
    "other_model": "a parameter or error statistic of another cost model, not a measurement "
    "of the engine",
    "coreml_pipeline": "end-to-end Core ML pipeline (planner, CPU/GPU segments, host pre- and "
    "post-processing) whose graph and byte counts the source does not give",
    "training_step": "training-step time that includes CPU work, or ANE time summed over a "
    "training step's 60-72 kernels whose graphs the source does not give",
    "hybrid_pipeline": "decoder served as a CPU/GPU/ANE hybrid or compared with the GPU; "
    "anesim models the ANE alone",
    "ambiguous_chip": "the chip cannot be attributed (a label the source itself contradicts, "
    "or '2021 MacBook Pro M1', which shipped only as M1 Pro or M1 Max)",
    "anomalous_run": "MacBookPro17,1 run whose streaming peak reads 0.86 GB/s (the ~1 GB/s "
    "anomaly: the ANE rail shows the op did not run as an ANE stream); its GEMM peak, 2.7 "
    "TFLOP/s against 4.3 on the MacBook Air's M1, comes from the same suspect run",
    "shape_unstated": "the source does not state the shape (or the part of it the value "
    "depends on), so the workload cannot be rebuilt",
    "contradicted": "contradicted by ANEForge's per-size measurements of the same chip; the "
    "measurements README asks to prefer the ANEForge JSON where the two overlap",
    "multi_stream": "two concurrent submitting threads; anesim simulates one command stream",
    "derived": "arithmetic on two other figures of the same source, not a measurement",
}

# ------------------------------------------------------------------ chip attribution

# ane-guide parts by the appendix f-provenance statement of the machine each was measured on.
_GUIDE_PART_CHIP = {
    "part-1": ("M1", "Part I 'measured on M1/H13 (Apple M1)'"),
    "part-2": ("M1", "Part II 'measured on M1/H13 (Apple M1)'"),
    "part-3": ("M1", "Part III 'M1/H13 (Apple M1; M1 Max)': the primary host, Apple M1; the "
               "M1 Max power sampler rows are labelled M1 Max in the table"),
    "part-4": ("M1 Max", "Part IV 'measured on M1/H13 (Apple M1 Max)'"),
    "part-5": ("M1", "Part V 'measured on M1/H13 (Apple M1)'"),
    "part-6": ("M1 Max", "Part VI 'Apple M1; M1 Max, live architecture string h13g', and h13g "
               "is the M1 Max (measurements README caveat 2)"),
    "part-8": ("M1 Max", "Part VIII rests on the same h13g host as Part VI"),
}


def attribute(row: dict[str, str]) -> tuple[str | None, str | None]:
    """The chip config a row is validated against, and a note when the label needed reading."""
    label = row["chip"]
    if label.startswith("M1 (guide"):
        part = "-".join(row["source_path_or_section"].split("-")[:2])
        chip, why = _GUIDE_PART_CHIP[part]
        return chip, f"ane-guide appendix f-provenance: {why}"
    if label.startswith("M5 Pro (guide"):
        return "M5 Pro", "the guide's 'M5/H17s' host is an M5 Pro, Mac17,8 (measurements README caveat 1)"
    if label == "M5 Pro (inferred)":
        return "M5 Pro", ("file names no chip; its numbers match the M5 Pro GEMV sweep and the guide's "
                          "M5/H17s claims (measurements README caveat 3)")
    if label.startswith("M1 (2021 MacBook Pro"):
        return None, "2021 MacBook Pros shipped with an M1 Pro or M1 Max (measurements README caveat 4)"
    return label, None


def family_file(row: dict[str, str]) -> str:
    """The trace file a row belongs to: m1.yaml or m5.yaml."""
    return "m5.yaml" if row["chip"].startswith("M5") else "m1.yaml"


# ------------------------------------------------------------------------ units

_UNITS = {
    "latency_ms": "ms", "latency_us": "us", "latency_us_p50": "us", "latency_us_per_layer": "us",
    "latency_per_step_ms": "ms", "ms_per_token": "ms", "ms_per_step": "ms",
    "end_to_end_latency_s": "s", "eval_avg10_ms": "ms", "eval_first_ms": "ms",
    "compile_ms": "ms", "compile_plus_load_ms": "ms",
    "gflops": "GFLOP/s", "gflops_sustained": "GFLOP/s", "tflops": "TFLOP/s",
    "gflops_matmul_roof": "GFLOP/s", "gflops_conv_roof": "GFLOP/s", "tops": "TOPS",
    "GMAC_per_s": "GMAC/s", "TMAC_per_s": "TMAC/s", "tops_per_core": "TOPS",
    "GB/s": "GB/s", "GB/s_max": "GB/s", "GB/s_tail_median": "GB/s", "GB/s_standalone": "GB/s",
    "ane_power_mW": "mW", "ane_power_W": "W", "package_W": "W", "gflops_per_W": "GFLOP/s/W",
    "gflops_per_W_pkg": "GFLOP/s/W", "pJ_per_flop": "pJ/FLOP",
    "tokens_per_s": "token/s", "diffusion_iter_per_s": "iter/s",
    "ridge_flop_per_byte": "FLOP/B", "flop_per_byte": "FLOP/B", "pct_of_roof": "%",
    "speedup_x": "x", "slowdown_x": "x", "gpu_speedup_x": "x", "relerr": "1",
    "median_abs_error_pct": "%", "MB": "MB", "L2_MB": "MB", "tile_L2_MB": "MB",
    "kernel_L2_KB": "KB", "dram_MB_per_dispatch": "MB", "GHz": "GHz", "clock_MHz": "MHz",
    "cores": "cores", "ne_cores": "cores", "madd_per_cycle": "MAC/cycle", "cycles": "cycles",
    "channels_per_cycle": "channels/cycle", "banks": "banks", "count": "count",
    "inf_cliff_abs_value": "fp16 value",
}


def units_of(metric: str) -> str:
    """The unit a metric's value is printed in."""
    return _UNITS.get(metric, "1")


# ------------------------------------------------------------------ source methods


def source_method(row: dict[str, str]) -> str:
    """How the source measured the row, in one line."""
    src, sec, metric, notes = row["source_repo_or_url"], row["source_path_or_section"], row["metric"], row["notes"]
    if src.startswith(ANEFORGE):
        if "compress_speedup_bench" in sec:
            return "ANEForge bench/compress_speedup_bench.py: median per-call latency of 5 blocks x 200 calls after 30 warm-ups"
        if "gemv_bandwidth_sweep" in sec:
            return ("ANEForge bench/gemv_bandwidth_sweep.py: min latency over 40 calls after 12 warm-ups; "
                    "GB/s = (K*N + K + N) * 2 B / latency")
        if "ROOFLINES.md" in sec:
            return "ANEForge ROOFLINES.md aggregate of one machine's roofline run (peaks over its sweeps)"
        if metric.startswith("ane_power") or metric == "gflops_per_W":
            return "ANEForge: powermetrics ANE rail sampled during a sustained loop (indicative)"
        if metric == "gflops_sustained":
            return "ANEForge sustained loop during the powermetrics window: FLOPs / mean iteration time"
        if "device_saturation_sweep" in sec:
            return "ANEForge bench/device_saturation_sweep.py: min latency over 8 calls after 3 warm-ups; FLOPs = 2 per MAC"
        if "device_bandwidth_roofline" in sec:
            return ("ANEForge bench/device_bandwidth_roofline.py: min latency over 20 calls after 6 warm-ups; "
                    "GB/s = bytes the op must move / latency")
        if "decode_measurement" in sec:
            return ("ANEForge bench/decode_measurement.py: min latency of one decode step, the whole per-token "
                    "stack compiled as one program")
        if "roofline_analysis" in sec:
            return "ANEForge bench/roofline_analysis.py: min latency over 20 calls after 5 warm-ups (or a ratio of ceilings)"
        return "ANEForge direct private-API path"
    if src.startswith(GUIDE):
        chapter = sec.split("/")[1].split(".md")[0] if "/" in sec else sec
        return f"ane-guide {chapter}: private Espresso/e5rt path, wall clock, slope, counters or decompilation as the row says"
    if src.startswith(MADERIX):
        if "inmem_peak" in sec or "Peak ANE" in sec:
            return "maderix inmem_peak.m: mean of 50 back-to-back evaluations after 10 warm-ups (_ANEInMemoryModel)"
        if "m5result" in sec:
            return "maderix training/m5result.md: _ANEInMemoryModel evaluations (avg10 = mean of 10; first = first after load)"
        if "neural_engine_specs" in sec:
            return "maderix community_results.json: vendor figures as listed"
        return "maderix: community-submitted training benchmark (end-to-end step times)"
    if "anemll" in src.lower():
        return "ANEMLL-Bench: Core ML .mlpackage on the ANE; GB/s = weight bytes / inference time"
    if "ml-stable-diffusion" in src:
        return "Apple ml-stable-diffusion: Core ML end-to-end pipeline, median of 5 (or 3) runs"
    if "more-ane-transformers" in src:
        return "more-ane-transformers: Core ML CPUAndANE, average time per generated token"
    if "hollance" in src:
        return "hollance/neural-engine: Apple marketing figures compiled by a third party"
    return "reverse-engineering estimate (" + notes[:60] + ")"


# --------------------------------------------------------------------- machines

# ANEForge machine -> (chip, GEMM sizes, conv (C, batch) configs, stream row counts at 4096 columns).
_QUICK_STREAM = [256, 2048, 8192]
_FULL_STREAM = [64, 256, 1024, 2048, 4096, 8192, 16384]
_QUICK_CONV = [[64, 8], [128, 8], [256, 4], [512, 2]]
_FULL_CONV = [[64, 16], [128, 16], [256, 8], [512, 4]]
# The M1, M1 Max and M5 runs used the sweep's --quick sizes; the M5 Pro run used the full sweep.
_QUICK = ([512, 1024, 2048, 4096], _QUICK_CONV, _QUICK_STREAM)
_FULL = ([512, 1024, 2048, 4096, 6144, 8192], _FULL_CONV, _FULL_STREAM)
_MACHINES = {"MacBookAir10": _QUICK, "MacBookPro18": _QUICK, "Mac17,3": _QUICK, "Mac17_3": _QUICK,
             "Mac17,8": _FULL, "Mac17_8": _FULL}


def machine(row: dict[str, str]) -> tuple[list[int], list[list[int]], list[int]]:
    """GEMM sizes, conv configs and stream sizes of the ANEForge machine a row came from."""
    text = row["source_path_or_section"] + " " + row["notes"]
    for key, value in _MACHINES.items():
        if key in text:
            return value
    raise KeyError(f"unknown ANEForge machine in {text[:120]!r}")


# ---------------------------------------------------------------------- parsing


def _num(text: str) -> float:
    """The first number in a value string such as '0.48', '~1.14' or '26ms*'."""
    m = re.search(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)
    if not m:
        raise ValueError(f"no number in {text!r}")
    return float(m.group(0))


def _ints(pattern: str, text: str) -> list[int]:
    m = re.search(pattern, text)
    if not m:
        raise ValueError(f"{pattern!r} not in {text!r}")
    return [int(g) for g in m.groups()]


def _stream_shape(shape: str) -> tuple[int, int]:
    rows, cols = _ints(r"(\d+)x(\d+) fp16", shape)
    return rows, cols


# Multipliers that turn a metric's printed value into the SI value of its quantity.
_SI = {
    "latency_ms": ("latency", 1e-3), "latency_us": ("latency", 1e-6), "latency_us_p50": ("latency", 1e-6),
    "latency_per_step_ms": ("latency", 1e-3), "eval_avg10_ms": ("latency", 1e-3),
    "gflops": ("flop_rate", 1e9), "gflops_sustained": ("flop_rate", 1e9), "tflops": ("flop_rate", 1e12),
    "gflops_matmul_roof": ("flop_rate", 1e9), "gflops_conv_roof": ("flop_rate", 1e9),
    "GB/s": ("byte_rate", 1e9), "GB/s_max": ("byte_rate", 1e9), "GB/s_tail_median": ("byte_rate", 1e9),
    "GB/s_standalone": ("byte_rate", 1e9), "tokens_per_s": ("token_rate", 1.0),
    "ridge_flop_per_byte": ("ratio", 1.0), "speedup_x": ("ratio", 1.0),
    "dram_MB_per_dispatch": ("bytes", 1e6),
    "ane_power_mW": ("power", 1e-3), "ane_power_W": ("power", 1.0),
}


def si_value(metric: str, value: str) -> tuple[str, float]:
    """The quantity a metric measures and its value in SI units."""
    quantity, scale = _SI[metric]
    return quantity, _num(value) * scale


# ------------------------------------------------------------------------ rules

Rule = Callable[[dict[str, str], int], "dict[str, Any] | None"]


def _excluded(reason: str, detail: str = "") -> dict[str, Any]:
    why = REASONS[reason] + (f" ({detail})" if detail else "")
    return {"status": "excluded", "reason": reason, "why": why}


def _mapped(family: str, params: dict[str, Any], method: str, metric: str, value: str,
            conversion: str, **extra: Any) -> dict[str, Any]:
    quantity, measured = si_value(metric, value)
    out = {"status": "mapped", "family": family, "params": params, "method": method,
           "quantity": quantity, "measured": measured, "conversion": conversion}
    out.update(extra)
    return out


_POWER_METRICS = {"ane_power_mW", "ane_power_W", "package_W", "gflops_per_W", "gflops_per_W_pkg", "pJ_per_flop"}


# ANEForge samples powermetrics' ANE rail while the workload of the same run loops.
_MAPPED_POWER = {"ane_power_mW"}


def _power_row(row: dict[str, str]) -> bool:
    """Whether a power row names a workload: ANEForge's ANE rail, or a guide row a rule maps."""
    if row["source_repo_or_url"].startswith(GUIDE):
        return _guide_handler(row) is not None
    return row["source_repo_or_url"].startswith(ANEFORGE) and row["metric"] in _MAPPED_POWER


def _power_of(family: str, params: dict[str, Any], row: dict[str, str], note: str = "") -> dict[str, Any]:
    """A power row validated on a loop of ``family``'s workload with ``params``."""
    return _mapped("power", {"workload": family, **params}, "sustained_power", row["metric"], row["value"],
                   "mean ANE-rail power over a back-to-back loop of the workload: energy per call "
                   "(engine_w * latency + mac_energy_j * MACs + dram_byte_energy_j * DRAM bytes) / "
                   "latency" + (f"; {note}" if note else ""))


def _as_power(base: dict[str, Any] | None, row: dict[str, str]) -> dict[str, Any] | None:
    """A power row mapped onto the workload its run's latency row maps to."""
    if base is None or base.get("status") != "mapped":
        return base
    return _power_of(base["family"], base["params"], row)


def rule_generic_exclusions(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """Exclusions that follow from the metric, the source or the provenance alone."""
    src, metric, workload = row["source_repo_or_url"], row["metric"], row["workload"]
    if metric == "gflops_per_W" and src.startswith(ANEFORGE):
        return _excluded("derived", "ROOFLINES.md's GFLOP/s per watt headline states no definition, and no "
                         "ratio of its run's per-size GEMM rates and ANE-rail powers reproduces it (M1 "
                         "617-858 against 622, M1 Max 459-1305 against 897, M5 770-1731 against 1184, "
                         "M5 Pro 805-1314 against 918)")
    if metric in _POWER_METRICS and not _power_row(row):
        return _excluded("power")
    if metric in ("inf_cliff_abs_value", "relerr"):
        return _excluded("numerics")
    if metric in ("compile_ms", "compile_plus_load_ms"):
        return _excluded("compile_time")
    if metric == "eval_first_ms" or workload in ("warmup", "idle_rewake"):
        return _excluded("cold_start")
    if row["provenance"] == "vendor_claim" or workload == "rated_tops" or "hollance" in src:
        return _excluded("vendor_claim")
    if "ml-stable-diffusion" in src or "anemll" in src.lower():
        detail = ""
        if "anemll" in src.lower():
            detail = ("lm_head of unstated vocabulary; the printed GB/s and latency imply 409-458 MB of "
                      "weights across chips, so the byte count is not fixed")
        return _excluded("coreml_pipeline", detail)
    if "more-ane-transformers" in src:
        return _excluded("ambiguous_chip", "also an end-to-end Core ML decode; the author calls the "
                         "numbers 'not overly-rigorous'")
    if workload in ("training_step", "training_step_ane_only"):
        return _excluded("training_step")
    if metric == "flop_per_byte":
        return _excluded("derived", "ridge = 12 TFLOP/s slope / 85 GB/s counter ceiling")
    if workload in ("cost_model", "cost_model_validation") or (
        workload == "roofline_constant" and row["provenance"] == "estimated"
    ):
        return _excluded("other_model")
    if row["provenance"] == "estimated":
        return _excluded("architecture_constant")
    return None


def rule_aneforge_headline(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """ROOFLINES.md headline rows: peaks over the machine's sweeps."""
    sec, metric, notes = row["source_path_or_section"], row["metric"], row["notes"]
    if not (row["source_repo_or_url"].startswith(ANEFORGE) and "ROOFLINES.md" in sec):
        return None
    if "MacBookPro17,1" in notes:
        return _excluded("anomalous_run")
    gemm_sizes, _, stream_rows = machine(row)
    if row["workload"] == "roofline_headline" and metric == "tflops":
        return _mapped("gemm", {"sizes": gemm_sizes}, "peak_over_sizes", metric, row["value"],
                       "peak FLOP/s over square GEMMs N in sizes, FLOPs = 2*N^3; latency-equivalent at "
                       "the simulated best size = 2*N^3 / measured rate")
    if row["workload"] == "roofline_headline" and metric == "GB/s":
        return _mapped("elementwise", {"op": "relu", "cols": 4096, "sizes": stream_rows}, "peak_over_sizes",
                       metric, row["value"],
                       "peak GB/s over relu streams of rows x 4096 fp16, bytes = 2 * elements * 2 B")
    if metric == "ridge_flop_per_byte":
        return _mapped("roofline", {"gemm_sizes": gemm_sizes, "stream_rows": stream_rows, "cols": 4096},
                       "ridge", metric, row["value"],
                       "ridge = peak GEMM FLOP/s over the sweep / peak relu-stream B/s over the sweep")
    if row["workload"] == "llm_decode_toy" and metric == "tokens_per_s":
        return _mapped("decode_step", _toy_decoder(1, "fp16"), "single_dispatch", metric, row["value"],
                       "latency per step = batch / tokens per second")
    return None


def _toy_decoder(batch: int, weights: str) -> dict[str, Any]:
    return {"d_model": 1024, "n_layers": 4, "n_heads": 16, "d_ff": 4096, "vocab": 32000,
            "s_kv": 128, "batch": batch, "weights": weights}


def _decoder(shape: str) -> dict[str, Any]:
    d, layers, heads = _ints(r"d_model=(\d+) n_layers=(\d+) n_heads=(\d+)", shape)
    d_ff, vocab, s_kv = _ints(r"d_ff=(\d+) vocab=(\d+) s_kv=(\d+)", shape)
    (batch,) = _ints(r"batch (\d+)", shape)
    weights = "int8" if "int8 weights" in shape else "fp16"
    return {"d_model": d, "n_layers": layers, "n_heads": heads, "d_ff": d_ff, "vocab": vocab,
            "s_kv": s_kv, "batch": batch, "weights": weights}


def rule_aneforge_rooflines(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """Per-machine roofline JSON rows: GEMM, conv, streams, decode, attention, GEMV, ridge."""
    sec, metric, shape, work = row["source_path_or_section"], row["metric"], row["shape"], row["workload"]
    if not (row["source_repo_or_url"].startswith(ANEFORGE) and "rooflines/roofline-" in sec):
        return None
    if metric == "ane_power_mW":
        if row["workload"] in ("elementwise_stream", "gelu_stream", "reduce_sum", "softmax", "layer_norm"):
            rows, cols = _ints(r"(\d+)x(\d+)", shape)  # "relu/x*2 16384x4096 loop"
            shape = f"{rows}x{cols} fp16"
        return _as_power(rule_aneforge_rooflines({**row, "shape": shape, "metric": "latency_ms"}, i), row)
    gemm_sizes, conv_cfgs, stream_rows = machine(row)
    sustained = metric == "gflops_sustained"
    method = "sustained" if sustained else "single_dispatch"
    if work == "matmul":
        (n,) = _ints(r"M=K=N=(\d+)", shape)
        conv = "latency as measured" if metric == "latency_ms" else f"latency = 2*{n}^3 FLOP / rate"
        return _mapped("gemm", {"m": n, "k": n, "n": n}, method, metric, row["value"], conv)
    if work == "conv":
        c, h, w, b = _ints(r"Cin=Cout=(\d+); HxW=(\d+)x(\d+); batch (\d+)", shape)
        params = {"c": c, "h": h, "w": w, "batch": b, "kernel": 3, "padding": "same"}
        conv = ("latency as measured" if metric == "latency_ms"
                else f"latency = 2*{b}*{c}^2*9*{h}*{w} FLOP / rate (3x3 same padding)")
        return _mapped("conv3x3", params, method, metric, row["value"], conv)
    streams = {"elementwise_stream": ("elementwise", {"op": "relu"}, 2),
               "gelu_stream": ("elementwise", {"op": "gelu"}, 2),
               "reduce_sum": ("reduction", {"op": "sum"}, 1),
               "softmax": ("softmax", {}, 2), "layer_norm": ("layer_norm", {}, 2)}
    if work in streams and metric in ("GB/s", "latency_ms"):
        family, extra, factor = streams[work]
        if "peak over" in shape:
            params = dict(extra, cols=4096, sizes=stream_rows)
            return _mapped(family, params, "peak_over_sizes", metric, row["value"],
                           f"peak GB/s over rows x 4096 fp16, bytes = {factor} * elements * 2 B")
        rows, cols = _stream_shape(shape)
        params = dict(extra, rows=rows, cols=cols)
        conv = ("latency as measured" if metric == "latency_ms"
                else f"latency = {factor} * {rows * cols} elements * 2 B / rate")
        return _mapped(family, params, "single_dispatch", metric, row["value"], conv)
    if work in ("llm_decode_toy", "llm_decode"):
        params = _decoder(shape)
        conv = ("latency per step as measured" if metric == "latency_per_step_ms"
                else f"latency per step = batch {params['batch']} / tokens per second")
        return _mapped("decode_step", params, "single_dispatch", metric, row["value"], conv)
    if work == "attention_block":
        params = {"batch": 1, "heads": 12, "seq": 512, "d_head": 64}
        return _mapped("attention", params, "single_dispatch", metric, row["value"],
                       "latency = (4*H*S^2*D + 5*H*S^2) FLOP / rate (ANEForge attention_flops_bytes: "
                       "QK^T, AV and ~5 FLOP per softmax score)")
    if work == "gemv_decode":
        return _mapped("gemv", {"k": 4096, "n": 4096}, "single_dispatch", metric, row["value"],
                       "latency = 2*K*N FLOP / rate")
    if work == "roofline_summary" and metric == "ridge_flop_per_byte":
        return _mapped("roofline", {"gemm_sizes": gemm_sizes, "stream_rows": stream_rows, "cols": 4096},
                       "ridge", metric, row["value"],
                       "ridge = peak GEMM FLOP/s over the sweep / peak relu-stream B/s over the sweep")
    return None


def rule_aneforge_benches(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """compress_speedup_bench (weight formats) and gemv_bandwidth_sweep rows."""
    sec, metric, shape = row["source_path_or_section"], row["metric"], row["shape"]
    if not row["source_repo_or_url"].startswith(ANEFORGE):
        return None
    if "compress_speedup_bench" in sec:
        k, n, b = _ints(r"in=(\d+) out=(\d+) batch=(\d+)", shape)
        fmt = re.search(r"weights (\w+)", shape).group(1)
        params = {"m": b, "k": k, "n": n, "weights": fmt}
        if fmt == "sparse":
            params["sparsity"] = float(re.search(r"sparsity ([\d.]+)", row["notes"]).group(1))
        if fmt == "int4":
            params["palette_bits"] = 4
        return _mapped("linear_weights", params, "sustained", metric, row["value"],
                       "median per-call latency as measured")
    if "gemv_bandwidth_sweep" in sec:
        if metric == "ane_power_mW":
            return _as_power(rule_aneforge_benches({**row, "metric": "latency_ms"}, i), row)
        if metric == "GB/s_max":
            return _mapped("gemv", {"sizes": [512, 1024, 2048, 4096, 6144, 8192]}, "peak_over_sizes", metric,
                           row["value"], "peak (K*N + K + N) * 2 B / latency over square K = N in sizes")
        if metric == "GB/s_tail_median":
            return _mapped("gemv", {"sizes": [2048, 4096, 6144, 8192]}, "median_over_sizes", metric,
                           row["value"], "median (K*N + K + N) * 2 B / latency over square K = N >= 2048 "
                           "(gemv_bandwidth_sweep.py 'tail')")
        k, n = _ints(r"K=(\d+) N=(\d+)", shape)
        conv = ("latency as measured" if metric == "latency_ms"
                else f"latency = ({k}*{n} + {k} + {n}) * 2 B / rate")
        return _mapped("gemv", {"k": k, "n": n}, "single_dispatch", metric, row["value"], conv)
    return None


def rule_maderix(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """maderix inmem_peak chains and the M5 QoS sweep of a small 1x1 conv."""
    if not row["source_repo_or_url"].startswith(MADERIX):
        return None
    work, metric = row["workload"], row["metric"]
    if work == "conv1x1_chain" and "PR #50" in row["source_repo_or_url"]:
        return _excluded("shape_unstated", "PR #50 gives the headline only; '128x conv 512ch' is the "
                         "table's presumption, not the source's")
    if work == "conv1x1_chain_int8":
        return _excluded("shape_unstated", "W8A8 headline without the benchmark's shape")
    if work == "conv1x1_chain":
        d, c, s = _ints(r"(\d+)x chained 1x1 conv Cin=Cout=(\d+), spatial (\d+)", row["shape"])
        params = {"c": c, "h": 1, "w": s, "depth": d}
        return _mapped("conv1x1_chain", params, "sustained", metric, row["value"],
                       f"latency per call = 2*{c}^2*{s}*{d} FLOP / rate (inmem_peak.m: input [1,C,1,{s}])")
    if work == "conv1x1_small" and metric == "eval_avg10_ms":
        return _mapped("conv1x1", {"c_in": 256, "c_out": 256, "h": 1, "w": 64}, "sustained", "latency_ms",
                       row["value"], "mean latency of 10 evaluations as measured")
    return None


# ane-guide rows: (workload, shape prefix, metric) -> handler. Shapes the guide states are
# written out; where the guide gives only part of a shape, the note says what is assumed.
_MM_CHAIN_1MB = {"m": 4096, "k": 128, "n": 128, "depths": [32, 96]}
_MM_CHAIN_2MB = {"m": 8192, "k": 128, "n": 128, "depths": [32, 96]}
_CHAIN_NOTE = ("chain of [M x 128] @ [128 x 128] matmuls: ch.9's 96-layer probe moved 426 MB at 60 FLOP/B "
               "with a 2 MB activation, which fixes K = N = 128 and M = 8192; the 1 MB case is M = 4096")
_TINY_CONV = {"c": 8, "h": 16, "w": 16, "kernel": 3, "padding": "same", "relu": True, "reduce_mean": True}
_TINY_NOTE = ("ch.2's tiny graph (3x3 conv 8->8, pad 1, relu, mean); its spatial size is not given, 16x16 "
              "is assumed, which is far inside the dispatch-bound regime the row measures")


def _guide_power(workload: str, params: dict[str, Any], note: str) -> Callable[[dict[str, str]], dict[str, Any]]:
    return lambda r: _power_of(workload, params, r, note)


def _guide_rules() -> list[tuple[str, str, str, Callable[[dict[str, str]], dict[str, Any]]]]:
    m, x = _mapped, _excluded
    return [
        ("matmul_chain", "same", "ane_power_mW",
         _guide_power("matmul_chain", {"m": 1024, "k": 1024, "n": 1024, "depth": 8},
                      "ch.10: the 8x chained 1024^2 matmul loop of the row before, first third of the run")),
        ("single_call_loop", "single small call loop", "ane_power_mW",
         _guide_power("dispatch_floor", dict(_TINY_CONV, graph="tiny_conv"), _TINY_NOTE)),
        ("dispatch_floor_matmul", "dispatch-floor matmul", "ane_power_W",
         _guide_power("dispatch_floor", {"graph": "linear", "k": 64, "n": 64},
                      "a 64x64 linear layer stands for ch.10's 'dispatch-floor matrix multiply'")),
        ("matmul", "compute-bound 1024x4096 fp16 matmul", "ane_power_W",
         _guide_power("gemm", {"m": 1024, "k": 4096, "n": 4096},
                      "'a compute-bound 1024 by 4096 fp16 matrix multiply' read as [1024 x 4096] @ "
                      "[4096 x 4096] (assumed)")),
        ("roofline_constant", "overhead-isolated matmul slope", "tflops",
         lambda r: m("matmul_chain", _MM_CHAIN_1MB, "per_layer_slope", r["metric"], r["value"],
                     "per-layer FLOPs 2*M*K*N / per-layer slope (T(96) - T(32)) / 64; " + _CHAIN_NOTE)),
        ("matmul", "single large matmul, 4096", "tflops",
         lambda r: m("gemm", {"m": 4096, "k": 4096, "n": 4096}, "single_dispatch", r["metric"], r["value"],
                     "latency = 2*4096^3 FLOP / rate")),
        ("conv", "single conv dispatch, end-to-end ceiling", "tflops",
         lambda r: x("shape_unstated", "'a single conv dispatch' without its shape")),
        ("int8_vs_fp16", "", "speedup_x",
         lambda r: x("shape_unstated", "no shape; ch.20 also contradicts it (int8 is weight-only, ~1.0x)")),
        ("dram_bandwidth", "", "GB/s",
         lambda r: x("config_input", "AMC memory-controller ceiling, chips/ dram.peak_bytes_per_s")),
        ("gemv_weight_stream", "large matmul with one output row", "GB/s",
         lambda r: m("gemv", {"k": 8192, "n": 8192, "byte_count": "weights"}, "single_dispatch", r["metric"],
                     r["value"], "latency = K*N*2 B of weights / rate; 'saturating' is taken as K = N = 8192 "
                     "(134 MB)")),
        ("elementwise_stream", "standalone activation-stream rate", "GB/s",
         lambda r: x("ambiguous_chip", "the guide's table lists 24 GB/s under M1 but its text gives the "
                     "standalone path to M5/H17s")),
        ("elementwise_stream", "single relu stream effective", "GB/s",
         lambda r: x("contradicted", "10 GB/s against 5.2-5.4 GB/s (M1 Air) and 4.4-7.4 GB/s (M1 Max); no size given")),
        ("elementwise_stream", "effective stream rate", "GB/s",
         lambda r: x("contradicted", "10 GB/s on M1 against 5.2-7.4 measured; 57 GB/s on M5 against 15-24 "
                     "measured; no size given")),
        ("sram_working_set", "", "MB",
         lambda r: x("config_input", "memory.working_set_cap_bytes")),
        ("dispatch_floor", "per-dispatch floor, slope method", "latency_ms",
         lambda r: m("dispatch_floor", {"graph": "linear", "k": 64, "n": 64}, "single_dispatch", r["metric"],
                     r["value"], "latency as measured; ch.9: a 64-element linear is 0.23 ms, as relu, sigmoid, "
                     "avgpool and small conv (0.23-0.26 ms)")),
        ("dispatch_floor", "full-call floor", "latency_ms",
         lambda r: m("dispatch_floor", dict(_TINY_CONV, graph="tiny_conv"), "sustained", r["metric"], r["value"],
                     "per-call latency in a ~2000-call hot loop as measured; " + _TINY_NOTE)),
        ("dispatch_floor", "fused per-dispatch fixed cost", "latency_ms",
         lambda r: m("matmul_chain", _MM_CHAIN_1MB, "intercept", r["metric"], r["value"],
                     "fixed cost = T(32) - 32 * per-layer slope of the 1 MB-activation chain; " + _CHAIN_NOTE)),
        ("dispatch_floor", "dispatch floor (silicon anchor)", "latency_ms",
         lambda r: m("dispatch_floor", dict(_TINY_CONV, graph="tiny_conv"), "single_dispatch", r["metric"],
                     r["value"], "latency as measured; " + _TINY_NOTE)),
        ("conv", "same conv at 16x16 spatial", "gflops",
         lambda r: m("conv3x3", {"c": 64, "h": 16, "w": 16, "batch": 1, "kernel": 3, "padding": "valid"},
                     "single_dispatch", r["metric"], r["value"],
                     "latency = 2*64^2*9*14^2 FLOP / rate: the guide counts valid-padding output (14x14), "
                     "which reproduces its 63 GFLOP/s from the 0.231 ms of ch.11")),
        ("conv", "same conv at 256x256 spatial", "gflops",
         lambda r: m("conv3x3", {"c": 64, "h": 256, "w": 256, "batch": 1, "kernel": 3, "padding": "valid"},
                     "single_dispatch", r["metric"], r["value"],
                     "latency = 2*64^2*9*254^2 FLOP / rate (valid padding, as ch.11's 3.814 ms gives 1247)")),
        ("matmul_chain", "96-layer matmul chain", "dram_MB_per_dispatch",
         lambda r: m("matmul_chain", {"m": 8192, "k": 128, "n": 128, "depth": 96}, "dram_bytes", r["metric"],
                     r["value"], "DRAM bytes of one dispatch; " + _CHAIN_NOTE)),
        ("matmul_chain", "same matmul with 1 MB activation vs >2 MB", "tflops",
         lambda r: dict(m("matmul_chain", _MM_CHAIN_2MB, "per_layer_slope", r["metric"], "4.8",
                          "validates the value after the arrow, 4.8 TFLOP/s with the 2 MB activation (the 12 "
                          "before it is the slope row); " + _CHAIN_NOTE))),
        ("conv_relu_stack", "fused conv-relu stack 1..32 layers", "latency_ms",
         lambda r: m("conv_stack", dict(_TINY_CONV, layers=32, reduce_mean=False, batch=1), "single_dispatch",
                     r["metric"], r["value"], "per-call latency of the 32-layer program (the row says flat "
                     "from 1 to 32); layer shape assumed as " + _TINY_NOTE)),
        ("conv_relu_stack", "per-op cost at 1 layer", "latency_us",
         lambda r: m("conv_stack", dict(_TINY_CONV, layers=1, reduce_mean=False, batch=1), "single_dispatch",
                     r["metric"], r["value"], "per-op cost = call latency / 1 layer; shape as " + _TINY_NOTE)),
        ("conv_relu_stack", "per-op cost at 32 layers", "latency_us",
         lambda r: m("conv_stack", dict(_TINY_CONV, layers=32, reduce_mean=False, batch=1, per="layer"),
                     "single_dispatch", r["metric"], r["value"],
                     "per-op cost = call latency / 32 layers; shape as " + _TINY_NOTE)),
        ("conv_relu_stack", "per-sample cost, batch 1", "latency_us",
         lambda r: m("conv_stack", dict(_TINY_CONV, layers=32, reduce_mean=False, batch=1), "single_dispatch",
                     r["metric"], r["value"], "per-sample cost at batch 1 = call latency of the same "
                     "32-layer program; shape as " + _TINY_NOTE)),
        ("conv_relu_stack", "per-sample cost, batch 512", "latency_us",
         lambda r: x("shape_unstated", "at batch 512 the per-sample cost depends on the unstated spatial size")),
        ("roofline_constant", "engine compute/bandwidth roof", "gflops_matmul_roof",
         lambda r: m("gemm", {"sizes": [512, 1024, 2048, 4096, 6144, 8192]}, "peak_over_sizes", r["metric"],
                     r["value"], "peak FLOP/s over square GEMMs (ch.9 saturation sweep); latency-equivalent "
                     "at the simulated best size")),
        ("roofline_constant", "engine compute/bandwidth roof", "gflops_conv_roof",
         lambda r: m("conv3x3", {"configs": _FULL_CONV, "h": 64, "w": 64, "kernel": 3, "padding": "same"},
                     "peak_over_sizes", r["metric"], r["value"],
                     "peak FLOP/s over 3x3 convs C x batch in configs at 64x64 (ch.9 saturation sweep)")),
        ("roofline_constant", "engine compute/bandwidth roof", "GB/s_standalone",
         lambda r: m("elementwise", {"op": "relu", "cols": 4096, "sizes": _FULL_STREAM}, "peak_over_sizes",
                     r["metric"], r["value"], "peak GB/s over relu streams, bytes = 2 * elements * 2 B")),
        ("roofline_constant", "engine compute/bandwidth roof", "ridge_flop_per_byte",
         lambda r: m("roofline", {"gemm_sizes": [512, 1024, 2048, 4096, 6144, 8192], "stream_rows": _FULL_STREAM,
                                  "cols": 4096}, "ridge", r["metric"], r["value"],
                     "ridge = peak GEMM FLOP/s / peak relu-stream B/s (10191 / 24.1)")),
        ("gemv_decode", "decode GEMV", "gflops",
         lambda r: m("gemv", {"k": 4096, "n": 4096}, "single_dispatch", r["metric"], r["value"],
                     "latency = 2*4096^2 FLOP / rate (the ANEForge roofline GEMV point)")),
        ("conv_stack_fused", "3-conv stack fused", "gflops",
         lambda r: m("conv_stack", {"layers": 3, "c": 256, "h": 64, "w": 64, "batch": 4, "kernel": 3,
                                    "padding": "same", "relu": True}, "single_dispatch", r["metric"], r["value"],
                     "latency = 3 * 2*4*256^2*9*64^2 FLOP / rate (ANEForge roofline_analysis.py fused block: "
                     "three 3x3 convs C=256, B=4, 64x64, relu between)")),
        ("layer_norm", "standalone layer_norm vs engine BW roof", "pct_of_roof",
         lambda r: dict(m("layer_norm", {"cols": 4096, "sizes": _FULL_STREAM}, "peak_over_sizes", "GB/s",
                          str(0.18 * 24.1), "peak GB/s = 18 % of the 24.1 GB/s roof = 4.34 GB/s"))),
        ("softmax", "standalone softmax vs engine BW roof", "pct_of_roof",
         lambda r: dict(m("softmax", {"cols": 4096, "sizes": _FULL_STREAM}, "peak_over_sizes", "GB/s",
                          str(0.63 * 24.1), "peak GB/s = 63 % of the 24.1 GB/s roof = 15.18 GB/s"))),
        ("matmul_chain", "8x chained 1024^2 fp16 matmul", "latency_us_p50",
         lambda r: m("matmul_chain", {"m": 1024, "k": 1024, "n": 1024, "depth": 8}, "sustained", r["metric"],
                     r["value"], "median per-call latency of a 98,092-call zero-copy loop as measured")),
        ("matmul_chain", "same, steady state", "tflops",
         lambda r: m("matmul_chain", {"m": 1024, "k": 1024, "n": 1024, "depth": 8}, "sustained", r["metric"],
                     r["value"], "latency = 8 * 2*1024^3 FLOP / rate")),
        ("conv", "conv3x3 Cin=Cout=64,", "latency_ms", None),  # handled by _guide_conv_ramp
        ("conv", "3x3 conv at 256 channels (best end-to-end)", "gflops",
         lambda r: x("shape_unstated", "spatial size not given")),
        ("gemv", "matmul single output row, inner 1024", "gflops",
         lambda r: x("shape_unstated", "output width not given")),
        ("matmul", "256x4096x4096 saturation", "tflops",
         lambda r: m("gemm", {"m": 256, "k": 4096, "n": 4096}, "single_dispatch", r["metric"], r["value"],
                     "latency = 2*256*4096^2 FLOP / rate")),
        ("matmul_chain", "matmul slope (fused chain)", "tflops",
         lambda r: m("matmul_chain", _MM_CHAIN_1MB, "per_layer_slope", r["metric"], r["value"],
                     "ch.12: 'from the fused-chain probe on the same network with no source change' as the "
                     "M1 slope; " + _CHAIN_NOTE)),
        ("matmul", "single-program matmul peak", "tflops",
         lambda r: m("gemm", {"m": 4096, "k": 4096, "n": 4096}, "single_dispatch", r["metric"], r["value"],
                     "latency = 2*4096^3 FLOP / rate; ch.12 calls it the M5 analogue of the M1's 4096-dim 4.8")),
        ("conv_chain", "convolution peak (fused chain probe)", "tflops",
         lambda r: x("shape_unstated", "the chain's convolution shape is not given")),
        ("gemv_weight_stream", "DRAM weight-stream bandwidth, two read channels", "GB/s",
         lambda r: m("gemv", {"k": 8192, "n": 8192, "byte_count": "weights"}, "single_dispatch", r["metric"],
                     r["value"], "latency = K*N*2 B of weights / rate at K = N = 8192, the saturated end of the "
                     "M5 Pro sweep")),
        ("conv", "conv3x3 Cin=Cout=256, 28x28", "latency_ms",
         lambda r: m("conv3x3", {"c": 256, "h": 28, "w": 28, "batch": 1, "kernel": 3, "padding": "same"},
                     "single_dispatch", r["metric"], r["value"],
                     "latency as measured (its 1823 GFLOP/s note matches same padding)")),
        ("conv1x1_core_scaling", "1x1 conv, 1 output", "GMAC_per_s",
         lambda r: x("shape_unstated", "the reference of rows 566-568's ratios; its absolute rate needs the "
                     "input channels and spatial size, which are not given")),
        ("conv1x1_core_scaling", "1x1 conv,", "GMAC_per_s", None),  # handled by _guide_core_scaling
        ("conv1x1_ocg_passes", "", "latency_us_per_layer",
         lambda r: dict(m("ocg_passes", {"c_from": 192, "c_to": 256, "h": 32, "w": 32, "depths": [8, 24]},
                          "step_ratio", "speedup_x", str(61 / 20),
                          "ratio of per-layer slopes T_layer(C=256) / T_layer(C=192) = 61 us / 20 us = 3.05 for "
                          "chains of CxC 1x1 convs at 32x32; the two per-layer times are the row's value"))),
        ("conv", "3x3 C256->256 @28x28", "latency_us",
         lambda r: m("conv3x3", {"c": 256, "h": 28, "w": 28, "batch": 1, "kernel": 3, "padding": "same"},
                     "single_dispatch", r["metric"], r["value"], "latency as measured")),
        ("conv", "1x1 C", "latency_us", None),  # handled by _guide_conv1x1
        ("dispatch_floor", "dispatch floor", "latency_ms", None),
        ("conv1x1", "large 1x1 conv, all 4 cores saturated", "TMAC_per_s",
         lambda r: x("shape_unstated", "'a large 1x1 conv' without its shape")),
        ("batched_matmul_weight_sweep", "", "gflops",
         lambda r: x("shape_unstated", "only the weight size is given; the rate depends on the unstated batch "
                     "and row count")),
        ("densest_peak", "", "tflops", lambda r: x("shape_unstated", "'densest-packed' conv without its shape")),
        ("core_scaling", "", "speedup_x",
         lambda r: dict(m("core_scaling", {"c_out": 4, "c_in": 512, "h": 64, "w": 64}, "throughput_ratio",
                          "speedup_x", "4.00",
                          "the row holds three ratios (2, 3, 4 clusters); the 4-cluster one is validated, the "
                          "others restate rows 566-567; ratio = 4 * T(C_out=1) / T(C_out=4) for a 1x1 conv, "
                          "input shape assumed 512 x 64 x 64 (not given)"))),
        ("dispatch_breakdown", "", "latency_us",
         lambda r: x("config_input", "dispatch.* stage durations of chips/")),
        ("concurrency", "", "slowdown_x", lambda r: x("multi_stream")),
        ("llm_decode", "TinyLlama hybrid", "tokens_per_s", lambda r: x("hybrid_pipeline")),
        ("llm_decode", "batched decode batch 16, GPU vs engine", "gpu_speedup_x", lambda r: x("hybrid_pipeline")),
        ("llm_decode_int8", "", "speedup_x", lambda r: x("hybrid_pipeline")),
        ("runtime_limits", "", "count", lambda r: x("architecture_constant")),
        ("conv1x1_stack_int4", "", "speedup_x",
         lambda r: x("shape_unstated", "'bandwidth-bound 1x1 conv stack' without its shape")),
        ("conv_stack_sparse", "", "speedup_x", lambda r: x("shape_unstated", "conv stack shape not given")),
        ("conv_stack_sparse", "", "GB/s", lambda r: x("shape_unstated", "conv stack shape not given")),
        ("weight_compression", "", "speedup_x",
         lambda r: x("contradicted", "ANEForge compress_speedup_bench on the M5 Pro measures int8 at ~1.0x; "
                     "no shape given")),
    ]


def _guide_conv_ramp(r: dict[str, str]) -> dict[str, Any]:
    (h,) = _ints(r"64, (\d+)x\d+", r["shape"])
    return _mapped("conv3x3", {"c": 64, "h": h, "w": h, "batch": 1, "kernel": 3, "padding": "valid"},
                   "single_dispatch", r["metric"], r["value"],
                   "latency as measured; valid padding, as the guide's GFLOP/s notes imply")


def _guide_conv1x1(r: dict[str, str]) -> dict[str, Any]:
    c, _, h, w = _ints(r"1x1 C(\d+)->(\d+) @(\d+)x(\d+)", r["shape"])
    return _mapped("conv1x1", {"c_in": c, "c_out": c, "h": h, "w": w}, "single_dispatch", r["metric"],
                   r["value"], "latency as measured")


def _guide_core_scaling(r: dict[str, str]) -> dict[str, Any]:
    (n,) = _ints(r"1x1 conv, (\d+) output", r["shape"])
    ratio = _num(r["value"]) / 3.8
    return _mapped("core_scaling", {"c_out": n, "c_in": 512, "h": 64, "w": 64}, "throughput_ratio",
                   "speedup_x", repr(round(ratio, 6)),
                   f"ratio of this rate to the 1-channel rate: {r['value']} / 3.8 GMAC/s; simulated as "
                   f"{n} * T(C_out=1) / T(C_out={n}) for a 1x1 conv, input shape assumed 512 x 64 x 64 "
                   "(not given; the ratio is what the row shows)")


def rule_guide(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """ane-guide rows, matched by workload, shape prefix and metric."""
    if not row["source_repo_or_url"].startswith(GUIDE):
        return None
    work, shape = row["workload"], row["shape"]
    if work == "conv" and shape.startswith("conv3x3 Cin=Cout=64,"):
        return _guide_conv_ramp(row)
    if work == "conv" and shape.startswith("1x1 C"):
        return _guide_conv1x1(row)
    if work == "conv1x1_core_scaling" and not shape.startswith("1x1 conv, 1 output"):
        return _guide_core_scaling(row)
    handler = _guide_handler(row)
    return handler(row) if handler is not None else None


def _guide_handler(row: dict[str, str]) -> Callable[[dict[str, str]], dict[str, Any]] | None:
    """The handler of the first table rule matching the row's workload, shape prefix and metric."""
    for w, prefix, met, handler in _guide_rules():
        if w == row["workload"] and row["shape"].startswith(prefix) and met == row["metric"] and handler:
            return handler
    return None


def rule_leftovers(row: dict[str, str], i: int) -> dict[str, Any] | None:
    """Rows no earlier rule took: architecture constants of reverse-engineering sources."""
    if row["workload"] in ("architecture", "clock", "core_count", "datapath", "sram"):
        return _excluded("architecture_constant")
    return None


RULES: list[Rule] = [
    rule_generic_exclusions,
    rule_aneforge_headline,
    rule_aneforge_rooflines,
    rule_aneforge_benches,
    rule_maderix,
    rule_guide,
    rule_leftovers,
]

# Rows that restate another row's measurement (same run, other unit), keyed by what makes them one.


def _restate_key(rec: dict[str, Any]) -> tuple[Any, ...] | None:
    if rec["status"] != "mapped" or rec["method"] != "single_dispatch":
        return None
    if not rec["section"].startswith("bench/results/") or "compress" in rec["section"]:
        return None
    params = tuple(sorted((k, str(v)) for k, v in rec["params"].items()))
    run = rec["section"].split(" :: ")[0]
    return (run, rec["family"], params)


# ------------------------------------------------------------------------- build


def classify(row: dict[str, str], i: int) -> dict[str, Any]:
    """The full trace record of one table row."""
    target, attribution = attribute(row)
    rec: dict[str, Any] = {
        "id": f"r{i:03d}",
        "row": i,
        "chip": row["chip"],
        "target": target,
        "attribution": attribution,
        "source": row["source_repo_or_url"],
        "section": row["source_path_or_section"],
        "provenance": row["provenance"],
        "source_method": source_method(row),
        "workload": row["workload"],
        "shape": row["shape"],
        "metric": row["metric"],
        "value": row["value"],
        "units": units_of(row["metric"]),
        "notes": row["notes"],
    }
    if target is None:
        rec.update(_excluded("ambiguous_chip", attribution or ""))
        return rec
    for rule in RULES:
        out = rule(row, i)
        if out is not None:
            rec.update(out)
            return rec
    raise ValueError(f"row {i} matches no curation rule: {row['workload']!r} {row['shape']!r} {row['metric']!r}")


def _mark_restatements(records: list[dict[str, Any]]) -> None:
    """Point a rate row at the latency row of the same run and workload it restates."""
    first: dict[tuple[Any, ...], str] = {}
    for rec in records:
        key = _restate_key(rec)
        if key is None:
            continue
        if key in first:
            rec["restates"] = first[key]
        else:
            first[key] = rec["id"]


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    # target stays even when null: an unattributed row says so explicitly.
    return {k: v for k, v in rec.items() if k == "target" or (v is not None and v != {})}


def build(csv_path: Path) -> dict[str, dict[str, Any]]:
    """Trace documents keyed by file name, built from the shared table."""
    raw = csv_path.read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    records = [classify(row, i) for i, row in enumerate(rows)]
    _mark_restatements(records)
    docs: dict[str, dict[str, Any]] = {}
    for name in TRACE_FILES:
        mine = [_clean(r) for r, row in zip(records, rows) if family_file(row) == name]
        mapped = sum(r["status"] == "mapped" for r in mine)
        docs[name] = {
            "schema": SCHEMA,
            "family": name.split(".")[0].upper(),
            "generated_by": "python -m anesim.validate.curate",
            "source_table": CSV_NAME,
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "counts": {"rows": len(mine), "mapped": mapped, "excluded": len(mine) - mapped},
            "rows": mine,
        }
    return docs


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """A safe dumper that writes shared lists out in full instead of as YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: dict[str, Any]) -> str:
    """Deterministic YAML text of one trace document."""
    header = ("# Generated by `python -m anesim.validate.curate` from the shared measurement table.\n"
              "# Do not edit by hand: change the rules in anesim/validate/curate.py and regenerate.\n"
              "# Field reference: docs/validation.md.\n")
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                              default_flow_style=None)


def default_shared() -> Path:
    """The shared reference folder: $ANESIM_SHARED, else ../shared beside the checkout."""
    import os

    env = os.environ.get("ANESIM_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the trace files."""
    ap = argparse.ArgumentParser(prog="python -m anesim.validate.curate", description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=default_shared(), help="the shared reference folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "validation")
    ap.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = ap.parse_args(argv)
    docs = build(args.shared / CSV_NAME)
    stale = []
    for name, doc in docs.items():
        text = dump(doc)
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
        c = doc["counts"]
        print(f"{name}: {c['rows']} rows, {c['mapped']} mapped, {c['excluded']} excluded")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
