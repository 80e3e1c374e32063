"""``anesim run``: execute a program with the engine's numerics and time it on a chip."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anesim.cli.options import (add_limit_options, add_param_option, program_params, refuse_program_options,
                                 whole_number)
from anesim.cli.output import print_json, print_table, si

MAX_TASK_ROWS = 100
DEFAULT_SEED = 0  # inputs the user does not give are drawn reproducibly


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser(
        "run", help="execute a program with fp16 numerics and time it on a chip",
        description="Load FILE, simulate it on the chosen chip and print latency (seconds and engine "
                    "cycles), per-unit busy time and utilisation, DRAM bytes per stream, achieved FLOP/s "
                    "and a per-task table.")
    p.add_argument("file", help="a compiled program (.hwx, raw command buffer) or a model (program YAML, "
                                "ONNX, Core ML) to compile for the chip")
    p.add_argument("--chip", default="m1", help="chip name, alias or YAML path (default: m1)")
    p.add_argument("--timing-only", action="store_true", help="skip the functional (numerics) run")
    add_param_option(p)
    p.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    p.add_argument("--trace", metavar="OUT", help="write the timeline: OUT.json (Chrome) or OUT.pftrace (Perfetto)")
    p.add_argument("--plot", metavar="OUT.png", help="draw the timeline per unit with pool occupancy below (.png, .svg, .pdf)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input tensor for the functional run (repeatable)")
    p.add_argument("--random-inputs", type=whole_number, metavar="SEED", help="seed for the inputs not given with --input (default 0)")
    p.add_argument("--out", metavar="DIR", help="write output tensors of the functional run as DIR/NAME.npy")
    p.add_argument("--sidecar", metavar="FILE", help="the sidecar describing a raw command buffer's tensors")
    p.add_argument("--approximate", action="store_true",
                   help="run a program whose registers ask for something anesim would have to guess (a mode no "
                        "source describes), printing a warning for each guess instead of refusing it")
    p.add_argument("--numerics", choices=("exact", "fast"), default="exact",
                   help="functional run: 'exact' reproduces the engine's fp16 reduction bit for bit (default); "
                        "'fast' sums in float32 BLAS, rounded once per output, not bit-exact (docs/numerics.md)")
    add_limit_options(p)
    p.set_defaults(func=run)


def _input_files(items: list[str]) -> dict[str, str]:
    """Input files named on the command line as NAME=FILE.npy."""
    from anesim.errors import InputError

    files: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError("bad --input", expected="NAME=FILE.npy", found=repr(item))
        files[name] = path
    return files


def execute_with_inputs(target: Any, program: Any, chip: Any, files: dict[str, str], seed: int,
                        numerics: str = "exact", notes: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(outputs, drawn inputs): execute with the .npy ``files`` given and seeded draws for the rest.

    An input that does not fit the program is an error naming its file; ``notes`` receives a line
    for each given fp16 input whose finite values fp16 holds only as infinities.
    """
    import anesim
    from anesim.errors import InputError
    from anesim.functional import draw_inputs
    from anesim.npyfile import load_npy

    inputs: dict[str, Any] = {name: load_npy(path, f"input '{name}'") for name, path in files.items()}
    wanted = _input_specs(program, target)
    specs = {name: (shape, dtype) for name, shape, dtype in wanted}
    for name, value in inputs.items():
        if name not in specs:
            raise InputError(f"unknown input '{name}'", file=files[name], expected=f"one of {sorted(specs)}")
        shape, dtype = specs[name]
        if tuple(value.shape) != shape and value.size != _elements(shape):
            raise InputError(f"input '{name}' has the wrong shape", file=files[name],
                             expected=f"shape {shape} {dtype}", found=tuple(value.shape))
        if notes is not None and dtype == "fp16":
            beyond = _beyond_fp16(value)
            if beyond:
                notes.append(f"input {name}: {beyond} finite value(s) beyond fp16's range (|value| >= 65520) "
                             f"entered the engine as infinities")
    drawn = {k: v for k, v in draw_inputs(wanted, seed, _source(target, program) or None).items() if k not in inputs}
    inputs.update(drawn)
    try:
        return anesim.execute(target, inputs, chip, numerics=numerics), drawn
    except InputError as exc:  # a value check on one of the user's arrays: point at its file
        named = [n for n in files if exc.file is None and exc.problem.startswith(f"input '{n}'")]
        if not named:
            raise
        raise InputError(exc.problem, file=files[named[0]], expected=exc.expected, found=exc.found) from None


def _beyond_fp16(value: Any) -> int:
    """How many of an array's finite values round to an infinity in fp16: those of magnitude
    65520 or more (halfway past fp16's largest, 65504, rounding to even goes up), counted
    without an fp16 copy of the array, which the run makes anyway."""
    import numpy as np

    if value.dtype.kind not in "iuf":
        return 0
    edge = np.float64(65520.0)  # (a float64 bound: no cast of it to the array's type, no abs of a minimum int)
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero(np.isfinite(value) & ((value >= edge) | (value <= -edge))))


