"""One sweep point, timing only: load the chip, apply overrides, compile the program, simulate.

This runs inside Dask workers, so it takes and returns plain data and imports what it needs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from anesim.errors import AnesimError
from anesim.sweep.points import SweepPoint

COLUMNS = ["program", "chip", "generation", "clock_hz", "cores", "latency_s", "engine_cycles", "macs", "flops",
           "flops_per_s", "dram_bytes", "intensity_flop_per_byte", "peak_flops_per_s", "dram_peak_bytes_per_s",
           "power_w", "energy_j", "latency_low_s", "latency_high_s", "energy_low_j", "energy_high_j", "tasks",
           "wall_s", "error"]


def run_point(point: SweepPoint) -> dict[str, Any]:
    """The table row of one point; an AnesimError (a program a chip cannot run) becomes the error column."""
    from anesim.chips import load_chip
    from anesim.compiler import compile_file
    from anesim.sweep.overrides import apply_overrides
    from anesim.timing import simulate

    start = time.perf_counter()
    row: dict[str, Any] = {"program": Path(point.program).stem, "chip": point.chip}
    row.update({key: value for key, value in point.params + point.overrides})
    try:
        chip = apply_overrides(load_chip(point.chip), dict(point.overrides))
        compiled = compile_file(point.program, chip, params=dict(point.params) or None)
        result = simulate(compiled, chip, trace=False)
    except AnesimError as exc:
        row["error"] = str(exc)
        row["wall_s"] = time.perf_counter() - start
        return row
    flops = 2 * result.macs
    dram = result.dram_bytes_total
    row.update({
        "generation": chip.identity.generation, "clock_hz": chip.ne.clock_hz.value, "cores": chip.ne.cores.value,
        "latency_s": result.latency_s, "engine_cycles": result.engine_cycles, "macs": result.macs, "flops": flops,
        "flops_per_s": result.flops_per_s, "dram_bytes": dram,
        "intensity_flop_per_byte": flops / dram if dram else float("inf"),
        "peak_flops_per_s": chip.peak_fp16_flops_per_s, "dram_peak_bytes_per_s": chip.dram.peak_bytes_per_s.value,
        "power_w": result.power_w, "energy_j": result.energy_j,
        # the 80 % range of a chip without calibration rows (none for a calibrated chip: in-sample)
        "latency_low_s": result.latency_range_s[0] if result.latency_range_s else None,
        "latency_high_s": result.latency_range_s[1] if result.latency_range_s else None,
        "energy_low_j": result.energy_range_j[0] if result.energy_range_j else None,
        "energy_high_j": result.energy_range_j[1] if result.energy_range_j else None,
        "tasks": len(result.tasks), "wall_s": time.perf_counter() - start, "error": "",
    })
    return row
