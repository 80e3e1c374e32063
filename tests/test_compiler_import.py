"""ONNX and Core ML import: models built with their own tools compile, run, and fail clearly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from coreml_support import mil_program

from anesim.cli import main
from anesim.compiler import compile_file, compile_graph, load_graph
from anesim.compiler.reference import fp16_inputs, run_graph, run_program
from anesim.errors import AnesimError, ProgramError, UnsupportedError

RNG = np.random.default_rng(0)


def _weights(shape, scale=0.2):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _close(want: np.ndarray, got: np.ndarray, tol: float = 5e-3) -> None:
    got = np.asarray(got, np.float32).reshape(want.shape)
    err = float(np.max(np.abs(want - got))) / (float(np.max(np.abs(want))) + 1e-6)
    assert err < tol, f"relative error {err:.3g}"


# -- ONNX ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_mod():
    return pytest.importorskip("onnx")


def _onnx_model(onnx_mod, nodes, inputs, outputs, inits):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_mod.checker.check_model(model)
    return model


def test_onnx_cnn_compiles_and_matches_onnx_reference(onnx_mod, tmp_path: Path) -> None:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "p1"], ["res"]),
        helper.make_node("Clip", ["res", "lo", "hi"], ["r6"]),
        helper.make_node("GlobalAveragePool", ["r6"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=-1),
    ]
    inits = {"w1": _weights((8, 3, 3, 3)), "b1": _weights((8,)), "g": 1 + _weights((8,), 0.1),
             "be": _weights((8,)), "mu": _weights((8,)), "var": 1 + np.abs(_weights((8,))),
             "w2": _weights((8, 1, 3, 3)), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32),
             "wf": _weights((10, 8)), "bf": _weights((10,))}
    model = _onnx_model(onnx_mod, nodes, [("x", [1, 3, 16, 16])], [("prob", [1, 10])], inits)
    path = tmp_path / "cnn.onnx"
    onnx_mod.save(model, str(path))
    result = compile_file(path, "m1")
    assert result.dispatches == 1  # the flatten moves to the host after the classifier head
    assert [h.node.op for h in result.host_after] == ["reshape"]
    kinds = [t.name.split(":")[1] for t in result.program.tasks]
    assert kinds[0] == "conv" and result.program.tasks[0].ne.activation == "relu"  # BN and ReLU fused
    x = RNG.standard_normal((1, 3, 16, 16)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    _close(want, result.execute({"x": x}, run_program)["prob"])


def test_onnx_features_last_attention_splits_at_the_key_transpose(onnx_mod, tmp_path: Path) -> None:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    s, d = 6, 8
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_g", "ln_b"], ["h"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["h", "wq"], ["q"]),
        helper.make_node("MatMul", ["h", "wk"], ["k"]),
        helper.make_node("MatMul", ["h", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "v"], ["ctx"]),
        helper.make_node("Add", ["ctx", "x"], ["y"]),
    ]
    inits = {"ln_g": 1 + _weights((d,), 0.1), "ln_b": _weights((d,)), "wq": _weights((d, d)),
             "wk": _weights((d, d)), "wv": _weights((d, d)), "scale": np.array(d ** -0.5, np.float32)}
    model = _onnx_model(onnx_mod, nodes, [("x", [1, s, d])], [("y", [1, s, d])], inits)
    path = tmp_path / "attn.onnx"
    onnx_mod.save(model, str(path))
    result = compile_file(path, "m1")
    # features-last keys need their width axis transposed: the host does it between two segments
    assert result.dispatches == 2
    assert "transpose" in result.report()
    x = RNG.standard_normal((1, s, d)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    _close(want, result.execute({"x": x}, run_program)["y"], tol=1e-2)


def test_onnx_unsupported_op_is_one_clear_line(onnx_mod, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from onnx import helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first"),
             helper.make_node("Bernoulli", ["r"], ["y"], name="pick")]
    model = _onnx_model(onnx_mod, nodes, [("x", [1, 4])], [("y", [1, 4])], {})
    path = tmp_path / "bernoulli.onnx"
    onnx_mod.save(model, str(path))
    with pytest.raises(UnsupportedError) as info:
        load_graph(path)
    opset = model.opset_import[0].version
    assert str(info.value) == (f"{path}: node 1 'pick' (Bernoulli, opset {opset}): random operators are not "
                               f"supported (anesim is deterministic) (found Bernoulli)")
    assert main(["compile", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_onnx_op_without_a_lowering_is_a_host_op(onnx_mod, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """LRN has no engine lowering: it loads as a host op the onnx reference evaluates."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first"),
             helper.make_node("LRN", ["r"], ["y"], name="pick", size=3)]
    model = _onnx_model(onnx_mod, nodes, [("x", [1, 4, 2, 3])], [("y", [1, 4, 2, 3])], {})
    path = tmp_path / "lrn.onnx"
    onnx_mod.save(model, str(path))
    result = compile_graph(load_graph(path), "m1")
    (host,) = result.host_ops
    assert host.node.attrs["source_type"] == "LRN" and "no engine lowering" in host.reason
    x = RNG.standard_normal((1, 4, 2, 3)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]
    _close(want, result.execute({"x": x}, run_program)["y"], tol=1e-2)
    assert main(["run", str(path), "--chip", "m1", "--timing-only"]) == 0
    captured = capsys.readouterr()
    assert "1 layer(s) run on the CPU (CPU fallback): LRN 'pick'" in captured.err
    assert "CPU fallback: 1 host operation(s)" in captured.out


