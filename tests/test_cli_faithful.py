"""Faithful or refused: a mode no document describes stops `anesim run`; --approximate runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anesim.cli import main
from anesim.opsuite.cases import all_cases
from anesim.opsuite.stream import write_program


def _program(tmp_path: Path, name: str = "exp2") -> tuple[Path, Path]:
    case = next(c for c in all_cases() if c.name == name)
    built = case.build()
    return write_program(tmp_path, name, built.tasks, built.data, built.buffers)


def _edit(tmp_path: Path, capsys: pytest.CaptureFixture[str], register: str, field: str, value: int) -> tuple[Path, Path]:
    """disasm --json, change one field of task 0, asm: the program with that field changed."""
    binary, sidecar = _program(tmp_path)
    assert main(["disasm", "--json", str(binary), "--sidecar", str(sidecar)]) == 0
    doc = json.loads(capsys.readouterr().out)
    task = doc["regions"][0]["stream"]["items"][0]
    (reg,) = [r for g in task["groups"] for r in g["registers"] if r.get("name") == register]
    reg["fields"][field] = value
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    out = tmp_path / "edited.bin"
    assert main(["asm", str(tmp_path / "edited.json"), "-o", str(out)]) == 0
    return out, sidecar


def test_an_undescribed_mode_is_refused_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited, sidecar = _edit(tmp_path, capsys, "NE.MACCfg", "OpMode", 2)
    assert main(["run", str(edited), "--sidecar", str(sidecar)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"anesim: error: {edited}: task 0: NE.MACCfg.OpMode = 2: ")
    assert "--approximate" in err[0]


def test_approximate_runs_it_with_the_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited, sidecar = _edit(tmp_path, capsys, "NE.MACCfg", "OpMode", 2)
    assert main(["run", str(edited), "--sidecar", str(sidecar), "--approximate"]) == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("anesim: warning:")]
    assert warnings == [line for line in err if f"{edited}: task 0: NE.MACCfg.OpMode = 2" in line]
    assert len(warnings) == 1
    assert main(["run", str(edited), "--sidecar", str(sidecar), "--approximate", "--json", "--timing-only"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert len(data["warnings"]) == 1 and data["warnings"][0].startswith("task 0: NE.MACCfg.OpMode = 2")


def test_python_api_refuses_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import anesim
    from anesim.program.notes import ApproximationError

    edited, sidecar = _edit(tmp_path, capsys, "NE.MACCfg", "OpMode", 2)
    with pytest.raises(ApproximationError, match="NE.MACCfg.OpMode = 2"):
        anesim.load(edited, sidecar=sidecar)
    program = anesim.load(edited, sidecar=sidecar, approximate=True)
    assert [n.kind for n in program.approximations] == ["value"]
    assert program.warnings == [f"{edited}: {program.approximations[0].render()}"]


def test_timing_notes_warn_and_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    edited, sidecar = _edit(tmp_path, capsys, "NE.KernelCfg", "GroupKernelReuse", 1)
    assert main(["run", str(edited), "--sidecar", str(sidecar), "--timing-only"]) == 0
    err = capsys.readouterr().err
    assert f"anesim: warning: {edited}: task 0: NE.KernelCfg.GroupKernelReuse = 1" in err
    monkeypatch.setenv("ANESIM_STRICT", "1")
    assert main(["run", str(edited), "--sidecar", str(sidecar), "--timing-only"]) == 2
    assert "GroupKernelReuse = 1" in capsys.readouterr().err


def test_out_holds_outputs_and_drawn_model_inputs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "split.yaml"
    model.write_text("""name: split
inputs:
  x: {shape: [1, 4, 6, 8]}
ops:
  - {op: conv2d, in: x, out: y, out_channels: 4, kernel: 1}
  - {op: transpose, in: y, out: t, perm: [0, 1, 3, 2]}
  - {op: conv2d, in: t, out: z, out_channels: 4, kernel: 1}
outputs: [z]
""")
    out = tmp_path / "out"
    assert main(["run", str(model), "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.npy")) == ["z.npy"]
    assert sorted(p.name for p in (out / "inputs").glob("*.npy")) == ["x.npy"]  # not the host's transpose
    assert np.load(out / "z.npy").shape == (1, 4, 8, 6)
