"""Every public sample program decodes, and disasm --json | asm gives it back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import anesim
from anesim import hwx
from anesim.cli import main
from anesim.hwx.fuzzing import eiln_kernels

REPO = Path(__file__).resolve().parents[1]
SIDECARS = REPO / "programs" / "eiln"

# name: (folder, generation, tasks, {tensor: (role, slot, NCHW shape)})
HWX_SAMPLES = {
    "conv.hwx": ("tinygrad", "H13", 1, {"image": ("input", 5, (1, 3, 1, 1)), "probs": ("output", 4, (1, 3, 1, 1))}),
    "gemm.hwx": ("tinygrad", "H13", 1, {"image": ("input", 5, (1, 512, 1, 1)), "probs": ("output", 4, (1, 512, 1, 1))}),
    "relu.hwx": ("tinygrad", "H13", 1, {"image": ("input", 5, (1, 1, 1, 77)), "probs": ("output", 4, (1, 1, 1, 77))}),
    "sigmoid.hwx": ("tinygrad", "H13", 1, {"image": ("input", 5, (1, 1, 1, 77)), "probs": ("output", 4, (1, 1, 1, 77))}),
    "sum.hwx": ("tinygrad", "H13", 1, {"image": ("input", 6, (1, 64, 1, 1)), "image2": ("input", 5, (1, 64, 1, 1)),
                                        "probs": ("output", 4, (1, 64, 1, 1))}),
    "concat.hwx": ("tinygrad", "H13", 2, {"input_0": ("input", 6, (1, 16384, 1, 1)), "input_1": ("input", 5, (1, 16, 1, 1)),
                                          "output": ("output", 4, (1, 16400, 1, 1))}),
    "model.hwx.golden": ("tinygrad", "H13", 1, {"image": ("input", 5, (1, 3, 1, 1)), "probs": ("output", 4, (1, 3, 1, 1))}),
    "matmul_h11.hwx": ("alexaltea", "H11", 1, {"A": ("input", 4, (1, 1, 2, 3)), "B": ("input", 5, (1, 1, 3, 2)),
                                               "matmul_0": ("output", 6, (1, 1, 2, 2))}),
    "matmul_h13.hwx": ("alexaltea", "H13", 1, {"A": ("input", 4, (1, 1, 2, 3)), "B": ("input", 5, (1, 1, 3, 2)),
                                               "matmul_0": ("output", 6, (1, 1, 2, 2))}),
    "matmul_h14.hwx": ("alexaltea", "H14", 1, {"A": ("input", 4, (1, 1, 2, 3)), "B": ("input", 5, (1, 1, 3, 2)),
                                               "matmul_0": ("output", 6, (1, 1, 2, 2))}),
    "matmul_h15.hwx": ("alexaltea", "H15", 1, {"A": ("input", 6, (1, 1, 2, 3)), "B": ("input", 7, (1, 1, 3, 2)),
                                               "matmul_0": ("output", 8, (1, 1, 2, 2))}),
}
# Task counts of the raw kernels, as their anec_*.h headers give them.
EILN_TASKS = {
    "activation/gelu.bin": 1, "activation/leakyrelu.bin": 1, "activation/logsoftmax.bin": 7, "activation/relu.bin": 1,
    "activation/relu6.bin": 1, "activation/rrelu.bin": 1, "activation/silu.bin": 3, "activation/softmax.bin": 5,
    "binary/add.bin": 1, "binary/ave.bin": 1, "binary/max.bin": 1, "binary/min.bin": 1, "binary/mul.bin": 1,
    "binary/sub.bin": 1, "unary/abs.bin": 1, "unary/ceil.bin": 4, "unary/exp.bin": 1, "unary/exp2.bin": 1,
    "unary/frac.bin": 3, "unary/inv.bin": 1, "unary/log.bin": 2, "unary/log2.bin": 1, "unary/norm.bin": 8,
    "unary/sigmoid.bin": 2, "unary/sign.bin": 1, "unary/sqrt.bin": 1, "unary/square.bin": 1, "unary/tanh.bin": 1,
}


def sample_path(shared_dir: Path, name: str) -> Path:
    return shared_dir / "hwx" / HWX_SAMPLES[name][0] / name


def test_every_hwx_sample_is_listed(shared_dir: Path) -> None:
    found = {p.name for p in (shared_dir / "hwx").glob("*/*.hwx*")}
    assert found == set(HWX_SAMPLES)


def test_every_eiln_kernel_has_a_sidecar(shared_dir: Path) -> None:
    rels = [rel for rel, _ in eiln_kernels(shared_dir)]
    assert sorted(rels) == sorted(EILN_TASKS)
    assert sorted(str(p.relative_to(SIDECARS)).replace(".sidecar.json", ".bin")
                  for p in SIDECARS.rglob("*.sidecar.json")) == sorted(EILN_TASKS)


@pytest.mark.parametrize("name", sorted(HWX_SAMPLES))
def test_hwx_sample_decodes(shared_dir: Path, name: str) -> None:
    _, generation, ntasks, tensors = HWX_SAMPLES[name]
    decoded = hwx.load_hwx(sample_path(shared_dir, name))
    assert decoded.generation.name == generation
    assert len(decoded.stream.tasks) == ntasks
    assert decoded.notes == []
    summary = hwx.summarize(decoded)
    got = {t.name: (t.role, t.slot, t.shape) for t in summary.tensors}
    assert got == tensors
    assert all(t.dtype == "fp16" for t in summary.tensors)


@pytest.mark.parametrize("name", sorted(HWX_SAMPLES))
def test_hwx_round_trip_api(shared_dir: Path, name: str) -> None:
    path = sample_path(shared_dir, name)
    original = path.read_bytes()
    decoded = hwx.load(path)
    doc = json.loads(json.dumps(hwx.to_json(decoded)))
    assert hwx.encode(doc) == original
    assert anesim.encode(anesim.load(path)) == original


@pytest.mark.parametrize("rel", sorted(EILN_TASKS))
def test_eiln_kernel_decodes(eiln_dir: Path, rel: str) -> None:
    sidecar = SIDECARS / rel.replace(".bin", ".sidecar.json")
    decoded = hwx.load(eiln_dir / rel, sidecar=sidecar)
    assert decoded.generation.name == "H13"
    assert len(decoded.stream.tasks) == EILN_TASKS[rel]
    assert decoded.notes == []
    # the sidecar's provenance is kept and shown with the listing
    assert decoded.sidecar.source == json.loads(sidecar.read_text())["source"] != ""
    assert f"source: {decoded.sidecar.source}" in hwx.listing(decoded)
    # Without a sidecar the chain alone finds the same tasks and command length.
    bare = hwx.load(eiln_dir / rel, raw_buffer=True)
    assert bare.command_size == decoded.command_size
    assert [t.writes for t in bare.stream.tasks] == [t.writes for t in decoded.stream.tasks]


def _cli_round_trip(tmp_path: Path, path: Path, *extra: str) -> bytes:
    listing_json = tmp_path / "x.json"
    out = tmp_path / "y"
    assert main(["disasm", str(path), "--json", "-o", str(listing_json), *extra]) == 0
    assert main(["asm", str(listing_json), "-o", str(out)]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("name", sorted(HWX_SAMPLES))
def test_hwx_round_trip_cli(shared_dir: Path, tmp_path: Path, name: str) -> None:
    path = sample_path(shared_dir, name)
    assert _cli_round_trip(tmp_path, path) == path.read_bytes()


@pytest.mark.parametrize("rel", sorted(EILN_TASKS))
def test_eiln_round_trip_cli(eiln_dir: Path, tmp_path: Path, rel: str) -> None:
    path = eiln_dir / rel
    sidecar = SIDECARS / rel.replace(".bin", ".sidecar.json")
    assert _cli_round_trip(tmp_path, path, "--sidecar", str(sidecar)) == path.read_bytes()
    assert _cli_round_trip(tmp_path, path, "--raw") == path.read_bytes()


def test_listing_covers_every_task_and_group(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["disasm", str(sample_path(shared_dir, "concat.hwx"))]) == 0
    text = capsys.readouterr().out
    assert "task 0 at stream 0x0, 0x274 bytes" in text
    assert "task 1 at stream 0x300, 0x274 bytes" in text
    assert "gap at stream 0x274: 0x8c bytes" in text
    assert text.count("group at") == 14
    assert "0x17804  00100000  TileDMADst.BaseAddr  Addr=16384" in text  # second half of the output


def test_encoding_b_relocations(shared_dir: Path) -> None:
    slots = {}
    for name in ("matmul_h14.hwx", "matmul_h15.hwx"):
        decoded = hwx.load_hwx(sample_path(shared_dir, name))
        slots[name] = hwx.summarize(decoded).bindings[0]
    assert slots["matmul_h14.hwx"] == {"kernel": 4, "src1": 5, "dst": 6}
    assert slots["matmul_h15.hwx"] == {"kernel": 6, "src1": 7, "dst": 8}


def test_editing_a_field_changes_the_output(shared_dir: Path) -> None:
    path = sample_path(shared_dir, "sigmoid.hwx")
    original = path.read_bytes()
    doc = json.loads(json.dumps(hwx.to_json(hwx.load_hwx(path))))
    stream = next(r for r in doc["regions"] if "stream" in r)["stream"]
    common = next(g for g in stream["items"][0]["groups"] if g.get("block") == "Common")
    in_dim = next(r for r in common["registers"] if r["name"] == "Common.InDim")
    in_dim["fields"]["Win"] = 78
    edited = hwx.encode(doc)
    diff = [i for i in range(len(original)) if original[i] != edited[i]]
    assert diff == [0x4128]  # the low byte of InDim, 0x128 into the task
    assert hwx.decode_bytes(edited).stream.tasks[0].writes[62] == (0x0, 0x0001004E)


def test_group_walk_handles_a_split_kernel_dma_group(eiln_dir: Path) -> None:
    """Like the macOS 26 compiler's H13 output: the 62-word kernel-DMA group split in two."""
    path = eiln_dir / "activation" / "gelu.bin"
    original = hwx.load(path, sidecar=SIDECARS / "activation" / "gelu.sidecar.json")
    doc = json.loads(json.dumps(hwx.to_json(original, summary=False)))
    task = doc["regions"][0]["stream"]["items"][0]
    kdma = task["groups"][0]
    first, second = dict(kdma, registers=kdma["registers"][:18]), dict(kdma, registers=kdma["registers"][18:])
    second["addr"] = second["registers"][0]["addr"]
    task["groups"][0:1] = [first, second]
    stream = hwx.encode(dict(doc, size=0x278, regions=[dict(doc["regions"][0], size="0x278")]))
    split = hwx.decode_bytes(stream + original.data[0x280:], sidecar=hwx.raw.Sidecar(first_task_size=0x278))
    assert [g["addr"] for g in split.stream.tasks[0].doc["groups"][:2]] == ["0x1f800", "0x1f848"]
    assert split.stream.tasks[0].writes == original.stream.tasks[0].writes
