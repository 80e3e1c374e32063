"""``anesim chips``: list the chip profiles, or show one with every field's provenance."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from anesim.chips import ChipConfig, Param, all_chips, load_chip
from anesim.cli.output import print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``chips`` subcommand."""
    parser = subparsers.add_parser("chips", help="list chip profiles, or show one in full")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="chips_command", metavar="ACTION")
    show = sub.add_parser("show", help="show every field of one chip with provenance and source")
    show.add_argument("chip", help="a chip name, alias or SoC id (m1, t8103, 'M5 Pro'), or a chip YAML path")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def summary_row(chip: ChipConfig) -> dict[str, Any]:
    """The headline figures of one chip, as shown by ``anesim chips``."""
    return {
        "name": chip.name,
        "generation": chip.identity.generation,
        "compiler_target": chip.identity.compiler_target,
        "ne_cores": chip.ne.cores.value,
        "clock_hz": chip.ne.clock_hz.value,
        "peak_fp16_flops_per_s": chip.peak_fp16_flops_per_s,
        "pool_bytes": chip.memory.pool_bytes.value,
        "activation_dram_bytes_per_s": chip.dram.activation_bytes_per_s.value,
        "weight_dram_bytes_per_s": chip.dram.weight_bytes_per_s.value,
    }


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, Param):
        out.append((prefix, value))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _flatten(f"{prefix}.{name}" if prefix else name, getattr(value, name), out)
    else:
        out.append((prefix, value))


def chip_fields(chip: ChipConfig) -> list[tuple[str, Any]]:
    """Every field of a chip as (dotted key, Param or plain value)."""
    out: list[tuple[str, Any]] = []
    _flatten("", chip, out)
    return out


def _show(chip: ChipConfig, as_json: bool) -> None:
    if as_json:
        data = chip.model_dump(mode="json")
        data["source_files"] = list(chip.source_files)
        data["derived"] = {
            "peak_fp16_flops_per_s": chip.peak_fp16_flops_per_s,
            "peak_int8_ops_per_s": chip.peak_int8_ops_per_s,
            "pool_bytes_per_cycle": chip.pool_bytes_per_cycle,
            "dispatch_floor_s": chip.dispatch_floor_s,
        }
        data["predicted"] = predicted_keys(chip)
        data["derived_by_rule"] = chip.derived_params
        print_json(data)
        return
    print(f"{chip.name}  ({chip.identity.generation}, target {chip.identity.compiler_target}, SoC {chip.identity.soc})")
    print("files: " + " <- ".join(_display_path(f) for f in chip.source_files))
    rows = []
    for key, value in chip_fields(chip):
        if isinstance(value, Param):
            rows.append([key, _fmt(value.value), value.provenance, value.source])
        elif key not in ("name",):
            rows.append([key, _fmt(value), "", ""])
    print_table(["field", "value", "provenance", "source"], rows)
    print()
    _prediction_note(chip)
    print(f"derived peak fp16: {chip.peak_fp16_flops_per_s / 1e12:.2f} TFLOP/s; "
          f"dispatch floor: {chip.dispatch_floor_s * 1e3:.3f} ms; "
          f"pool bandwidth: {chip.pool_bytes_per_cycle} B/cycle")


def predicted_keys(chip: ChipConfig) -> list[str]:
    """The chip's numbers that are predicted: by a cross-generation rule or by another stated rule."""
    return [k for k, v in chip_fields(chip) if isinstance(v, Param) and v.provenance == "predicted"]


def _prediction_note(chip: ChipConfig) -> None:
    from anesim.timing.uncertainty import interval_for, is_calibrated

    keys = predicted_keys(chip)
    rules = chip.derived_params
    print(f"predicted: {len(keys)} of {sum(isinstance(v, Param) for _, v in chip_fields(chip))} numbers "
          f"(provenance 'predicted'); {len(rules)} derived by the cross-generation rules "
          f"(chips/model/scaling.yaml): " + ", ".join(f"{k} [{r}]" for k, r in rules.items()))
    calibrated = is_calibrated(chip)
    interval = interval_for(chip)
    if calibrated:
        print("calibration rows: yes (the shared constants were fitted on them; errors in docs/validation.md)")
    elif interval is not None:
        lo, hi = interval.latency_ratio
        print(f"calibration rows: none; a latency predicted here carries the {round(100 * interval.coverage)} % range "
              f"of x{1 / hi:.2f} to x{1 / lo:.2f} ({interval.basis.replace('_', '-')} cross-validation)")


def _display_path(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def run(args: argparse.Namespace) -> int:
    """Print the chip table, or one chip in full."""
    if getattr(args, "chips_command", None) == "show":
        _show(load_chip(args.chip), args.json)
        return 0
    chips = sorted(all_chips(), key=lambda c: (c.family != "M", c.year.value, c.name))
    rows = [summary_row(c) for c in chips]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["chip", "generation", "cores", "clock GHz", "peak fp16 TFLOP/s", "pool MB", "act GB/s", "weight GB/s"],
        [
            [
                r["name"], r["generation"], r["ne_cores"], f"{r['clock_hz'] / 1e9:.2f}",
                f"{r['peak_fp16_flops_per_s'] / 1e12:.2f}", f"{r['pool_bytes'] / 2**20:.2f}",
                f"{r['activation_dram_bytes_per_s'] / 1e9:.1f}", f"{r['weight_dram_bytes_per_s'] / 1e9:.1f}",
            ]
            for r in rows
        ],
        right=(2, 3, 4, 5, 6, 7),
    )
    return 0
