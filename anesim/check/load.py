"""Read any model ``anesim check`` accepts into a graph (ONNX keeps what the compiler would refuse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anesim.compiler.api import load_graph
from anesim.compiler.graph.graph import Graph


def load_for_check(path: str | Path, *, dims: dict[str, int] | None = None, static: bool = False,
                   params: dict[str, Any] | None = None) -> tuple[Graph, list[str]]:
    """The graph of a model file and its dynamic dimensions (ONNX only has any); ``params`` set a
    program file's ``params:``."""
    file = Path(path)
    if file.suffix.lower() == ".onnx":
        from anesim.check.onnx_model import load_onnx_for_check

        return load_onnx_for_check(file, dims=dims, static=static)
    if dims:
        from anesim.errors import InputError

        raise InputError("--dim binds an ONNX model's dynamic dimensions; other formats have fixed shapes",
                         file=file, expected="an .onnx model", found=f"--dim {next(iter(dims))}")
    return load_graph(file, params), []
