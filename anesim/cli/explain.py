"""``anesim explain``: which resource bounds each task and layer of a program, with the numbers."""

from __future__ import annotations

import argparse
from typing import Any

from anesim.cli.options import add_limit_options, add_param_option, program_params, refuse_program_options
from anesim.cli.output import print_json, print_table

MAX_ROWS = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``explain`` subcommand."""
    p = subparsers.add_parser(
        "explain", help="say what bounds each layer and task: compute, DRAM, L2 spills or dispatch",
        description="Time FILE on the chip and, for each layer (tasks summed) and with --tasks each task, "
                    "set its simulated time against the time each resource alone would need: compute, DRAM "
                    "bandwidth, L2 capacity (spilled operands) and dispatch overhead. The verdict is the "
                    "resource closest to the simulated time; the chip-file keys behind each resource follow.")
    p.add_argument("file", help="a compiled program (.hwx, raw command buffer) or a model (program YAML, ONNX, Core ML)")
    p.add_argument("--chip", default="m1", help="chip name, alias or YAML path (default: m1)")
    p.add_argument("--tasks", action="store_true", help="also list every task")
    add_param_option(p)
    p.add_argument("--json", action="store_true", help="print the whole explanation as one JSON object")
    p.add_argument("--sidecar", metavar="FILE", help="the sidecar describing a raw command buffer's tensors")
    add_limit_options(p)
    p.set_defaults(func=run)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f}"


def run(args: argparse.Namespace) -> int:
    """Load, time, explain and print."""
    import anesim
    from anesim.chips import load_chip
    from anesim.report.explain import RESOURCES, explain

    params = program_params(args.param, args.file)
    chip = load_chip(args.chip)
    if anesim.is_model_file(args.file):
        refuse_program_options(args.file, sidecar=args.sidecar)
        target: Any = anesim.compile(args.file, chip, params)
    else:
        target = anesim.load(args.file, sidecar=args.sidecar)
    e = explain(target, chip)
    if args.json:
        print_json({"file": str(args.file), **e.to_dict()})
        return 0
    print(f"{args.file}: program '{e.program}' on {e.chip}: latency {_us(e.latency_s)} µs, "
          f"dispatch {_us(sum(e.dispatch_s.values()))} µs per call ("
          + ", ".join(f"{k.replace('_', ' ')} {_us(v)}" for k, v in e.dispatch_s.items()) + ")")
    if e.host_tasks:
        ops = ", ".join(f"{h.op} '{h.name}'" for h in e.host_tasks[:6]) + (" ..." if len(e.host_tasks) > 6 else "")
        print(f"CPU fallback: {len(e.host_tasks)} layer(s) run on the CPU, {_us(e.host_s)} µs with the handoffs "
              f"(an estimate from the chip's cpu.* rates; not in the table below): {ops}")
    share = e.bound_share()
    print("time by bound: " + ", ".join(f"{r} {100 * share[r]:.0f} %" for r in RESOURCES))
    print("each column is the time that resource alone needs (µs); the bound is the one closest to the "
          "simulated time; 'explained' = bound time / simulated time")
    print()
    head = ["layer", "tasks", "simulated µs", *[f"{r} µs" for r in RESOURCES], "bound", "explained"]
    rows = [[lay.layer, len(lay.tasks), _us(lay.simulated_s), *[_us(lay.times_s[r]) for r in RESOURCES],
             lay.bound, f"{100 * lay.explained:.0f} %"] for lay in e.layers[:MAX_ROWS]]
    print_table(head, rows, right=(1, 2, 3, 4, 5, 6, 8))
    if len(e.layers) > MAX_ROWS:
        print(f"... {len(e.layers) - MAX_ROWS} more layers (use --json for all)")
    if args.tasks:
        print()
        rows = [[t.index, t.name, t.kind, _us(t.simulated_s), *[_us(t.times_s[r]) for r in RESOURCES], t.bound,
                 t.waited_on, f"{100 * t.numbers['mac_utilisation']:.1f}",
                 f"{t.numbers['dram_activation_bytes']:,}/{t.numbers['dram_weight_bytes']:,}",
                 ", ".join(t.spilled)] for t in e.tasks[:MAX_ROWS * 4]]
        print_table(["#", "task", "kind", "simulated µs", *[f"{r} µs" for r in RESOURCES], "bound", "stalled on",
                     "MAC util %", "DRAM B act/wt", "spilled"], rows, right=(0, 3, 4, 5, 6, 7, 10, 11))
    print()
    print("chip keys behind each resource (change one in a copy of the chip file and re-run):")
    for r in RESOURCES:
        keys = ", ".join(f"{k['key']} = {k['value']:g}" if isinstance(k["value"], (int, float)) else
                         f"{k['key']} = {k['value']}" for k in e.keys[r])
        print(f"  {r}: {keys}")
        print(f"      {e.levers[r]}")
    return 0
