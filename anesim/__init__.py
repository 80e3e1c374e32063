"""anesim: a cycle-approximate simulator of the Apple Neural Engine.

The public API, one function per step of the pipeline::

    program = anesim.load("conv.hwx")                  # or a program YAML / ONNX / Core ML model
    outputs = anesim.execute(program, {"image": x})    # what the engine computes, fp16 numerics
    timing = anesim.simulate(program, "m1")            # how long it takes, and why
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anesim.errors import AnesimError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from anesim.chips.schema import ChipConfig
    from anesim.compiler.result import CompileResult
    from anesim.program.model import Program
    from anesim.timing.result import TimingResult

__version__ = "0.1.0"

__all__ = ["AnesimError", "__version__", "compile", "encode", "execute", "load", "simulate"]

MODEL_SUFFIXES = (".yaml", ".yml", ".onnx", ".mlpackage", ".mlmodel", ".plist")


def is_model_file(path: str | Path) -> bool:
    """Whether a path names a model the compiler reads (rather than a compiled program)."""
    return Path(path).suffix.lower() in MODEL_SUFFIXES


def load(path: str | Path, *, chip: ChipConfig | str = "m1", sidecar: str | Path | None = None,
         raw_buffer: bool = False, approximate: bool = False) -> Program:
    """A Program from a compiled file (.hwx, raw command buffer) or a model compiled for ``chip``.

    A compiled file whose registers ask for something anesim would have to guess (a mode no
    source describes) raises ``ApproximationError``; ``approximate=True`` loads it anyway and
    leaves the notes in ``program.approximations`` / ``program.warnings``. ``ANESIM_STRICT=1``
    refuses timing-only notes as well.
    """
    if is_model_file(path):
        if sidecar is not None:
            from anesim.errors import InputError

            raise InputError("a sidecar describes a raw command buffer's tensors; a model file has its own",
                             file=path, expected="no sidecar", found=f"sidecar {sidecar}")
        return compile(path, chip).program
    from anesim.hwx import load as _load_decoded
    from anesim.hwx.to_program import build_program
    from anesim.program.notes import enforce

    program = build_program(_load_decoded(path, sidecar=sidecar, raw_buffer=raw_buffer))
    enforce(program.approximations, str(path), approximate=approximate)
    return program


def compile(model: Any, chip: ChipConfig | str = "m1",  # noqa: A001 - the verb users expect
            params: dict[str, Any] | None = None) -> CompileResult:
    """Compile a model file or a builder graph for a chip; the result holds program and report.
    ``params`` set a program file's ``params:``. What the import could express only approximately
    is left as timing notes in ``result.program.approximations`` (errors under ``ANESIM_STRICT=1``)."""
    from anesim.compiler import compile_file, compile_graph
    from anesim.compiler.graph import Graph
    from anesim.program.notes import enforce

    graph = model if isinstance(model, Graph) else getattr(model, "graph", None)
    if isinstance(graph, Graph):
        if params:
            from anesim.errors import UnsupportedError

            raise UnsupportedError("only program files take parameters; a graph is built already",
                                   found=", ".join(params))
        result = compile_graph(graph, chip)
        enforce(result.program.approximations, graph.source or None)
        return result
    result = compile_file(model, chip, params=params)
    enforce(result.program.approximations, str(model))
    return result


def encode(program_or_decoded: Any) -> bytes:
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


def execute(program: Program | CompileResult, inputs: Mapping[str, np.ndarray],
            chip: ChipConfig | str | None = None, *, numerics: str = "exact") -> dict[str, np.ndarray]:
    """Run a Program (or a compiled model, host work included) on named NCHW inputs.

    ``numerics="exact"`` (the default) reproduces the engine's fp16 reduction rule bit for bit;
    ``numerics="fast"`` sums in float32 BLAS and rounds once per output (docs/numerics.md).
    """
    from anesim.chips import load_chip
    from anesim.functional import check_numerics
    from anesim.functional import execute as _execute
    from anesim.program.model import Program as _Program

    check_numerics(numerics)

    config = load_chip(chip) if isinstance(chip, str) else chip
    if isinstance(program, _Program):
        return _execute(program, inputs, config, numerics)
    return program.execute(inputs, lambda segment, feeds: _execute(segment, feeds, config, numerics))


def simulate(program: Any, chip: ChipConfig | str = "m1", **options: Any) -> TimingResult:
    """Time a Program on a chip (a ChipConfig, a chip name or a YAML path); returns a TimingResult."""
    from anesim.timing import simulate as _simulate

    return _simulate(program, chip, **options)
