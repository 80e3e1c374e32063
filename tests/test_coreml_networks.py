"""What the Core ML conversions of the real networks need from the Core ML importer
(docs/networks.md): 1-D convolutions (Whisper's front end) and negative transpose axes (the
converter's head split in DistilBERT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anesim


@pytest.fixture(scope="module")
def ct():
    return pytest.importorskip("coremltools", reason="Core ML packages are written with coremltools (a test extra)")


def test_1d_convolution_and_negative_transpose_axes(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((8, 4, 3)) / 4).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 16))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=weight, bias=bias, strides=[2], pad_type="custom", pad=[1, 1], name="conv1d")
        y = mb.reshape(x=y, shape=[1, 2, 4, 8], name="heads")
        return mb.transpose(x=y, perm=[0, 2, -3, -1], name="swap")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    path = tmp_path / "conv1d.mlpackage"
    model.save(str(path))
    x = rng.standard_normal((1, 4, 16)).astype(np.float32)
    compiled = anesim.compile(path, "m5-pro")
    (got,) = anesim.execute(compiled, {"x": x}, "m5-pro").values()

    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    conv = np.stack([np.einsum("ck,nck->n", weight[o], np.stack([padded[:, :, 2 * i:2 * i + 3] for i in range(8)], 1)
                               .reshape(8, 4, 3)) for o in range(8)]) + bias[:, None]
    want = conv.reshape(1, 2, 4, 8).transpose(0, 2, 1, 3)
    assert np.asarray(got).shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2 ** -7, atol=2 ** -7 * np.abs(want).max())
