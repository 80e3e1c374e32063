"""The shipped programs' params: (sequence length, batch, resolution): defaults and swept scaling."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from anesim.cli import main
from anesim.compiler.frontends.program_file import declared_params, load_program_file

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "programs"

SEQUENCE = {"transformer_block": 128, "distilbert": 128, "bert_base": 128, "whisper_tiny_encoder": 1500,
            "whisper_base_encoder": 1500, "whisper_small_encoder": 1500}
IMAGE = {"resnet18": 224, "resnet34": 224, "resnet50": 224, "resnet101": 224, "mobilenet_v2": 224,
         "mobilenet_v3_large": 224, "mobilenet_v3_small": 224, "efficientnet_b0": 224, "mobileone_s0": 224,
         "fastvit_t8": 256}
# the input each program's default params must give: the shapes the descriptions state
DEFAULT_INPUTS = {"transformer_block": ("x", (1, 768, 1, 128)),
                  "distilbert": ("embeddings", (1, 768, 1, 128)),
                  "bert_base": ("embeddings", (1, 768, 1, 128)),
                  **{f"whisper_{size}_encoder": ("mel", (1, 80, 1, 3000)) for size in ("tiny", "base", "small")}}


def test_programs_declare_their_params() -> None:
    """Transformers declare seq, CNNs batch and resolution, with the defaults they were written at."""
    for name, seq in SEQUENCE.items():
        assert declared_params(PROGRAMS / f"{name}.yaml") == {"seq": seq}, name
    for name, side in IMAGE.items():
        assert declared_params(PROGRAMS / f"{name}.yaml") == {"batch": 1, "resolution": side}, name


@pytest.mark.parametrize("name", [*DEFAULT_INPUTS, "resnet18", "fastvit_t8"])
def test_defaults_give_the_described_shapes(name: str) -> None:
    graph = load_program_file(PROGRAMS / f"{name}.yaml")
    if name in DEFAULT_INPUTS:
        tensor, shape = DEFAULT_INPUTS[name]
    else:
        tensor, shape = "image", (1, 3, IMAGE[name], IMAGE[name])
    assert graph.inputs[tensor].shape == shape


def test_whisper_constant_follows_the_sequence_length() -> None:
    """The positional embedding (a constant) takes its width from seq, the spectrogram twice that."""
    graph = load_program_file(PROGRAMS / "whisper_tiny_encoder.yaml", params={"seq": 100})
    assert graph.inputs["mel"].shape == (1, 80, 1, 200)
    assert graph.constants["position"].shape == (1, 384, 1, 100)


def _sweep(tmp_path: Path, program: str, *params: str) -> list[dict[str, str]]:
    out = tmp_path / "out"
    args = ["sweep", str(PROGRAMS / f"{program}.yaml"), "--chips", "m1", "--out", str(out), "--workers", "0",
            "--no-progress"]
    for p in params:
        args += ["--param", p]
    assert main(args) == 0
    with (out / "sweep.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and not any(r["error"] for r in rows)
    return rows


def test_latency_grows_with_sequence_length(tmp_path: Path) -> None:
    """Projections scale linearly with seq, attention's two products quadratically."""
    rows = _sweep(tmp_path, "transformer_block", "seq=32,64,128")
    assert [int(r["seq"]) for r in rows] == [32, 64, 128]
    latency = [float(r["latency_s"]) for r in rows]
    macs = [int(r["macs"]) for r in rows]
    assert latency[0] < latency[1] < latency[2]
    # per token: 12 * 768^2 MACs of projections and MLP, plus 2 * 768 * seq of attention's products
    # (the norms, scale and softmax add a few per element)
    for seq, count in zip((32, 64, 128), macs):
        assert count == pytest.approx(seq * (12 * 768 * 768 + 2 * 768 * seq), rel=1e-3)
    assert macs[2] - macs[1] > 2 * (macs[1] - macs[0])


def test_whisper_latency_grows_with_frames(tmp_path: Path) -> None:
    rows = _sweep(tmp_path, "whisper_tiny_encoder", "seq=50,100")
    assert float(rows[0]["latency_s"]) < float(rows[1]["latency_s"])
    assert 2 * int(rows[0]["macs"]) < int(rows[1]["macs"]) < 3 * int(rows[0]["macs"])


def test_cnn_scales_with_batch_and_resolution(tmp_path: Path) -> None:
    rows = _sweep(tmp_path, "resnet18", "batch=1,2", "resolution=160,224")
    by = {(int(r["batch"]), int(r["resolution"])): r for r in rows}
    assert len(by) == 4
    for side in (160, 224):
        assert int(by[2, side]["macs"]) == 2 * int(by[1, side]["macs"])
        assert float(by[2, side]["latency_s"]) > float(by[1, side]["latency_s"])
    for batch in (1, 2):
        # every feature map is 7/5 as wide and high at 224 as at 160; only the classifier stays the same
        ratio = int(by[batch, 224]["macs"]) / int(by[batch, 160]["macs"])
        assert 1.9 < ratio < (224 / 160) ** 2
        assert float(by[batch, 224]["latency_s"]) > float(by[batch, 160]["latency_s"])


def test_run_compile_explain_check_take_params(capsys: pytest.CaptureFixture[str]) -> None:
    """--param NAME=VALUE on the commands that compile one model sets its params: as a sweep does."""
    program = str(PROGRAMS / "resnet18.yaml")
    assert main(["run", program, "--timing-only", "--json", "--param", "batch=2", "--param", "resolution=160"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert main(["run", program, "--timing-only", "--json", "--param", "resolution=160"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert two["macs"] == 2 * one["macs"]
    assert main(["compile", program, "--json", "--param", "batch=2"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == 2 * 1_814_073_344  # torchvision: 1.81 GMAC per image
    assert main(["explain", program, "--json", "--param", "resolution=160"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_s"] < one["latency_s"] * 1.5
    assert main(["check", program, "--json", "--param", "batch=2"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["--param", "batch"], "bad --param (expected KEY=VALUE, found 'batch')"),
    (["--param", "depth=2"], "unknown program parameter"),
    (["--param", "batch=1", "--param", "batch=2"], "--param names a key twice"),
])
def test_bad_params_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["run", str(PROGRAMS / "resnet18.yaml"), "--timing-only", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_params_are_refused_for_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Compiled programs, ONNX and Core ML models have no params:; --param there is an error, not ignored."""
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    for command in (["run", str(model), "--timing-only"], ["compile", str(model)], ["explain", str(model)],
                    ["check", str(model)], ["compare", str(model), "--chips", "m1"]):
        assert main([*command, "--param", "batch=2"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"anesim: error: {model}: --param sets a program file's params; other model formats and "
                       "compiled programs have none (expected a program YAML, found batch=2)"), err


def test_compare_refuses_chip_keys_as_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(PROGRAMS / "resnet18.yaml"), "--chips", "m1", "--param", "clock=1GHz"]) == 2
    assert "not chip-file keys" in capsys.readouterr().err


def test_compile_api_takes_params() -> None:
    import anesim
    from anesim.errors import UnsupportedError

    result = anesim.compile(PROGRAMS / "resnet18.yaml", "m1", {"batch": 2})
    assert result.graph.inputs["image"].shape == (2, 3, 224, 224)
    with pytest.raises(UnsupportedError, match="only program files take parameters"):
        anesim.compile(result.graph, "m1", {"batch": 2})
