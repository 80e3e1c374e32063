"""Export the real networks from their reference implementations as anesim network specs.

Needs torch, torchvision, transformers and diffusers (``pip install 'anesim[export]'``) and,
for ``--coreml``, coremltools. Every network is built from its reference implementation with
random weights (no download), exported to ONNX with ``torch.onnx.export``, and written here as
``NAME.spec.onnx``: the exported graph with its large weights replaced by their statistics
(``anesim.onnx_networks.describe``). ``python -m anesim.onnx_networks`` rebuilds a complete model
from a spec with seeded weights; tests/test_onnx_networks.py runs them (docs/networks.md).

    python examples/networks/export.py                    # every spec
    python examples/networks/export.py resnet18 --coreml OUT   # and NAME.mlpackage under OUT
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from anesim.onnx_networks import describe

HERE = Path(__file__).resolve().parent
OPSET = 18


def _resnet18():
    import torchvision

    return torchvision.models.resnet18(weights=None), {"image": (1, 3, 64, 64)}


def _mobilenet_v2():
    import torchvision

    return torchvision.models.mobilenet_v2(weights=None), {"image": (1, 3, 64, 64)}


def _efficientnet_b0():
    import torchvision

    return torchvision.models.efficientnet_b0(weights=None), {"image": (1, 3, 64, 64)}


def _vit_b16():
    import torchvision

    # ViT-B/16 (12 layers, width 768, 12 heads) at 64x64: 16 patches and the class token. The
    # reference implementation takes the image size as a parameter (its position embeddings).
    model = torchvision.models.vit_b_16(weights=None, image_size=64)
    # torchvision initialises the classifier to zeros (to be trained); a zero head would make the
    # output independent of the whole network, so it gets the scale of the other linear layers.
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model, {"image": (1, 3, 64, 64)}


class _DistilBert(torch.nn.Module):
    """DistilBERT from its token embeddings on (the ids' lookup takes integer data, see docs)."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import DistilBertConfig, DistilBertModel

        self.model = DistilBertModel(DistilBertConfig())

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=embeddings).last_hidden_state


def _distilbert():
    return _DistilBert(), {"embeddings": (1, 32, 768)}


class _WhisperEncoder(torch.nn.Module):
    """The encoder of WhisperModel with the tiny configuration (4 layers, width 384, 6 heads)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        from transformers import WhisperConfig, WhisperModel

        config = WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, decoder_layers=4,
                               decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
                               num_mel_bins=80, max_source_positions=frames // 2)
        self.encoder = WhisperModel(config).get_encoder()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel).last_hidden_state


def _whisper_tiny_encoder():
    # 30 s of audio is 3000 mel frames (1500 positions); the encoder's position table is sized
    # by max_source_positions, so a shorter window is the same network with a shorter table.
    return _WhisperEncoder(frames=400), {"mel": (1, 80, 400)}


class _UNetDownBlock(torch.nn.Module):
    """Stable Diffusion 1.5's first cross-attention down block (320 channels, 8 heads, text 768)."""

    def __init__(self) -> None:
        super().__init__()
        from diffusers.models.unets.unet_2d_blocks import CrossAttnDownBlock2D

        self.block = CrossAttnDownBlock2D(in_channels=320, out_channels=320, temb_channels=1280, num_layers=2,
                                          transformer_layers_per_block=1, resnet_groups=32,
                                          cross_attention_dim=768, num_attention_heads=8, add_downsample=True)

    def forward(self, sample: torch.Tensor, temb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.block(sample, temb, encoder_hidden_states=text)
        return hidden


def _sd_unet_down_block():
    return _UNetDownBlock(), {"sample": (1, 320, 16, 16), "temb": (1, 1280), "text": (1, 77, 768)}


NETWORKS = {
    "resnet18": _resnet18,
    "mobilenet_v2": _mobilenet_v2,
    "efficientnet_b0": _efficientnet_b0,
    "vit_b16": _vit_b16,
    "distilbert": _distilbert,
    "whisper_tiny_encoder": _whisper_tiny_encoder,
    "sd_unet_down_block": _sd_unet_down_block,
}


def _calibrate_batch_norms(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], batch: int = 16) -> None:
    """Set every batch norm's running statistics to those of its input on random data.

    A freshly initialised network's batch norms hold mean 0 and variance 1, so in eval mode the
    activations shrink or grow layer by layer (MobileNetV2's output falls to 1e-9, below fp16's
    range) where a trained network's statistics keep them near unit scale. One pass in
    training mode over a random batch, averaging (momentum None), gives them that scale.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(*(torch.randn(batch, *shape[1:]) for shape in shapes.values()))


def build(name: str) -> tuple[torch.nn.Module, dict[str, tuple[int, ...]]]:
    """The network in eval mode with seeded random weights, and its input shapes."""
    torch.manual_seed(0)
    model, shapes = NETWORKS[name]()
    _calibrate_batch_norms(model, shapes)
    return model.eval(), shapes


def export_onnx(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], path: Path) -> onnx.ModelProto:
    """The network exported with torch's ONNX exporter, weights inside the file."""
    args = tuple(torch.randn(*shape) for shape in shapes.values())
    torch.onnx.export(model, args, str(path), input_names=list(shapes), output_names=["output"],
                      opset_version=OPSET, dynamo=True, external_data=False)
    return onnx.load(str(path))


