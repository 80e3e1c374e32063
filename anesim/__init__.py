"""anesim: a cycle-approximate simulator of the Apple Neural Engine."""

from anesim.errors import AnesimError

__version__ = "0.1.0"

__all__ = ["AnesimError", "__version__", "simulate"]


def simulate(program, chip="m1", **options):  # type: ignore[no-untyped-def]
    """Time a Program on a chip (a ChipConfig, a chip name or a YAML path); returns a TimingResult."""
    from anesim.timing import simulate as _simulate

    return _simulate(program, chip, **options)
