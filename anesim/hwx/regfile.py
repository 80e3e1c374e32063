"""The engine's register file as a program's tasks leave it, read by register and field name.

Registers are stateful across tasks: a task rewrites only what changes (command-stream.md §3.5),
so anything that interprets a task looks at the register file after all earlier writes.
"""

from __future__ import annotations

from anesim.hwx.regmaps import RegisterMap


class RegisterFile:
    """Register values by byte address, with lookups by the map's names."""

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        self.values: dict[int, int] = {}
        self.written: set[int] = set()  # addresses written by the latest task

    def apply(self, writes: list[tuple[int, int]]) -> None:
        """Apply one task's writes in order."""
        self.written = set()
        for addr, value in writes:
            self.values[addr] = value
            self.written.add(addr)

    def has(self, name: str) -> bool:
        """Whether the named register has been written at all."""
        reg = self.regmap.by_name(name)
        return reg is not None and reg.addr in self.values

    def word(self, name: str, default: int = 0) -> int:
        """The raw value of the named register (``default`` if never written or unknown)."""
        reg = self.regmap.by_name(name)
        if reg is None:
            return default
        return self.values.get(reg.addr, default)

    def field(self, name: str, field: str, default: int = 0) -> int:
        """One field of the named register (``default`` if never written or not in this map)."""
        reg = self.regmap.by_name(name)
        if reg is None or reg.addr not in self.values:
            return default
        for f in reg.fields:
            if f.name == field:
                return f.get(self.values[reg.addr])
        return default

    def sem(self, meaning: str, default: int = 0) -> int:
        """The quantity the map's ``semantics`` table names ``meaning`` (e.g. 'cin')."""
        where = self.regmap.semantics.get(meaning)
        if where is None:
            return default
        reg, fld = where
        return self.field(reg, fld, default) if fld else self.word(reg, default)

    def sem_written(self, meaning: str) -> bool:
        """Whether the register behind ``meaning`` has ever been written."""
        where = self.regmap.semantics.get(meaning)
        return where is not None and self.has(where[0])