def test_onnx_garbage_file_is_an_anesim_error(onnx_mod, tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07not a model at all")
    with pytest.raises(AnesimError):
        load_graph(path)


# -- Core ML ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ct():
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return pytest.importorskip("coremltools")


def _save(ct, prog, path: Path) -> Path:
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT16)
    model.save(str(path))
    return path


def test_coreml_mil_program_compiles_and_runs(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    wc, bc, wl = _weights((16, 3, 3, 3)), _weights((16,)), _weights((10, 16))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=wc, bias=bc, strides=[1, 1], pad_type="same", name="conv1")
        y = mb.relu(x=y, name="relu1")
        y = mb.avg_pool(x=y, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", name="pool")
        y = mb.reduce_mean(x=y, axes=[2, 3], keep_dims=True, name="gap")
        y = mb.reshape(x=y, shape=[1, 16], name="flatten")
        y = mb.linear(x=y, weight=wl, bias=np.zeros(10, np.float32), name="fc")
        return mb.softmax(x=y, axis=-1, name="prob")

    path = _save(ct, prog, tmp_path / "tiny.mlpackage")
    graph = load_graph(path)
    result = compile_file(path, "m1")
    assert result.dispatches == 1 and result.program.tasks[0].ne.activation == "relu"
    inputs = fp16_inputs(graph, 2)
    _close(run_graph(graph, inputs)["prob"], result.execute(inputs, run_program)["prob"])
    x = inputs["x"].astype(np.float32)
    conv = np.zeros((1, 16, 8, 8), np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(3):
        for j in range(3):
            conv += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 8, j:j + 8], wc[:, :, i, j])
    feat = np.maximum(conv + bc.reshape(1, -1, 1, 1), 0).mean(axis=(2, 3))
    logits = feat @ wl.T
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    _close(want, result.execute(inputs, run_program)["prob"], tol=2e-2)


@pytest.mark.parametrize("compress", ["palette", "int8"])
def test_coreml_compressed_weights_keep_their_format(ct, tmp_path: Path, compress: str) -> None:
    from coremltools.converters.mil import Builder as mb
    from coremltools.optimize import coreml as opt

    w1, w2 = _weights((32, 16, 1, 1)), _weights((32, 32, 3, 3))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, 8, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=w1, name="c1")
        return mb.conv(x=y, weight=w2, pad_type="same", name="c2")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT16)
    if compress == "palette":
        cfg = opt.OptimizationConfig(global_config=opt.OpPalettizerConfig(mode="uniform", nbits=4,
                                                                           weight_threshold=0))
        model = opt.palettize_weights(model, cfg)
    else:
        cfg = opt.OptimizationConfig(global_config=opt.OpLinearQuantizerConfig(mode="linear_symmetric",
                                                                               weight_threshold=0))
        model = opt.linear_quantize_weights(model, cfg)
    path = tmp_path / f"{compress}.mlpackage"
    model.save(str(path))
    graph = load_graph(path)
    result = compile_file(path, "m1")
    kernels = [t.ne.kernel for t in result.program.tasks]
    assert {k.format for k in kernels} == {"palette" if compress == "palette" else "int8"}
    if compress == "palette":
        assert all(k.palette_bits == 4 for k in kernels)
    inputs = fp16_inputs(graph, 3)
    # the model's own codes are kept: only fp16 rounding separates the run from the reference
    _close(run_graph(graph, inputs)[graph.outputs[0]], result.execute(inputs, run_program)[graph.outputs[0]])


