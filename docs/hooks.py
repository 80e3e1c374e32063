"""MkDocs hooks: pages generated from the code and the chip files at build time.

A page containing ``<!-- anesim:chip-table -->`` gets the table of every chip in chips/; one
containing ``<!-- anesim:cli -->`` gets every subcommand's ``--help``.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any


def chip_table() -> str:
    """A Markdown table of every shipped chip, from the chip files themselves."""
    from anesim.chips.loader import all_chips

    rows = ["| chip | generation | NE cores | clock (GHz) | peak fp16 (TFLOP/s) | activation DRAM (GB/s) "
            "| weight DRAM (GB/s) | working-set cap (MiB) | clock provenance |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    chips = sorted(all_chips(), key=lambda c: (c.name[0], c.identity.generation, c.name))
    for c in chips:
        rows.append(
            f"| {c.name} | {c.identity.generation} | {c.ne.cores.value} | {c.ne.clock_hz.value / 1e9:.3g} "
            f"| {c.peak_fp16_flops_per_s / 1e12:.2f} | {c.dram.activation_bytes_per_s.value / 1e9:.1f} "
            f"| {c.dram.weight_bytes_per_s.value / 1e9:.1f} | {c.memory.working_set_cap_bytes.value / 2**20:.2f} "
            f"| {c.ne.clock_hz.provenance} |")
    return "\n".join(rows)


def cli_help() -> str:
    """Every subcommand's help text, as fenced blocks."""
    from anesim.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = ["```text", parser.format_help().rstrip(), "```"]
    for name, p in sub.choices.items():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            p.print_help()
        out += [f"## anesim {name}", "", "```text", buf.getvalue().rstrip(), "```", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the generated sections of a page."""
    if "<!-- anesim:chip-table -->" in markdown:
        markdown = markdown.replace("<!-- anesim:chip-table -->", chip_table())
    if "<!-- anesim:cli -->" in markdown:
        markdown = markdown.replace("<!-- anesim:cli -->", cli_help())
    return markdown
