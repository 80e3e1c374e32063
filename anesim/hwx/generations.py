"""Which ANE generation a program targets, and how that generation encodes its tasks.

Facts from ../shared/reference/command-stream.md §2.1 and §3.1 (cpusubtype enum after AlexAltea/ane
``hwx.h``; TD versions after its ``hwx_td_version_for_cpu``; header sizes and kernel-DMA channel
counts checked against the public samples).
"""

from __future__ import annotations

from dataclasses import dataclass

from anesim.errors import FormatError


@dataclass(frozen=True)
class Generation:
    """One compiler target: its names, TD format version and task-descriptor encoding."""

    name: str  # the compiler's target name, e.g. "H13"
    cpusubtype: int
    td_version: int
    encoding: str  # "A" (count/byte-address groups) or "B" (dense/sparse word groups)
    regmap: str  # register-map data file in anesim/hwx/regmaps/
    kernel_channels: int  # coefficient DMA channels = NE cores
    segment_header_bytes: int = 0  # encoding B: header in front of the first task
    aliases: tuple[str, ...] = ()


GENERATIONS: tuple[Generation, ...] = (
    Generation("M10", 0, 5, "A", "v5", 2, aliases=("M9",)),
    Generation("H11", 1, 5, "A", "v5", 8),
    Generation("T0", 2, 4, "A", "v5", 16),
    Generation("H12", 3, 6, "A", "v5", 8),
    Generation("H13", 4, 7, "A", "h13", 16, aliases=("M1", "H13G")),
    Generation("H14", 5, 11, "B", "h14", 16, 16, aliases=("M2",)),
    Generation("H15", 6, 8, "B", "h15", 16, 16, aliases=("M3",)),
    Generation("H16", 7, 17, "B", "h16", 16, 16, aliases=("M4", "H16G")),
    Generation("H17", 9, 19, "B", "h16", 16, 16, aliases=("M5", "H17G")),
    Generation("H18", 10, 20, "B", "h16", 16, 16),
)

_BY_SUBTYPE = {g.cpusubtype: g for g in GENERATIONS}
_BY_NAME = {n.upper(): g for g in GENERATIONS for n in (g.name, *g.aliases)}

# The Mach-O cputype of every ANE program (command-stream.md §2.1).
ANE_CPUTYPE = 0x80


def by_subtype(subtype: int, *, file: str | None = None, where: str = "byte 0x8") -> Generation:
    """The generation whose cpusubtype (low byte) is ``subtype``; unknown ones are a FormatError."""
    gen = _BY_SUBTYPE.get(subtype & 0xFF)
    if gen is None:
        known = ", ".join(f"{g.cpusubtype}={g.name}" for g in GENERATIONS)
        raise FormatError("unknown ANE generation", file=file, where=where,
                          expected=f"cpusubtype one of {known}", found=f"{subtype:#x}")
    return gen


def by_name(name: str, *, file: str | None = None, where: str | None = None) -> Generation:
    """The generation called ``name`` (case-insensitive; chip aliases such as 'M1' accepted)."""
    gen = _BY_NAME.get(str(name).upper())
    if gen is None:
        raise FormatError("unknown ANE generation", file=file, where=where,
                          expected=", ".join(g.name for g in GENERATIONS), found=repr(name))
    return gen