def test_coreml_unsupported_op_is_one_clear_line(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 2, 2))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.sin(x=mb.relu(x=x, name="r"), name="wave")

    path = _save(ct, prog, tmp_path / "sin.mlpackage")
    with pytest.raises(UnsupportedError) as info:
        load_graph(path)
    message = str(info.value)
    assert "(sin): unsupported operation" in message and "'wave" in message and "\n" not in message


def test_coreml_damaged_weight_blob_names_the_file_and_offset(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.conv(x=x, weight=_weights((8, 8, 1, 1)), name="c")

    path = _save(ct, prog, tmp_path / "blob.mlpackage")
    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    data[64:68] = b"\0\0\0\0"  # the first blob's sentinel
    weights.write_bytes(bytes(data))
    with pytest.raises(ProgramError) as info:
        compile_file(path, "m1").program.tasks[0].ne.kernel.weights  # noqa: B018 - reading is the test
    message = str(info.value)
    assert str(weights) in message and "byte 0x40" in message and "\n" not in message
    weights.unlink()
    with pytest.raises(ProgramError, match="weight file that is missing"):
        load_graph(path)


def test_coreml_spec_built_with_the_protobuf_classes(ct, tmp_path: Path) -> None:
    """A spec written with coremltools' generated classes: ML programs are read, others refused."""
    from coremltools.proto import MIL_pb2, Model_pb2

    model, block = mil_program(MIL_pb2, Model_pb2)
    relu = block.operations.add(type="relu")
    relu.inputs["x"].arguments.add(name="x")
    relu.outputs.add(name="y")
    block.outputs.append("y")
    spec = tmp_path / "relu.mlmodel"
    spec.write_bytes(model.SerializeToString())
    graph = load_graph(spec)
    assert [n.op for n in graph.nodes] == ["relu"] and graph.outputs == ["y"]
    assert graph.info("x").shape == (1, 4, 2, 2)

    relu.inputs["alpha"].arguments.add(name="x")  # a parameter relu does not take: never ignored
    spec.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedError, match="'y' \\(relu\\): parameter 'alpha' of relu is not modelled"):
        load_graph(spec)

    classic = Model_pb2.Model(specificationVersion=4)
    classic.neuralNetwork.layers.add(name="fc")
    spec.write_bytes(classic.SerializeToString())
    with pytest.raises(UnsupportedError, match="only ML programs .*found neuralNetwork"):
        load_graph(spec)


def test_coreml_damaged_spec_names_the_file(ct, tmp_path: Path) -> None:
    spec = tmp_path / "broken.mlmodel"
    spec.write_bytes(b"\x08\x01\x12\x00\xff\xff")
    with pytest.raises(ProgramError) as info:
        load_graph(spec)
    assert str(spec) in str(info.value) and "not a Core ML model spec" in str(info.value)


def test_coreml_without_coremltools_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("coremltools", "coremltools.proto", "coremltools.proto.Model_pb2", "coremltools.proto.MIL_pb2"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of a None entry fails
    spec = tmp_path / "model.mlmodel"
    spec.write_bytes(b"")
    with pytest.raises(AnesimError, match=r"pip install 'anesim\[coreml\]'"):
        load_graph(spec)


def test_anesim_and_the_compiler_import_without_coremltools() -> None:
    """Only loading a Core ML model needs coremltools (and only loading ONNX needs onnx)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules.update({'coremltools': None, 'onnx': None})\n"
        "import anesim, anesim.compiler\n"
        "for info in pkgutil.walk_packages(anesim.compiler.__path__, 'anesim.compiler.'):\n"
        "    importlib.import_module(info.name)\n"
        "result = anesim.compile('programs/conv3x3.yaml', 'm1')\n"
        "print(len(result.program.tasks))\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_not_an_mlpackage_is_an_anesim_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty.mlpackage"
    folder.mkdir()
    with pytest.raises(AnesimError, match="Manifest.json"):
        load_graph(folder)
    spec = tmp_path / "model.mlmodel"
    spec.write_bytes(b"\x08\x01\x12\x00\xff\xff")
    with pytest.raises(AnesimError):
        load_graph(spec)