def _source(target: Any, program: Any) -> str:
    """The file a program or compiled model was read from."""
    return getattr(program, "source", "") or getattr(getattr(target, "graph", None), "source", "") or ""


def _elements(shape: Any) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def _input_specs(program: Any, target: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of what the user supplies: a compiled model's graph inputs (not the
    tensors its host operations compute between engine segments), else the program's inputs."""
    graph = getattr(target, "graph", None)
    if graph is not None:
        return [(name, tuple(info.shape), info.dtype) for name, info in graph.inputs.items()]
    return [(t.name, tuple(t.shape), t.dtype) for t in program.inputs]


def _functional(args: argparse.Namespace, program: Any, target: Any, chip: Any) -> list[str]:
    """Execute the program with the engine's numerics; write outputs (and drawn inputs) to --out."""
    import numpy as np

    seed = DEFAULT_SEED if args.random_inputs is None else args.random_inputs
    notes: list[str] = []
    outputs, drawn = execute_with_inputs(target, program, chip, _input_files(args.input), seed, args.numerics,
                                         notes)
    if args.numerics != "exact":
        notes.append(f"numerics '{args.numerics}': not bit-exact, see docs/numerics.md for the measured deviation")
    if drawn and args.random_inputs is None:
        notes.append(f"inputs not given with --input were drawn with seed {seed} "
                     f"({', '.join(drawn)}); --random-inputs SEED picks another seed")
    for name, value in outputs.items():
        v = np.asarray(value, dtype=np.float32)
        finite = v[np.isfinite(v)]
        span = f"range [{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "no finite values"
        notes.append(f"output {name}: shape {tuple(v.shape)}, {span}, "
                     f"{int(np.isnan(v).sum())} NaN, {int(np.isinf(v).sum())} inf")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, value in outputs.items():
            np.save(out / f"{name}.npy", np.asarray(value))
        if drawn:
            (out / "inputs").mkdir(exist_ok=True)
            for name, value in drawn.items():
                np.save(out / "inputs" / f"{name}.npy", value)
        notes.append(f"wrote {len(outputs)} output(s) to {out}" + (f" and {len(drawn)} drawn input(s) to "
                                                                    f"{out / 'inputs'}" if drawn else ""))
    return notes


def run(args: argparse.Namespace) -> int:
    """Load, simulate, optionally execute, and report."""
    import anesim
    from anesim.chips import load_chip
    from anesim.timing import simulate
    from anesim.timing.trace import write_trace

    functional = [flag for flag, given in (("--numerics " + args.numerics, args.numerics != "exact"),
                                           ("--input", bool(args.input)), ("--out", args.out is not None),
                                           ("--random-inputs", args.random_inputs is not None)) if given]
    if args.timing_only and functional:
        from anesim.errors import InputError

        # (each of these only acts on the functional run; ignoring it would leave a file unread
        # or unwritten without a word)
        raise InputError(f"{functional[0].split()[0]} is an option of the functional run, and --timing-only "
                         "skips that run", expected="one of the two", found=f"--timing-only {' '.join(functional)}")
    params = program_params(args.param, args.file)
    chip = load_chip(args.chip)
    if anesim.is_model_file(args.file):
        refuse_program_options(args.file, sidecar=args.sidecar, approximate=args.approximate)
        target: Any = anesim.compile(args.file, chip, params)  # segments and host work, not just the tasks
        program = target.program
    else:
        program = target = anesim.load(args.file, sidecar=args.sidecar, approximate=args.approximate)
    warnings = [n.render() for n in program.approximations]
    for line in warnings:  # one line per note, before anything can fail
        print(f"anesim: warning: {args.file}: {line}", file=sys.stderr)
    result = simulate(target, chip, trace=bool(args.trace or args.plot))
    if result.host_tasks:
        line = cpu_fallback_warning(result)
        warnings.append(line)
        print(f"anesim: warning: {args.file}: {line}", file=sys.stderr)
    notes: list[str] = []
    if args.trace:
        fmt = write_trace(result, args.trace)
        notes.append(f"wrote {fmt} trace {args.trace}")
    if args.plot:
        from anesim.report.plots import timeline_plot, programs_of

        timeline_plot(result, args.plot, programs=programs_of(target), chip=chip)
        notes.append(f"wrote timeline {args.plot}")
    if not args.timing_only:
        notes.extend(_functional(args, program, target, chip))
    if args.json:
        data = {"file": str(args.file), **result.to_dict(), "warnings": warnings}
        print_json(data)
        for n in notes:
            print(f"anesim: {n}", file=sys.stderr)
        return 0
    _report(result, chip, args.file)
    for n in notes:
        print(n)
    return 0


