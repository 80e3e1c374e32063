"""The attacks the fuzzer found, one by one: each ends in one clean error naming the file and field."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from anesim.cli import main
from anesim.errors import AnesimError, ConfigError, InputError, ProgramError
from anesim.fuzz.mutate import yaml_alias_bomb
from anesim.limits import LimitError, current, parse_size, set_max_memory

REPO = Path(__file__).resolve().parents[1]
CONV = REPO / "programs" / "conv3x3.yaml"


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_sizes_parse_and_the_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_size("512M") == 512 << 20 and parse_size("2GiB") == 2 << 30 and parse_size("1e9") == 10**9
    for bad in ("lots", "1e999", "1e308T"):  # (an infinity escaped as an OverflowError traceback)
        with pytest.raises(LimitError, match="bad --max-memory"):
            parse_size(bad)
    assert current().memory_bytes == 0xE0000000
    monkeypatch.setenv("ANESIM_MAX_MEMORY", "64M")
    assert current().memory_bytes == 64 << 20 and current().steps == (64 << 20) // 2048
    set_max_memory("32M")
    try:
        assert current().memory_bytes == 32 << 20
    finally:
        set_max_memory(None)


def test_max_memory_refuses_a_model_naming_file_and_tensor(capsys: pytest.CaptureFixture[str]) -> None:
    _cli_error(capsys, ["run", str(REPO / "programs" / "gemm_2048.yaml"), "--max-memory", "4M", "--timing-only"],
               "gemm_2048.yaml", "key 'inputs.x'", "memory limit", "4,194,304 bytes", "8,388,608 bytes")


def test_alias_bomb_in_a_chip_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("inherits: h13\nname: Bomb\n" + yaml_alias_bomb(9), encoding="utf-8")
    _cli_error(capsys, ["chips", "show", str(path)], "bomb.yaml", "line", "expands to more than")


def test_infinite_chip_energy_is_refused(tmp_path: Path) -> None:
    from anesim.chips import load_chip

    path = tmp_path / "inf.yaml"
    path.write_text("inherits: h13\nname: Inf\npower:\n  mac_energy_j: {value: .inf, provenance: predicted, "
                    "source: test}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"inf.yaml: key 'power.mac_energy_j.value'"):
        load_chip(path)
    path.write_text("inherits: h13\nname: Zero\nne:\n  clock_hz: {value: 0.0, provenance: predicted, "
                    "source: test}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="ne.clock_hz"):
        load_chip(path)


@pytest.mark.parametrize("text, needle", [
    ("a: &a [1, *a]\n", "recursive"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
    ("x: " + "9" * 5000 + "\n", "unreadable value"),
    ("x: \x01\n", "malformed YAML"),
])
def test_program_yaml_that_would_turn_on_the_host(tmp_path: Path, text: str, needle: str) -> None:
    from anesim.compiler import load_graph

    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramError, match=needle) as info:
        load_graph(path)
    assert info.value.file == str(path)


def test_non_utf8_program_names_the_byte(tmp_path: Path) -> None:
    from anesim.compiler import load_graph

    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: x\n\xff\n")
    with pytest.raises(ProgramError, match="byte 8: program file is not UTF-8 text"):
        load_graph(path)


def test_a_billion_repeats_are_refused_before_the_loop(tmp_path: Path) -> None:
    from anesim.compiler import load_graph

    path = tmp_path / "p.yaml"
    path.write_text("name: r\ninputs: {x: {shape: [1, 4, 4, 4]}}\nops:\n  - repeat: 1000000000\n"
                    "    ops: [{repeat: 0, ops: [{op: relu}]}]\noutputs: [x]\n", encoding="utf-8")
    with pytest.raises(LimitError, match=r"key 'ops\[0\].repeat'.*1,000,000,000"):
        load_graph(path)


def test_a_4096_cubed_input_is_refused(tmp_path: Path) -> None:
    from anesim.compiler import load_graph

    path = tmp_path / "p.yaml"
    path.write_text("name: big\ninputs: {x: {shape: [1, 4096, 4096, 4096]}}\nops: [{op: relu, in: x, out: y}]\n"
                    "outputs: [y]\n", encoding="utf-8")
    with pytest.raises(AnesimError, match="key 'inputs.x'.*memory limit.*137,438,953,472 bytes") as info:
        load_graph(path)
    assert info.value.file == str(path)


def _npy(shape: tuple[int, ...], payload: bytes, descr: str = "<f2") -> bytes:
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, shape)
    body = text.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin-1") + payload


def test_npy_headers_that_lie(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anesim.npyfile import load_npy

    lying = tmp_path / "x.npy"
    lying.write_bytes(_npy((4096, 4096, 4096), b"\0" * 16))
    with pytest.raises(InputError, match="header does not match the file's length") as info:
        load_npy(lying)
    assert info.value.file == str(lying) and info.value.where == "header 'shape'"
    objects = tmp_path / "o.npy"
    objects.write_bytes(_npy((2,), b"\0" * 16, "|O"))
    with pytest.raises(InputError, match="not an array of numbers"):
        load_npy(objects)
    good = tmp_path / "g.npy"
    np.save(good, np.arange(6, dtype=np.float16).reshape(2, 3))
    assert load_npy(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    # a Python 2 header (long integers in the shape): read as numpy reads it, without its warning
    old = tmp_path / "py2.npy"
    old.write_bytes(_npy((2, 3), np.arange(6, dtype=np.float16).tobytes()).replace(b"(2, 3), }", b"(2L,3L),}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_npy(old).tolist() == [[0, 1, 2], [3, 4, 5]]
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.zeros((1, 3, 8, 8), np.float16))
    _cli_error(capsys, ["run", str(CONV), "--input", f"x={wrong}"], "w.npy", "input 'x' has the wrong shape")


def test_deeply_nested_sidecar(tmp_path: Path) -> None:
    from anesim.hwx import load_sidecar

    path = tmp_path / "k.sidecar.json"
    path.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(ProgramError, match="nested too deeply") as info:
        load_sidecar(path)
    assert info.value.file == str(path)
    path.write_bytes(b'{"format": "\xff"}')
    with pytest.raises(ProgramError, match="not UTF-8"):
        load_sidecar(path)


def test_core_ml_blob_claiming_a_terabyte(tmp_path: Path) -> None:
    from anesim.weightblob import check_blob

    path = tmp_path / "weight.bin"
    path.write_bytes(struct.pack("<II", 1, 2).ljust(64, b"\0")
                     + struct.pack("<IIQQ", 0xDEADBEEF, 1, 1 << 40, 128).ljust(64, b"\0") + b"\0" * 64)
    with pytest.raises(ProgramError, match="runs past the end of the file") as info:
        check_blob(path, 64)
    assert info.value.file == str(path)
    path.write_bytes(path.read_bytes()[:72] + struct.pack("<QQ", 64, 128) + path.read_bytes()[88:])
    assert check_blob(path, 64, 32).size == 64
    with pytest.raises(ProgramError, match="does not hold the tensor"):
        check_blob(path, 64, 33)


def test_onnx_initializer_whose_dims_lie(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from anesim.compiler import load_graph

    w = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    w.dims[0] = 1 << 40
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(AnesimError, match="not a valid ONNX model.*tensor name: w") as info:
        load_graph(path)
    assert info.value.file == str(path)
    from anesim.onnxtensor import initializer_array

    with pytest.raises(LimitError, match="m.onnx: initializer 'w': dims: exceeds the memory limit"):
        initializer_array(w, str(path))
    w.dims[0] = 5
    with pytest.raises(ProgramError, match="initializer 'w': dims: tensor data does not match its dims"):
        initializer_array(w, str(path))


def test_every_cli_error_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    side = tmp_path / "k.sidecar.json"
    side.write_text(json.dumps({"format": "anesim-raw-sidecar", "version": 1, "buffers": [
        {"slot": 4, "name": "x", "role": "input", "shape": [1, 65536, 65536, 65536]}]}), encoding="utf-8")
    kernel = tmp_path / "k.bin"
    kernel.write_bytes(b"\0" * 64)
    _cli_error(capsys, ["run", str(kernel), "--sidecar", str(side)], "k.sidecar.json", "$.buffers[0].shape")


@pytest.mark.parametrize("shape, needle", [
    (np.array([2, 2, 0], np.int64), "Invalid position of 0"),
    (np.array([1, 4], np.float32), "Expected:int64 Actual:float"),
])
def test_onnx_reshape_target_that_cannot_apply(tmp_path: Path, shape: np.ndarray, needle: str) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from anesim.compiler import compile_file

    graph = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
                              [numpy_helper.from_array(shape, "s")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(AnesimError) as info:
        compile_file(path, "m1")
    assert info.value.file == str(path)
    assert needle in str(info.value)


def test_onnx_fold_of_an_average_over_nothing(tmp_path: Path) -> None:
    """A GlobalAveragePool of a constant with no pixels: the reference's NaN came with numpy's
    warnings on the user's terminal; the fold now stops there, naming the node (found by fuzzing)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from anesim.compiler import compile_file

    nodes = [helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Add", ["x", "g"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1, 1])],
                              [numpy_helper.from_array(np.zeros((1, 2, 0, 3), np.float32), "c")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(AnesimError, match="GlobalAveragePool.*cannot evaluate at compile time.*Mean of empty") as info:
            compile_file(path, "m1")
    assert info.value.file == str(path)
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]


def test_core_ml_manifest_that_indexes_a_list(tmp_path: Path) -> None:
    from anesim.compiler.frontends.coreml_package import spec_path

    package = tmp_path / "m.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text('{"itemInfoEntries": [], "rootModelIdentifier": 3}')
    with pytest.raises(ProgramError, match="unreadable .mlpackage manifest"):
        spec_path(package)


def test_core_ml_weight_file_name_with_a_nul(tmp_path: Path) -> None:
    from anesim.compiler.frontends.coreml_package import Blobs

    spec = tmp_path / "model.mlmodel"
    spec.write_bytes(b"")
    with pytest.raises(ProgramError, match="names no file inside the model's folder") as info:
        Blobs(spec).path("@model_path/weights/we\x00ight.bin")
    assert info.value.file == str(spec)


def test_onnx_pool_kernel_shape_of_the_wrong_rank(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import compile_file

    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2])
    graph = helper.make_graph([pool], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(AnesimError) as info:  # (the engine refuses it, then the host's shape inference)
        compile_file(path, "m1")
    assert info.value.file == str(path)


def test_the_work_limit_counts_each_task_s_fixed_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    from anesim.compiler import Builder, compile_graph
    from anesim.functional.execute import execute, task_work
    from anesim.limits import TASK_WORK

    b = Builder("many_small_tasks")
    x = y = b.input("x", (1, 8, 4, 4))
    for _ in range(40):
        y = b.relu(b.add(y, x))
    b.output(y)
    program = compile_graph(b.build(), "m1").program
    arithmetic = sum(task_work(t) - TASK_WORK for t in program.tasks)
    assert arithmetic == sum(t.macs + t.result.elements + sum(s.elements for s in t.sources) for t in program.tasks)
    monkeypatch.setenv("ANESIM_MAX_WORK", str(arithmetic + TASK_WORK * (len(program.tasks) - 1)))
    with pytest.raises(LimitError, match="fixed costs: exceeds the work limit"):
        execute(program, {"x": np.zeros((1, 8, 4, 4), np.float16)})
    monkeypatch.setenv("ANESIM_MAX_WORK", str(arithmetic + TASK_WORK * len(program.tasks)))
    execute(program, {"x": np.zeros((1, 8, 4, 4), np.float16)})


def test_a_source_read_through_overlapping_strides_is_bounded_before_it_is_copied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A source whose zero channel stride names a billion elements of a 64-byte buffer: the work
    limit counts every element a task reads (it counted the result's), and a read of more bytes
    than the memory limit is refused before the copy (a damaged command buffer allocated 5.6 GiB)."""
    from dataclasses import replace

    from anesim.compiler import Builder, compile_graph
    from anesim.functional.execute import task_work
    from anesim.functional.memory import Memory
    from anesim.program.model import Layout

    wide = Layout("dram", 0, 0, channels=1 << 30, height=1, width=32, row_stride_bytes=64, plane_stride_bytes=0)
    memory = Memory({0: np.zeros(64, np.uint8)}, np.zeros(64, np.uint8), "k.bin")
    with pytest.raises(LimitError, match="k.bin: task 0 source 1: its elements, copied: exceeds the memory limit"):
        memory.read(wide, what="task 0 source 1")
    assert memory.read(replace(wide, channels=4), what="s").shape == (4, 1, 32)

    b = Builder("one")
    b.output(b.relu(b.input("x", (1, 8, 4, 4))))
    task = compile_graph(b.build(), "m1").program.tasks[0]
    assert task_work(replace(task, sources=[wide])) >= 1 << 35


def test_an_onnx_input_a_lowering_does_not_read_sends_the_node_to_the_host(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from anesim.compiler import compile_file
    from anesim.compiler.frontends.onnx import _Importer

    def clip_ignoring_its_bounds(self: _Importer) -> None:  # a lowering that forgets inputs 1 and 2
        self.finish(self.emit("relu", [self.t(0)]), self.node.output[0])

    monkeypatch.setattr(_Importer, "_op_Clip", clip_ignoring_its_bounds)
    clip = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    graph = helper.make_graph([clip], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(np.array(-1, np.float32), "lo"),
                               numpy_helper.from_array(np.array(1, np.float32), "hi")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    result = compile_file(path, "m1")
    assert [h.node.op for h in result.host_ops] == ["onnx_host"]
    assert "input 1 ('lo') is not supported" in result.host_ops[0].reason


def test_onnx_node_name_that_is_not_utf8(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import compile_file

    relu = helper.make_node("Relu", ["x"], ["y"], name="qqqqqq")
    graph = helper.make_graph([relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(b"qqqqqq", b"\xff\xfeqq\x80q"))  # (protobuf hands it over as bytes)
    with pytest.raises(ProgramError,
                       match=r"graph.node\[0\]: not a valid ONNX model: a name or string attribute is not UTF-8"):
        compile_file(path, "m1")
    assert main(["check", str(path)]) == 2


def test_onnx_graph_name_and_attribute_that_are_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The graph's name names the program in every report (check --json printed it as bytes and
    failed); a string attribute is read as text."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import compile_file

    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="NOTSET")
    graph = helper.make_graph([pool], "gggggg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    named, attributed = tmp_path / "name.onnx", tmp_path / "attr.onnx"
    named.write_bytes(data.replace(b"gggggg", b"\xff\xfegg\x80g"))  # (protobuf hands them over as bytes)
    attributed.write_bytes(data.replace(b"NOTSET", b"\xff\xfeNO\x80T"))
    with pytest.raises(ProgramError,
                       match=r"graph.name b'.*': not a valid ONNX model: a name or string attribute is not UTF-8"):
        compile_file(named, "m1")
    for path in (named, attributed):
        assert main(["check", str(path), "--json"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"anesim: error: {path}: "), err
    with pytest.raises(ProgramError, match=r"graph.node\[0\].auto_pad: not a valid ONNX model: a name or string "
                                           "attribute is not UTF-8 text"):
        compile_file(attributed, "m1")
    from anesim.onnx_backend import AnesimBackend

    with pytest.raises(ProgramError, match="a name or string attribute is not UTF-8 text"):
        AnesimBackend.prepare(onnx.load(str(named)))


def test_a_scalar_constant_filling_a_huge_shape_is_refused_before_it_exists(tmp_path: Path) -> None:
    from anesim.compiler import load_graph

    path = tmp_path / "p.yaml"
    path.write_text("name: c\ninputs: {x: {shape: [1, 8, 4, 4]}}\n"
                    "constants: {s: {shape: [1, 65536, 65536, 65536], value: 2.0}}\n"
                    "ops: [{op: mul, in: [x, s], out: y}]\noutputs: [y]\n", encoding="utf-8")
    with pytest.raises(AnesimError, match=r"constants.s'?.*exceeds the memory limit") as info:
        load_graph(path)
    assert info.value.file == str(path)


def test_onnx_checker_that_cannot_parse_what_protobuf_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    from anesim.compiler.frontends.onnx import check_model

    def refuses(model: object) -> None:  # (what onnx's C++ checker raises on bytes it cannot parse)
        raise ValueError("Unable to parse proto from the given bytes: data is malformed")

    monkeypatch.setattr(onnx.checker, "check_model", refuses)
    with pytest.raises(ProgramError, match=r"m.onnx: not a valid ONNX model \(found Unable to parse proto"):
        check_model(onnx.ModelProto(), tmp_path / "m.onnx")


def test_a_task_asking_for_more_tile_steps_than_the_limit_is_refused_while_planned() -> None:
    from anesim.chips import load_chip
    from anesim.compiler import Builder, compile_graph
    from anesim.sweep.overrides import apply_overrides
    from anesim.timing.plan import plan_programs

    chip = apply_overrides(load_chip("m1"), {"memory.working_set_cap_bytes": 4096})
    b = Builder("many_steps")
    b.output(b.conv2d(b.input("x", (1, 64, 256, 256)), 64, kernel=1))
    program = compile_graph(b.build(), chip).program
    set_max_memory(4 << 20)  # a step limit of 2,048
    try:
        with pytest.raises(LimitError, match="program 'many_steps': tile steps: exceeds the step limit"):
            next(plan_programs([program], chip))  # (raised by the task's plan, before its steps exist)
    finally:
        set_max_memory(None)


def test_a_batch_lowering_past_the_step_limit_is_refused_as_it_goes() -> None:
    """A large batch through a layer that mixes channels lowers image by image: the lowering
    stops at the first operation over the step limit, naming the node, instead of lowering the
    rest of a model that is refused anyway (a batch of 65,535 small convolutions took 7 s): the
    count it reports is the limit passed, not the whole batch's."""
    from anesim.chips import load_chip
    from anesim.compiler import Builder, compile_graph

    b = Builder("wide_batch")
    b.output(b.conv2d(b.input("x", (60_000, 4, 2, 2)), 4, kernel=1, name="mix"))
    set_max_memory(4 << 20)  # a step limit of 2,048
    try:
        with pytest.raises(LimitError, match=r"lowered engine operations \(refused while lowering node 'mix'\): "
                                             r"exceeds the step limit .* found more than 2,048"):
            compile_graph(b.build(), load_chip("m1"))
    finally:
        set_max_memory(None)


def test_a_one_byte_working_set_still_plans() -> None:
    from anesim.chips import load_chip
    from anesim.compiler import compile_file
    from anesim.sweep.overrides import apply_overrides
    from anesim.timing import simulate

    chip = apply_overrides(load_chip("m1"), {"memory.working_set_cap_bytes": 1})
    assert simulate(compile_file(str(Path(__file__).parents[1] / "programs" / "gemm_512.yaml"), chip),
                    chip).latency_s > 0


def test_an_empty_input_with_huge_other_dimensions_is_refused_before_numpy_sees_it() -> None:
    """A model input of shape (0, 2**40, 8, 2**20) holds no element, but numpy refuses to draw it
    (its dimensions multiply past numpy's index range) with a ValueError; the size check counts the
    other dimensions of an empty input, so it is a LimitError naming the file. A plain empty input
    is still drawn."""
    from anesim.functional import draw_inputs

    with pytest.raises(LimitError, match="m.onnx: input 'x' of shape \\(0, 1099511627776, 8, 1048576\\)"):
        draw_inputs([("x", (0, 1 << 40, 8, 1 << 20), "fp16")], 0, "m.onnx")
    assert draw_inputs([("x", (0, 3), "fp16")], 0, "m.onnx")["x"].shape == (0, 3)


def test_a_float64_constant_beyond_float32_is_inf_without_a_warning() -> None:
    """A model's float64 constant beyond float32's range is ±inf, as fp16 would hold it; numpy's
    overflow warning is not the user's business (found by the input fuzzer, seed 77)."""
    import warnings

    from anesim.compiler.graph.constants import ConstantData

    data = ConstantData((2,), given=np.array([1e300, -1e300]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = data.array()
    assert got.dtype == np.float32 and list(got) == [np.inf, -np.inf]


@pytest.mark.parametrize(("declared", "ok"), [([2, 3], True), (["n", 3], True), ([3, 2], False),
                                               ([2, 3, 1], False), ([], False)])
def test_an_onnx_output_declared_with_another_shape_is_refused(tmp_path: Path, declared: list, ok: bool) -> None:
    """ONNX Runtime merges a declared output shape that disagrees leniently, with a warning; the
    model is malformed, and anesim refuses it as the Core ML importer does. A symbolic dimension
    is open."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import load_graph

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared)])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    if ok:
        assert load_graph(path).info(load_graph(path).outputs[0]).shape in ((2, 3), (1, 1, 2, 3))
        return
    with pytest.raises(ProgramError, match="output 'y': the declared output shape is not the one the operators give"):
        load_graph(path)


def test_an_onnx_intermediate_declared_with_another_shape_is_refused(tmp_path: Path) -> None:
    """The same for a value_info entry (the shipped networks carry hundreds, all consistent)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import load_graph

    def model(hidden: list) -> Path:
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Neg", ["h"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                                  value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, hidden)])
        path = tmp_path / f"m{len(hidden)}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return path

    load_graph(model([2, 3]))
    with pytest.raises(ProgramError, match="value 'h': the declared value shape is not the one the operators give"):
        load_graph(model([6]))
    # and its element type
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Neg", ["h"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              value_info=[helper.make_tensor_value_info("h", TensorProto.INT32, [2, 3])])
    path = tmp_path / "typed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ProgramError, match="value 'h': the declared value type is not the one the operators give"):
        load_graph(path)


def test_an_onnx_output_declared_with_another_element_type_is_refused(tmp_path: Path) -> None:
    """A float result declared int32: ONNX Runtime refuses to load the model; handing the value
    back converted would round it (1.6 became 2)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anesim.compiler import load_graph

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ProgramError, match="output 'y': the declared output type is not the one the operators give"):
        load_graph(path)


def test_an_integer_output_the_engine_cannot_hand_back_is_an_error_naming_it() -> None:
    """An output declared as an integer type is handed back rounded from the engine's fp16; a
    value that type cannot hold (an infinity, NaN, one out of range) has no defined conversion,
    so it is refused naming the output rather than wrapped to garbage (inf became INT_MIN)."""
    from anesim.compiler.reference.onnx_host import from_engine
    from anesim.errors import UnsupportedError

    fp16 = np.array([1.4, 2.5, 3000, -7], np.float16)
    assert from_engine(fp16, np.dtype(np.int32)).tolist() == [1, 2, 3000, -7]
    assert from_engine(np.array([1, 0], np.float16), np.dtype(np.bool_)).tolist() == [True, False]
    with pytest.raises(UnsupportedError, match=r"output 'y': an int32 output holds a value its type cannot hold"
                                               r".*found 1 such, the first inf"):
        from_engine(np.array([1, np.inf], np.float16), np.dtype(np.int32), "y")
    with pytest.raises(UnsupportedError, match="an int8 output .* found 2 such, the first nan"):
        from_engine(np.array([np.nan, 5, 300], np.float16), np.dtype(np.int8), "z")
