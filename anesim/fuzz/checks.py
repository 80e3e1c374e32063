"""What a fuzz case does with an input that loaded: time it, execute it, and judge the figures."""

from __future__ import annotations

import math
from typing import Any


class Nonsense(Exception):
    """An input was accepted but produced an impossible figure (NaN, inf or negative time or energy)."""


def check_timing(result: Any, label: str) -> None:
    """Every time, cycle count, byte count and energy of a TimingResult finite and non-negative."""
    figures: dict[str, float] = {
        "latency_s": result.latency_s, "engine_cycles": result.engine_cycles, "energy_j": result.energy_j,
        "power_w": result.power_w, "macs": result.macs, "dram_contention_s": result.dram_contention_s,
        "flops_per_s": result.flops_per_s, "clock_hz": result.clock_hz,
    }
    figures.update({f"dram_bytes.{k}": v for k, v in result.dram_bytes.items()})
    figures.update({f"dispatch_s.{k}": v for k, v in result.dispatch_s.items()})
    for name, unit in result.units.items():
        figures[f"units.{name}.busy_s"] = unit.busy_s
    for task in result.tasks:
        figures[f"task {task.index}.cycles"] = task.cycles
        figures[f"task {task.index}.start_s"] = task.start_s
    for name, value in figures.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise Nonsense(f"{label}: {name} = {value!r}")
    if result.latency_s <= 0:
        raise Nonsense(f"{label}: latency_s = {result.latency_s!r} (a call takes time)")


def exercise(target: Any, chip: Any, label: str, *, execute: bool = True,
             inputs: dict[str, str] | None = None) -> None:
    """Time ``target`` (a Program or a compile result) on ``chip`` and, if asked, execute it.

    ``inputs`` maps input names to .npy files, read the way ``anesim run --input`` reads them.
    """
    from anesim.cli.run import execute_with_inputs
    from anesim.timing import simulate

    check_timing(simulate(target, chip, trace=False), label)
    if execute:
        program = getattr(target, "program", target)
        execute_with_inputs(target, program, chip, inputs or {}, seed=0)


# A compiled model with more tasks than this, or whose reading and compiling in the case took
# longer, is not read by the other commands: each reads and compiles it again, and a
# legitimately large one (a batch of 4,096 images is 16,000 tasks; 65,536 repeated layers that
# fold away leave 4 tasks but take seconds to expand) would take the case past its time limit.
# (The time is not the input's alone: a case near it may replay with the commands where the run
# left them out, or the other way round.)
OTHER_COMMANDS_MAX_TASKS = 2000
OTHER_COMMANDS_MAX_COMPILE_S = 1.0


def other_commands(path: Any, compiled: Any, rng: Any, load_s: float) -> None:
    """Run other commands that read a model file, discarding their output: always the placement
    report as JSON and the bound per layer, and one more drawn by ``rng`` (the timing-only run's
    JSON, its trace file, or the compiled program written out and disassembled again). An
    AnesimError is their answer to bad input (exit status 2); anything else escapes to the fuzzer.
    ``load_s`` is how long reading and compiling the file took in the case."""
    import contextlib
    import io
    from pathlib import Path

    from anesim.cli import main

    segments = getattr(compiled, "segments", None) or [compiled]
    if sum(len(getattr(getattr(s, "program", s), "tasks", ())) for s in segments) > OTHER_COMMANDS_MAX_TASKS \
            or load_s > OTHER_COMMANDS_MAX_COMPILE_S:
        return
    out = Path(path).parent / "commands"
    out.mkdir(exist_ok=True)
    hwx = out / "compiled.hwx"
    extra = rng.choice((["run", str(path), "--timing-only", "--json"],
                        ["run", str(path), "--timing-only", "--trace", str(out / "trace.json")],
                        ["compile", str(path), "-o", str(hwx)]))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for args in (["check", str(path), "--json"], ["explain", str(path)], extra):
            main(args)
        if hwx.is_file():  # (a program that compiled to one dispatch the engine runs alone)
            main(["disasm", str(hwx)])
