"""Compiled H13 programs written as .hwx containers and read back by the decoder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import anesim
from anesim.compiler import Builder, compile_file, compile_graph
from anesim.compiler.backend.h13_emit import emit_h13
from anesim.compiler.backend.h13_hwx import write_hwx
from anesim.errors import AnesimError, UnsupportedError
from anesim.hwx import load_hwx
from anesim.hwx.fuzzing import Sample, run_case

REPO = Path(__file__).resolve().parents[1]


def _conv() -> Builder:
    b = Builder("small_conv")
    x = b.input("x", (1, 16, 12, 12))
    b.output(b.conv2d(b.conv2d(x, 32, kernel=3, padding=1, activation="relu"), 8, kernel=1))
    return b


def _gemm() -> Builder:
    b = Builder("small_gemm")
    b.output(b.linear(b.input("x", (1, 64, 1, 48)), 96))
    return b


def _elementwise() -> Builder:
    b = Builder("small_elementwise")
    a, c = b.input("a", (1, 8, 16, 16)), b.input("c", (1, 8, 16, 16))
    s = b.add(a, c)
    b.output(b.maximum(b.mul(s, c), a))
    return b


def _sigmoid() -> Builder:
    b = Builder("small_sigmoid")
    b.output(b.sigmoid(b.input("x", (1, 4, 8, 8))))
    return b


def _gelu() -> Builder:
    # Apple's gelu table: knots over [-4, 4] and a y = x tail, which the trailer words carry
    b = Builder("small_gelu")
    b.output(b.gelu(b.input("x", (1, 4, 8, 8))))
    return b


BUILDERS = {"conv": _conv, "gemm": _gemm, "elementwise": _elementwise, "sigmoid": _sigmoid, "gelu": _gelu}
PROGRAMS = ("conv3x3", "conv1x1_chain", "gemm_512")


def _compiled(name: str):  # type: ignore[no-untyped-def]
    if name in BUILDERS:
        return compile_graph(BUILDERS[name]().build(), "m1", chain=False)
    return compile_file(REPO / "programs" / f"{name}.yaml", "m1", chain=False)


@pytest.fixture(scope="module", params=sorted(BUILDERS) + list(PROGRAMS))
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    result = _compiled(request.param)
    path = tmp_path_factory.mktemp("hwx") / f"{request.param}.hwx"
    path.write_bytes(write_hwx(result))
    return result, path


def test_decoded_tasks_carry_the_emitted_fields(written) -> None:  # type: ignore[no-untyped-def]
    result, path = written
    emitted = emit_h13(result)
    program = anesim.load(path)
    assert not program.notes and not program.approximations
    assert len(program.tasks) == len(result.program.tasks) == len(emitted.fields)
    for task, mine in zip(program.tasks, emitted.fields):
        diffs = {k: (v, mine.get(k, 0)) for k, v in task.fields.items() if v != mine.get(k, 0)}
        assert not diffs, (task.index, diffs)
        assert not {k for k, v in mine.items() if v and k not in task.fields}


def test_tensors_slots_and_weights_come_back(written) -> None:  # type: ignore[no-untyped-def]
    result, path = written
    program = anesim.load(path)
    ours = result.program
    assert {n: (t.shape, t.dtype, t.role, t.slot) for n, t in program.tensors.items()} == \
           {n: (t.shape, t.dtype, t.role, t.slot) for n, t in ours.tensors.items()}
    for name, spec in ours.tensors.items():
        assert program.tensors[name].layout() == spec.layout()
    weights = emit_h13(result).weights
    if weights:
        assert program.slots[1].data[:len(weights)] == weights
    for index, slot in ours.slots.items():
        if index != 1:
            assert program.slots[index].role == slot.role and program.slots[index].size_bytes >= slot.size_bytes


def test_loaded_program_executes_bit_identically(written) -> None:  # type: ignore[no-untyped-def]
    result, path = written
    program = anesim.load(path)
    for ours, back in zip(result.program.tasks, program.tasks):
        if ours.ne is not None and ours.ne.table is not None:
            t, u = ours.ne.table, back.ne.table
            assert (u.knot_span or (u.range_lo, u.range_hi), u.tails, u.reduction, u.symmetry) == \
                   (t.knot_span or (t.range_lo, t.range_hi), t.tails, t.reduction, t.symmetry)
    rng = np.random.default_rng(1)
    feeds = {n: (4 * rng.standard_normal(t.shape)).astype(np.float16)
             for n, t in result.program.tensors.items() if t.role == "input"}
    got = anesim.execute(program, feeds)
    want = anesim.execute(result.program, feeds)
    assert set(got) == set(want)
    for name in want:
        assert np.array_equal(got[name], want[name], equal_nan=True), name


def test_disasm_and_asm_round_trip(written, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from anesim.cli import main

    _, path = written
    assert main(["disasm", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "H13 .hwx program" in listing and "tensors" in listing
    assert main(["disasm", "--json", str(path)]) == 0
    doc = tmp_path / "p.json"
    doc.write_text(capsys.readouterr().out)
    assert main(["asm", str(doc), "-o", str(tmp_path / "back.hwx")]) == 0
    assert (tmp_path / "back.hwx").read_bytes() == path.read_bytes()


def test_truncations_end_only_in_anesim_errors(written) -> None:  # type: ignore[no-untyped-def]
    _, path = written
    data = path.read_bytes()
    rng = random.Random(7)
    cuts = sorted({rng.randrange(0, min(len(data), 0x6000)) for _ in range(30)} | {0, 4, 31, 32, len(data) - 1})
    sample = Sample(path.name, data)
    for cut in cuts:
        outcome = run_case(sample, data[:cut])
        assert not outcome.decoded and outcome.error, cut


def test_structure_follows_apple_sample(shared_dir: Path, tmp_path: Path) -> None:
    apple = load_hwx(shared_dir / "hwx" / "tinygrad" / "conv.hwx")
    b = Builder("conv_like")
    b.output(b.conv2d(b.input("image", (1, 3, 1, 1)), 3, kernel=1, name="probs"))
    path = tmp_path / "ours.hwx"
    path.write_bytes(write_hwx(compile_graph(b.build(), "m1", chain=False)))
    ours = load_hwx(path)

    def shape(c):  # type: ignore[no-untyped-def]
        cmds = [(x["cmd"], x.get("segname"), x.get("flavor"), x.get("maxprot"),
                 tuple((s["segname"], s["sectname"], s["align"], s["flags"]) for s in x.get("sections", [])))
                for x in c.doc["load_commands"]]
        return [(k, seg, fl, prot, tuple(s[:3] for s in secs)) for k, seg, fl, prot, secs in cmds]

    assert shape(ours) == shape(apple)
    assert ours.doc["header"] == apple.doc["header"]
    assert [(s.segname, s.sectname, s.addr, s.maxprot) for s in ours.sections][:2] == \
           [(s.segname, s.sectname, s.addr, s.maxprot) for s in apple.sections][:2]
    assert ours.text.offset == apple.text.offset == 0x4000
    assert {k: v.shape for k, v in ours.stabs.items()} == {k: v.shape for k, v in apple.stabs.items()}
    assert [t.dtype for t in ours.stabs.values()] == [t.dtype for t in apple.stabs.values()]
    assert ours.thread(1)[512:518] == apple.thread(1)[512:518]
    assert sorted(ours.slot_table()) == [0, 1, 4, 5] == sorted(apple.slot_table())
    assert [(name.split("@")[0]) for name, _ in ours.bindings] == [name.split("@")[0] for name, _ in apple.bindings]


def test_cli_writes_hwx_for_h13_and_refuses_other_generations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anesim.cli import main

    out = tmp_path / "c.hwx"
    assert main(["compile", str(REPO / "programs" / "conv3x3.yaml"), "--chip", "m1", "-o", str(out)]) == 0
    assert "H13 tasks" in capsys.readouterr().out
    assert len(anesim.load(out).tasks) == 1
    assert main(["compile", str(REPO / "programs" / "conv3x3.yaml"), "--chip", "m5", "-o", str(tmp_path / "c5.hwx")]) == 2
    assert "H13 only" in capsys.readouterr().err
    assert not (tmp_path / "c5.hwx").exists()


def test_what_h13_cannot_express_is_refused() -> None:
    b = Builder("biased")
    b.output(b.conv2d(b.input("x", (1, 4, 4, 4)), 4, kernel=1, bias="normal"))
    with pytest.raises(UnsupportedError, match="bias"):
        write_hwx(compile_graph(b.build(), "m1", chain=False))
    with pytest.raises(AnesimError):
        write_hwx(compile_file(REPO / "programs" / "elementwise_stream.yaml", "m1", chain=False))


def test_written_json_form_is_valid_json(written) -> None:  # type: ignore[no-untyped-def]
    _, path = written
    doc = anesim.hwx.to_json(load_hwx(path))
    assert json.loads(json.dumps(doc))["container"] == "hwx"
