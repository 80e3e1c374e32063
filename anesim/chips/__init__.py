"""Chip configurations: the schema, provenance and the loader."""

from anesim.chips.loader import all_chips, builtin_chip_dir, load_chip, load_chip_file
from anesim.chips.params import PROVENANCES, Param
from anesim.chips.schema import ChipConfig

__all__ = ["ChipConfig", "Param", "PROVENANCES", "all_chips", "builtin_chip_dir", "load_chip", "load_chip_file"]
