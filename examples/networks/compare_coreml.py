"""Core ML conversions of the real networks through anesim, compared with ONNX Runtime.

Needs the export extra and coremltools (``pip install 'anesim[export,coreml,test]'``). For each
network: the torch model (export.py's, seeded random weights) is exported to ONNX and
converted with ``coremltools.convert`` (an ML program, fp16); anesim imports and runs the
``.mlpackage`` for the M5 Pro, ONNX Runtime runs the ONNX export, both on the same input and so
on the same weights. Prints one markdown row per network (docs/networks.md).

    python examples/networks/compare_coreml.py [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import export  # noqa: E402  (the networks and the exporters beside this script)

import anesim  # noqa: E402
from anesim.errors import AnesimError  # noqa: E402

CHIP = "m5-pro"


def compare(name: str, folder: Path) -> str:
    """One markdown row: import, host ops, max relative error, run time (or the refusal)."""
    import onnxruntime as ort

    model, shapes = export.build(name)
    onnx_path = folder / f"{name}.onnx"
    export.export_onnx(model, shapes, onnx_path)
    try:
        package = export.export_coreml(model, shapes, folder / f"{name}.mlpackage")
    except Exception as exc:  # noqa: BLE001 - coremltools' own failure is the result here
        return f"| {name} | coremltools cannot convert: {str(exc).splitlines()[0][:120]} | | | |"
    rng = np.random.default_rng(1)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    (expected,) = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"]).run(None, feeds)
    try:
        compiled = anesim.compile(package, CHIP)
    except AnesimError as exc:
        return f"| {name} | refused: {exc} | | | |"
    start = time.perf_counter()
    # torch.export conversions name the inputs after the forward's arguments: feed by position
    inputs = dict(zip(compiled.graph.inputs, feeds.values()))
    got = anesim.execute(compiled, inputs, CHIP, numerics="fast")
    seconds = time.perf_counter() - start
    value = np.asarray(next(iter(got.values())), np.float64).reshape(expected.shape)
    error = float(np.max(np.abs(value - expected)) / np.max(np.abs(expected)))
    return f"| {name} | yes | {len(compiled.host_ops)} | {error:.1e} | {seconds:.1f} s |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="networks (default: all)")
    args = p.parse_args()
    print("| network | Core ML import | host ops | max rel. error vs ONNX Runtime | run (fast numerics) |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names or export.NETWORKS:
            print(compare(name, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
