"""An option the command would not act on, or an input the model does not have, is refused (exit 2,
one line naming it), not ignored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anesim.cli import main

PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "conv3x3.yaml"


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("anesim: error:"), err
    for word in words:
        assert word in err, (word, err)


def test_a_sidecar_or_approximate_with_a_model_is_refused(capsys, tmp_path):
    side = tmp_path / "s.sidecar.json"
    side.write_text("{}")
    _refused(capsys, ["run", str(PROGRAM), "--timing-only", "--sidecar", str(side)], "--sidecar", "model file")
    _refused(capsys, ["explain", str(PROGRAM), "--sidecar", str(side)], "--sidecar")
    _refused(capsys, ["run", str(PROGRAM), "--timing-only", "--approximate"], "--approximate")


def test_a_sidecar_with_an_hwx_container_is_refused(capsys, shared_dir, tmp_path):
    hwx = shared_dir / "hwx" / "tinygrad" / "conv.hwx"
    side = tmp_path / "s.sidecar.json"
    side.write_text("{}")
    _refused(capsys, ["disasm", str(hwx), "--sidecar", str(side)], "conv.hwx", ".hwx container")
    _refused(capsys, ["run", str(hwx), "--timing-only", "--sidecar", str(side)], ".hwx container")
    out = tmp_path / "d.json"
    assert main(["disasm", str(hwx), "--json", "--no-summary", "-o", str(out)]) == 0
    assert "summary" not in json.loads(out.read_text())


def test_weights_only_with_a_program_model_file(capsys, tmp_path):
    _refused(capsys, ["compile", str(PROGRAM), "--weights"], "--weights", "no -o")
    _refused(capsys, ["compile", str(PROGRAM), "--weights", "--json"], "--weights")
    _refused(capsys, ["compile", str(PROGRAM), "--weights", "-o", str(tmp_path / "x.hwx")], "x.hwx")
    assert not list(tmp_path.iterdir())
    out = tmp_path / "x.json"
    assert main(["compile", str(PROGRAM), "--weights", "-o", str(out)]) == 0
    assert "weights" in out.read_text()


def test_compile_output_names_a_known_format(capsys, tmp_path):
    # (a name with another suffix used to get the program model as JSON without a word)
    _refused(capsys, ["compile", str(PROGRAM), "-o", str(tmp_path / "x.txt")], "x.txt", ".txt", "OUT.json")
    _refused(capsys, ["compile", str(PROGRAM), "-o", str(tmp_path / "x")], "no suffix")
    assert not list(tmp_path.iterdir())
    assert main(["compile", str(PROGRAM), "-o", str(tmp_path / "x.JSON")]) == 0


def test_validate_and_calibrate_refuse_options_of_another_mode(capsys, tmp_path):
    _refused(capsys, ["validate", "--summary", "--json"], "--summary", "--json")
    _refused(capsys, ["validate", "--cross-validate", "--summary"], "--summary")
    _refused(capsys, ["validate", "--cross-validate", "--rules", str(tmp_path / "r.yaml")], "--rules")
    for extra in (["--no-cv"], ["--holdout", "0.5"], ["--seed", "3"], ["--only", "ne"],
                  ["--param", "dispatch.per_task_overhead_s"], ["--rules", str(tmp_path / "r.yaml")]):
        _refused(capsys, ["calibrate", "--shared", "--dry-run", *extra], extra[0])
    _refused(capsys, ["calibrate", "--chip", "M1", "--dry-run", "--out", str(tmp_path / "c")], "--dry-run", "--out")
    assert not list(tmp_path.iterdir())


def test_check_refuses_a_dim_that_binds_nothing_and_one_chip_options_with_all(capsys, tmp_path):
    _refused(capsys, ["check", str(PROGRAM), "--chip", "m1", "--dim", "batch=2"], "--dim", "ONNX")
    _refused(capsys, ["check", str(PROGRAM), "--chip", "all", "--fix"], "--fix")
    _refused(capsys, ["check", str(PROGRAM), "--chip", "all", "--plot", str(tmp_path / "p.png")], "--plot")
    onnx = pytest.importorskip("onnx", reason="ONNX models need the onnx package")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "dyn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])], [w])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["check", str(path), "--chip", "m1", "--dim", "N=2"]) == 0
    capsys.readouterr()
    _refused(capsys, ["check", str(path), "--chip", "m1", "--dim", "M=2"], "--dim M", "expected N")


def test_sweep_refuses_workers_with_an_existing_scheduler(capsys, tmp_path):
    _refused(capsys, ["sweep", str(PROGRAM), "--chips", "m1", "--out", str(tmp_path / "s"), "--scheduler",
                      "tcp://127.0.0.1:9", "--workers", "3", "--no-progress"], "--workers", "--scheduler")
    assert not list(tmp_path.iterdir())


def test_an_unknown_input_name_is_refused_by_every_execution_path():
    import anesim
    from anesim.errors import InputError

    compiled = anesim.compile(PROGRAM, "m1")
    feeds = {"x": np.ones((1, 64, 56, 56), np.float32), "typo": np.ones(3, np.float32)}
    for target in (compiled, compiled.program):
        with pytest.raises(InputError, match="unknown input 'typo'"):
            anesim.execute(target, feeds, "m1")
    from anesim.testing import run_model

    with pytest.raises(InputError, match="unknown input 'typo'"):  # (a drawn value stood in for it)
        run_model(PROGRAM, "m1", inputs={"typo": np.ones(3, np.float32)})
