"""Build the example's model, a small image classifier, with the ONNX helper API.

    python make_model.py [--out tiny_cnn.onnx] [--weight-scale 1.0]

Writes the model and ``reference.npz``: a seeded input ``x`` and the float64 output ``y`` the
model should compute, the reference the tests compare anesim's fp16 run against.
``--weight-scale`` multiplies the first convolution's weights (a retrain gone wrong: at 1000
its outputs overflow fp16).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS_IN, CHANNELS, CLASSES, SIDE = 16, 32, 10, 32
SEED = 7


def weights(weight_scale: float = 1.0) -> dict[str, np.ndarray]:
    """The model's seeded parameters (He-style scaling)."""
    rng = np.random.default_rng(SEED)
    return {
        "w1": (rng.standard_normal((CHANNELS, CHANNELS_IN, 3, 3)) * np.sqrt(2 / (9 * CHANNELS_IN))
               * weight_scale).astype(np.float32),
        "b1": (0.1 * rng.standard_normal(CHANNELS)).astype(np.float32),
        "w2": (rng.standard_normal((CHANNELS, CHANNELS, 1, 1)) * np.sqrt(2 / CHANNELS)).astype(np.float32),
        "b2": (0.1 * rng.standard_normal(CHANNELS)).astype(np.float32),
        "wf": (rng.standard_normal((CLASSES, CHANNELS)) / np.sqrt(CHANNELS)).astype(np.float32),
        "bf": (0.1 * rng.standard_normal(CLASSES)).astype(np.float32),
    }


def build(params: dict[str, np.ndarray]) -> onnx.ModelProto:
    """conv 3x3 + relu -> conv 1x1 + relu -> global average pool -> fully connected."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS_IN, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(v, k) for k, v in params.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """float64 convolution, stride 1, by shifted windows."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    h, wd = x.shape[2:]
    out = np.zeros((x.shape[0], w.shape[0], h, wd))
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, ky:ky + h, kx:kx + wd], w[:, :, ky, kx])
    return out + b[None, :, None, None]


def reference(x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """The model in float64 numpy."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    r1 = np.maximum(_conv(x.astype(np.float64), p["w1"], p["b1"], 1), 0)
    r2 = np.maximum(_conv(r1, p["w2"], p["b2"], 0), 0)
    f = r2.mean(axis=(2, 3))
    return f @ p["wf"].T + p["bf"]


def main(argv: list[str] | None = None) -> None:
    """Write the model and its reference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("tiny_cnn.onnx")))
    parser.add_argument("--weight-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    params = weights(args.weight_scale)
    out = Path(args.out)
    onnx.save(build(params), out)
    x = np.random.default_rng(SEED + 1).uniform(-1, 1, (1, CHANNELS_IN, SIDE, SIDE)).astype(np.float16)
    np.savez(out.with_name("reference.npz"), x=x, y=reference(x, params))
    print(f"wrote {out} and {out.with_name('reference.npz')}")


if __name__ == "__main__":
    main()
