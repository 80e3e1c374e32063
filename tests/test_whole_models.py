"""Whole-model programs: every program compiles and times (timing only) on the M1 and the M5 Pro,
and the networks have the published architecture (layer counts, multiply-accumulates, sizes)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from anesim.chips import load_chip
from anesim.compiler import compile_file, load_graph
from anesim.compiler.graph import Graph

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = sorted((REPO / "programs").glob("*.yaml"))
# Compile plus timing of the SD UNet on the M1 (89,000 tile steps) takes 1-2 s: it runs under
# -m slow (and in benchmarks/whole_models.py, which times every whole model on six chips).
SLOW = {("sd_unet", "m1")}

CASES = [pytest.param(p, chip, id=f"{p.stem}-{chip}",
                      marks=[pytest.mark.slow] if (p.stem, chip) in SLOW else [])
         for p in PROGRAMS for chip in ("m1", "m5-pro")]


@pytest.mark.parametrize("path, chip", CASES)
def test_program_compiles_and_times(path: Path, chip: str) -> None:
    from anesim.timing import simulate

    config = load_chip(chip)
    result = compile_file(path, config)
    assert result.program.tasks, path.name
    timing = simulate(result, config, trace=False)
    assert math.isfinite(timing.latency_s) and timing.latency_s > 0, f"{path.name} on {chip}"


def _graph(name: str) -> Graph:
    return load_graph(REPO / "programs" / f"{name}.yaml")


def _count(graph: Graph, op: str) -> int:
    return sum(1 for n in graph.nodes if n.op == op)


def _weights(graph: Graph, op: str) -> int:
    """Elements of the weight tensors of every ``op`` node."""
    return sum(math.prod(graph.info(n.inputs[1]).shape) for n in graph.nodes if n.op == op)


# Multiply-accumulates per image as published: torchvision's model tables (GFLOPS there counts
# one multiply-add) and the MobileOne and FastViT papers. (GMAC, tolerance: the table's rounding)
PUBLISHED_GMAC = {
    "resnet18": (1.81, 0.006), "resnet34": (3.66, 0.006), "resnet50": (4.09, 0.006),
    "resnet101": (7.80, 0.006), "mobilenet_v2": (0.30, 0.006), "mobilenet_v3_large": (0.22, 0.006),
    "mobilenet_v3_small": (0.06, 0.006), "efficientnet_b0": (0.39, 0.006), "mobileone_s0": (0.275, 0.003),
    "fastvit_t8": (0.7, 0.03),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMAC))
def test_vision_models_have_the_published_macs(name: str) -> None:
    want, tol = PUBLISHED_GMAC[name]
    assert _graph(name).macs() / 1e9 == pytest.approx(want, abs=tol)


@pytest.mark.parametrize("name, convs, adds", [
    ("resnet18", 20, 8), ("resnet34", 36, 16), ("resnet101", 104, 33), ("mobilenet_v2", 52, 10),
    ("mobileone_s0", 43, 0),
])
def test_layer_counts(name: str, convs: int, adds: int) -> None:
    graph = _graph(name)
    assert (_count(graph, "conv2d"), _count(graph, "add"), _count(graph, "linear")) == (convs, adds, 1)


def test_resnet18_layers() -> None:
    graph = _graph("resnet18")
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    kernels = sorted(graph.info(n.inputs[1]).shape[2] for n in convs)
    assert kernels == [1] * 3 + [3] * 16 + [7]
    assert graph.info(graph.outputs[0]).shape[1] == 1000
    # 11.69 M parameters (torchvision), batch norm folded into the biases
    params = _weights(graph, "conv2d") + _weights(graph, "linear") + 1000
    assert params == pytest.approx(11.69e6, rel=0.002)


def test_mobilenet_v3_large_blocks() -> None:
    graph = _graph("mobilenet_v3_large")
    depthwise = [n for n in graph.nodes if n.op == "conv2d" and n.attrs["groups"] > 1]
    assert len(depthwise) == 15
    assert sorted({graph.info(n.inputs[1]).shape[2] for n in depthwise}) == [3, 5]
    assert _count(graph, "global_avg_pool") == 8 + 1  # eight SE blocks and the head
    # hard-swish: stem, both convolutions of blocks 7-15, the head convolution and linear layer
    assert (_count(graph, "hard_swish"), _count(graph, "hard_sigmoid"), _count(graph, "mul")) == (21, 8, 8)


def _encoder_macs(layers: int, d: int, ff: int, seq: int) -> int:
    return layers * (4 * d * d * seq + 2 * d * ff * seq + 2 * seq * seq * d)


def test_bert_base_macs_at_sequence_128() -> None:
    graph = _graph("bert_base")
    assert graph.inputs["embeddings"].shape == (1, 768, 1, 128)
    assert graph.macs() == _encoder_macs(12, 768, 3072, 128) + 768 * 768  # + pooler: 11.17 GMAC
    assert _count(graph, "softmax") == 12 and _count(graph, "layer_norm") == 25


def test_distilbert_macs_at_sequence_128() -> None:
    graph = _graph("distilbert")
    assert graph.macs() == _encoder_macs(6, 768, 3072, 128) + 768 * 768 + 768 * 2


@pytest.mark.parametrize("size, d, heads, layers", [
    ("tiny", 384, 6, 4), ("base", 512, 8, 6), ("small", 768, 12, 12)])
def test_whisper_encoders(size: str, d: int, heads: int, layers: int) -> None:
    graph = _graph(f"whisper_{size}_encoder")
    stem = 80 * d * 3 * 3000 + d * d * 3 * 1500
    assert graph.macs() == stem + _encoder_macs(layers, d, 4 * d, 1500)
    scores = [n for n in graph.nodes if n.op == "softmax"]
    assert len(scores) == layers
    assert graph.info(scores[0].output).shape == (1, heads, 1500, 1500)


def test_sd_unet_structure() -> None:
    graph = _graph("sd_unet")
    assert _count(graph, "softmax") == 32  # 16 transformers: self- and cross-attention
    assert _count(graph, "layer_norm") == 48
    assert _count(graph, "rsqrt") == 61  # GroupNorms: 2 per resnet (22), 1 per transformer, the output
    # 859.5 M parameters in the diffusers UNet; left out here: the norms' scales and the biases
    weights = _weights(graph, "conv2d") + _weights(graph, "linear")
    assert weights == pytest.approx(859.5e6, rel=0.01)
    assert graph.info("noise").shape == (1, 4, 64, 64)


SD21_BASE = {"heads_320": 5, "heads_640": 10, "heads_1280": 20, "text_dim": 1024}


def test_sd_unet_params_give_the_sd21_base_unet() -> None:
    """SD 2.1-base: heads 64 wide (5, 10, 20), 1024-wide text states; batch 2 for a guided step."""
    sd15 = _graph("sd_unet")
    sd21 = load_graph(REPO / "programs" / "sd_unet.yaml", {**SD21_BASE, "batch": 2})
    assert sd21.inputs["text"].shape == (2, 1024, 1, 77)
    assert sd21.inputs["latent"].shape == (2, 4, 64, 64)
    assert sd21.info("noise").shape == (2, 4, 64, 64)
    scores = [sd21.info(n.output).shape for n in sd21.nodes if n.op == "softmax"]
    assert scores[0] == (2, 5, 4096, 4096)  # self-attention at 64x64: 5 heads
    assert scores[1] == (2, 5, 77, 4096)  # cross-attention on the 77 text tokens
    assert {s[1] for s in scores} == {5, 10, 20}
    scales = {n.attrs["scale"] for n in sd21.nodes if n.op == "scale" and n.output.endswith("scaled1")}
    assert scales == {0.125}  # 1 / sqrt(64) at every level
    # the 16 cross-attention K and V projections read 1024-wide text states instead of 768-wide:
    # 865.9 M parameters in the diffusers SD 2.1-base UNet against 859.5 M
    extra = 2 * (1024 - 768) * (5 * 320 + 5 * 640 + 6 * 1280)
    weights15, weights21 = (_weights(g, "conv2d") + _weights(g, "linear") for g in (sd15, sd21))
    assert weights21 - weights15 == extra


@pytest.mark.parametrize("name", ["llama_decode_step", "llama_decode_step_int8"])
def test_llama_decode_step(name: str) -> None:
    graph = _graph(name)
    linears = [n for n in graph.nodes if n.op == "linear"]
    fmt = "int8" if name.endswith("int8") else "fp16"
    assert {n.attrs["weight_format"] for n in linears} == {fmt}
    # TinyLlama-1.1B: 22 layers of (Q 2048 + K, V 256 + O 2048) x 2048 and a 3 x 2048 x 5632 FFN,
    # plus the 32000 x 2048 output head (the 65.5 M embedding table is the host's gather)
    layer = 2048 * (2048 + 256 + 256 + 2048) + 3 * 2048 * 5632
    assert _weights(graph, "linear") == 22 * layer + 32000 * 2048
    assert graph.info("logits").shape[1] == 32000
    assert _count(graph, "softmax") == 22
