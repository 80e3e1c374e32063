"""Reading ONNX files: what onnx cannot load is one error naming the file and what it found."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs the onnx package")
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(5)


def test_a_model_whose_external_data_is_missing_or_short_names_the_problem(tmp_path, capsys):
    from anesim.cli import main
    from anesim.compiler.frontends.onnx import load_onnx
    from anesim.errors import ProgramError

    w = numpy_helper.from_array(RNG.standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [w])
    path = tmp_path / "ext.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path,
              save_as_external_data=True, location="ext.data", size_threshold=0)
    assert load_onnx(path) is not None
    data = tmp_path / "ext.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ProgramError) as err:
        load_onnx(path)
    assert "ext.onnx" in str(err.value) and "1152" in str(err.value) and "100 bytes" in str(err.value)
    data.unlink()
    with pytest.raises(ProgramError, match="ext.data"):
        load_onnx(path)
    assert main(["run", str(path), "--chip", "m1"]) == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.count("\n") == 0 and "ext.data" in err_line and "ext.onnx" in err_line
