"""``anesim check``: does a model run on the Neural Engine, layer by layer, and why not."""

from __future__ import annotations

import argparse

from anesim.cli.options import add_limit_options, add_param_option, program_params
from anesim.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand."""
    p = subparsers.add_parser(
        "check", help="where each layer runs (engine or host), the rule that decided and what the cuts cost",
        description="Place every layer of MODEL (.onnx, Core ML, programs/*.yaml, .plist) on the engine or the "
                    "host of a chip with the rule and its source, the segments, the cost of each cut and the "
                    "engine's share of MACs and predicted time.")
    p.add_argument("model", help="the model file")
    p.add_argument("--chip", default="m1", help="chip name or alias, or 'all' for one column per chip (default m1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="write a figure of the segments")
    p.add_argument("--fix", action="store_true", help="apply the safe rewrites and show the predicted gain")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="bind a dynamic dimension (default 1); with --fix the bound shape becomes static")
    add_param_option(p)
    add_limit_options(p)
    p.set_defaults(func=run)


def _dims(items: list[str]) -> dict[str, int]:
    from anesim.errors import InputError

    out = {}
    for item in items:
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise InputError("--dim takes NAME=SIZE with a positive size", found=item)
        out[name] = int(size)
    return out


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    print(f"{report.model} on {report.chip} ({report.tier} tier): {report.segments} segment(s), "
          f"{report.engine_mac_fraction:.1%} of MACs and {report.engine_time_fraction:.1%} of predicted time on the engine")
    print(f"predicted {report.total_s * 1e3:.3f} ms = engine {report.engine_s * 1e3:.3f} + host {report.host_s * 1e3:.3f} "
          f"+ cut transfers {report.transfer_s * 1e3:.3f}")
    print(f"{'layer':32} {'op':14} {'runs on':26} {'segment':22} {'MMAC':>8} {'ms':>8}  rule")
    for r in report.layers:
        star = "*" if r.assumed else ""
        print(f"{r.name[:32]:32} {r.op[:14]:14} {r.placement[:26]:26} {r.segment[:22]:22} {r.macs / 1e6:8.2f} "
              f"{r.time_s * 1e3:8.4f}  {r.rule}{star}")
    host = report.host_layers()
    if host:
        print("\nlayers off the engine:")
        for r in host:
            print(f"  {r.name}: {r.reason}\n    rule '{r.rule}' — {r.citation}")
            if r.suggestion:
                print(f"    suggestion: {r.suggestion}")
    for c in report.cuts:
        where = f"after segment {c.after_segment}" if c.after_segment >= 0 else "before segment 0"
        print(f"cut {where} ({', '.join(c.host_layers)}): +{c.dispatch_s * 1e3:.3f} ms dispatch, "
              f"{c.transfer_bytes} B across ({c.transfer_s * 1e3:.4f} ms), host {c.host_compute_s * 1e3:.4f} ms")
    for w in report.warnings:
        print(f"warning: {w}")


def _print_matrix(matrix: dict) -> None:  # type: ignore[type-arg]
    chips = [c["name"] for c in matrix["chips"]]
    print(f"{matrix['model']}: E = engine, H = host, per chip")
    print(f"{'layer':28} {'op':12} " + " ".join(f"{c[:7]:>7}" for c in chips))
    for row in matrix["layers"]:
        cells = " ".join(f"{('E' if row['cells'][c]['engine'] else 'H'):>7}" for c in chips)
        print(f"{row['name'][:28]:28} {row['op'][:12]:12} {cells}")
    print(f"{'MACs on engine':41} " + " ".join(f"{matrix['engine_mac_fraction'][c]:7.0%}" for c in chips))


def run(args: argparse.Namespace) -> int:
    """Run the check and print it."""
    from anesim.check.load import load_for_check
    from anesim.check.report import check_graph, placement_matrix
    from anesim.chips import all_chips, load_chip
    from anesim.errors import InputError

    if args.chip == "all" and (args.fix or args.plot):
        raise InputError("--chip all prints one column per chip; --fix and --plot work on one chip's report",
                         expected="--chip NAME with --fix or --plot",
                         found="--chip all " + " ".join(flag for flag, on in (("--fix", args.fix),
                                                                             ("--plot", args.plot)) if on))
    dims = _dims(args.dim)
    params = program_params(args.param, args.model)
    graph, dynamic = load_for_check(args.model, dims=dims, params=params)
    if args.chip == "all":
        matrix = placement_matrix(graph, all_chips())
        if args.json:
            print_json(matrix)
        else:
            _print_matrix(matrix)
        return 0
    chip = load_chip(args.chip)
    report = check_graph(graph, chip)
    out = {"report": report.to_dict()}
    if args.fix:
        from anesim.check.fixes import apply_fixes
        from anesim.compiler.graph.passes import run_passes
        from anesim.compiler.lowering.capability import decisions, limits_of

        fixed_graph = graph
        applied = []
        if dynamic:
            fixed_graph, _ = load_for_check(args.model, dims=dims, static=True, params=params)
            applied.append({"fix": "static-shape", "layer": ", ".join(dynamic),
                            "what": "dynamic dimensions bound to " + ", ".join(f"{d}={dims.get(d, 1)}" for d in dynamic)})
        passed = run_passes(fixed_graph)
        fixes = {n: d.fix for n, d in decisions(passed, chip).items() if d.host_reason and d.fix}
        fixed_graph, more = apply_fixes(passed, limits_of(chip), fixes)
        applied += [vars(a) for a in more]
        after = check_graph(fixed_graph, chip)
        out["fix"] = {"applied": applied, "after": after.to_dict(),
                      "gain_s": report.total_s - after.total_s}
    if args.plot:
        from anesim.check.plot import plot_segments

        plot_segments(report, args.plot)
    if args.json:
        print_json(out)
        return 0
    _print_report(report)
    if args.fix:
        fix = out["fix"]
        print("\n--fix:" if fix["applied"] else "\n--fix: no safe rewrite applies")
        for a in fix["applied"]:
            print(f"  {a['layer']}: {a['fix']}: {a['what']}")
        print()
        _print_report(after)
        print(f"\npredicted gain: {report.total_s * 1e3:.3f} ms -> {after.total_s * 1e3:.3f} ms "
              f"({fix['gain_s'] * 1e3:+.3f} ms saved)")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