def cpu_fallback_warning(result: Any, shown: int = 6) -> str:
    """One line: how many layers the CPU runs (Core ML's CPU fallback), which, and what it costs."""
    hosts = result.host_tasks
    ops = ", ".join(f"{h.op} '{h.name}'" for h in hosts[:shown]) + (f" and {len(hosts) - shown} more" if len(hosts) > shown else "")
    return (f"{len(hosts)} layer(s) run on the CPU (CPU fallback): {ops}; {seconds(result.host_s)} of the "
            f"{seconds(result.latency_s)} call, {result.handoffs} engine/CPU handoff(s); CPU time is an "
            f"estimate from the chip's cpu rates (docs/timing.md)")


def seconds(value: float) -> str:
    """A duration with a readable prefix: 183.3 µs, 2.1 ms, 1.25 s."""
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return "0 s" if value == 0 else f"{value / 1e-12:.4g} ps"


def _report(result: Any, chip: Any, file: str) -> None:
    """The text report."""
    ne = chip.ne
    print(f"{file}: program '{result.program}' on {chip.name} ({chip.identity.generation}, "
          f"{ne.cores.value} NE cores at {ne.clock_hz.value / 1e9:.3g} GHz)")
    cycles = result.latency_s * result.clock_hz
    print(f"latency     {result.latency_s:.6g} s ({seconds(result.latency_s)}) = {cycles:,.0f} engine-clock cycles")
    if result.latency_range_s:
        lo, hi = result.latency_range_s
        print(f"            latency {seconds(result.latency_s)} (predicted range {seconds(lo)} to {seconds(hi)}; "
              f"{result.prediction})")
    print(f"engine span {result.engine_cycles:,} cycles = {seconds(result.engine_s)} "
          f"(first descriptor issued to last result written)")
    d = result.dispatch_s
    print("dispatch    " + ", ".join(f"{k.replace('_', ' ')} {seconds(v)}" for k, v in d.items()))
    print(f"compute     {result.macs:,} MACs; achieved {si(result.flops_per_s, 'FLOP/s')} over the call, "
          f"{si(result.engine_flops_per_s, 'FLOP/s')} over the engine span")
    db = result.dram_bytes
    print(f"DRAM        activation {db['activation']:,} B, weight {db['weight']:,} B, "
          f"total {result.dram_bytes_total:,} B; contention {seconds(result.dram_contention_s)}")
    print(f"power       {result.power_w:.3g} W on the engine rail, {result.energy_j * 1e3:.4g} mJ per call "
          f"(modelled: {chip.power.engine_w.provenance} coefficients, docs/timing.md)")
    if result.energy_range_j:
        lo, hi = result.energy_range_j
        print(f"            energy {result.energy_j * 1e3:.4g} mJ (predicted range {lo * 1e3:.4g} to {hi * 1e3:.4g} mJ)")
    print()
    print_table(
        ["unit", "busy", "busy cycles", "% of call", "% of engine span"],
        [[u.name, seconds(u.busy_s), f"{u.busy_cycles:,.0f}", f"{100 * u.utilisation:.1f}",
          "" if u.name == "host" else f"{100 * u.engine_utilisation:.1f}"] for u in result.units.values()],
        right=(1, 2, 3, 4),
    )
    print()
    rows = []
    for t in result.tasks[:MAX_TASK_ROWS]:
        rows.append([
            t.index, t.name, t.kind, t.cores, t.passes, t.tiles, f"{t.cycles:,.0f}", f"{t.ne_cycles:,}",
            f"{t.planar_cycles:,}", f"{t.dram_activation_bytes:,}", f"{t.dram_weight_bytes:,}",
            f"{t.stall_input_cycles:,.0f}/{t.stall_weight_cycles:,.0f}/{t.stall_output_cycles:,.0f}",
            t.bound + (" (spilled: " + ", ".join(t.spilled) + ")" if t.spilled else ""),
        ])
    print_table(
        ["#", "task", "kind", "cores", "passes", "tiles", "cycles", "NE cyc", "planar cyc", "DRAM act B",
         "DRAM wt B", "stalls in/wt/out", "bound"],
        rows, right=(0, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    )
    if len(result.tasks) > MAX_TASK_ROWS:
        print(f"... {len(result.tasks) - MAX_TASK_ROWS} more tasks (use --json for all)")
    if result.host_tasks:
        print()
        print(f"CPU fallback: {len(result.host_tasks)} host operation(s), {seconds(result.host_s)} with "
              f"{result.handoffs} handoff(s)")
        print_table(["op", "name", "start", "time", "FLOP", "bytes", "why on the CPU"],
                    [[h.op, h.name, seconds(h.start_s), seconds(h.end_s - h.start_s), f"{h.flops:,.0f}",
                      f"{h.bytes:,}", h.reason[:90]] for h in result.host_tasks[:MAX_TASK_ROWS]],
                    right=(2, 3, 4, 5))