def export_coreml(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], path: Path) -> Path:
    """The network converted with coremltools (an ML program, fp16) from a traced module."""
    import coremltools as ct

    args = tuple(torch.randn(*shape) for shape in shapes.values())
    kinds = {"inputs": [ct.TensorType(name=n, shape=s) for n, s in shapes.items()],
             "outputs": [ct.TensorType(name="output")], "convert_to": "mlprogram",
             "minimum_deployment_target": ct.target.iOS16}
    try:
        # the trace check re-runs the model and compares; attention's fused kernels differ in the
        # last bits between runs, which is not a failure of the trace
        mlmodel = ct.convert(torch.jit.trace(model, args, check_trace=False), **kinds)
    except Exception:  # noqa: BLE001 - coremltools' TorchScript frontend lacks an op: try torch.export
        kinds.pop("inputs")
        kinds.pop("outputs")
        mlmodel = ct.convert(torch.export.export(model, args).run_decompositions({}), **kinds)
    mlmodel.save(str(path))
    return path


KEPT_METADATA = ("namespace",)  # the module path of each node; stack traces name the exporting machine's files


def _without_traces(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the exporter's per-node stack traces and FX records."""
    for node in model.graph.node:
        kept = [(p.key, p.value) for p in node.metadata_props if p.key in KEPT_METADATA]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"networks (default: all of {', '.join(NETWORKS)})")
    p.add_argument("--out", type=Path, default=HERE, help="where the specs go (default: beside this script)")
    p.add_argument("--full", type=Path, help="also keep the complete exported .onnx files here")
    p.add_argument("--coreml", type=Path, help="also write NAME.mlpackage (coremltools) here")
    args = p.parse_args()
    for name in args.names or NETWORKS:
        model, shapes = build(name)
        with tempfile.TemporaryDirectory() as tmp:
            full = (args.full or Path(tmp)) / f"{name}.onnx"
            full.parent.mkdir(parents=True, exist_ok=True)
            exported = export_onnx(model, shapes, full)
            spec = describe(_without_traces(exported))
            spec.doc_string = (f"{name}: {type(model).__name__} from its reference implementation, random "
                               f"weights, exported by torch {torch.__version__} (examples/networks/export.py)")
            out = args.out / f"{name}.spec.onnx"
            onnx.save(spec, str(out))
            print(f"{out}: {out.stat().st_size / 1024:.0f} KiB, {len(spec.graph.node)} nodes, "
                  f"{np.sum([1 for t in spec.graph.initializer if t.doc_string])} weights as statistics")
        if args.coreml:
            args.coreml.mkdir(parents=True, exist_ok=True)
            print(export_coreml(model, shapes, args.coreml / f"{name}.mlpackage"))


if __name__ == "__main__":
    main()
