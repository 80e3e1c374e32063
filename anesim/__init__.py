"""anesim: a cycle-approximate simulator of the Apple Neural Engine."""

from anesim.errors import AnesimError

__version__ = "0.1.0"

__all__ = ["AnesimError", "__version__", "encode", "load", "simulate"]


def load(path, *, sidecar=None, raw_buffer: bool = False):  # type: ignore[no-untyped-def]
    """Decode a compiled ANE program (.hwx, or a raw H13 command buffer with a sidecar) into a Program."""
    from anesim.hwx import load as _load_decoded
    from anesim.hwx.to_program import build_program

    return build_program(_load_decoded(path, sidecar=sidecar, raw_buffer=raw_buffer))


def encode(program_or_decoded) -> bytes:  # type: ignore[no-untyped-def]
    """The program bytes of a Program from :func:`load`, a decoded program, or its JSON form."""
    from anesim.errors import UnsupportedError
    from anesim.hwx import encode as _encode
    from anesim.hwx.to_program import decoded_of
    from anesim.program.model import Program

    if isinstance(program_or_decoded, Program):
        decoded = decoded_of(program_or_decoded)
        if decoded is None:
            raise UnsupportedError("this Program was not decoded from a file, and emitting registers for "
                                   "a compiled Program is not implemented")
        return _encode(decoded)
    return _encode(program_or_decoded)


def simulate(program, chip="m1", **options):  # type: ignore[no-untyped-def]
    """Time a Program on a chip (a ChipConfig, a chip name or a YAML path); returns a TimingResult."""
    from anesim.timing import simulate as _simulate

    return _simulate(program, chip, **options)
