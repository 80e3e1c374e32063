"""What the Core ML conversions of the real networks need from the Core ML importer
(docs/networks.md): 1-D convolutions (Whisper's front end) and negative transpose axes (the
converter's head split in DistilBERT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anesim


@pytest.fixture(scope="module")
def ct():
    return pytest.importorskip("coremltools", reason="Core ML packages are written with coremltools (a test extra)")


def test_1d_convolution_and_negative_transpose_axes(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((8, 4, 3)) / 4).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 16))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.conv(x=x, weight=weight, bias=bias, strides=[2], pad_type="custom", pad=[1, 1], name="conv1d")
        y = mb.reshape(x=y, shape=[1, 2, 4, 8], name="heads")
        return mb.transpose(x=y, perm=[0, 2, -3, -1], name="swap")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    path = tmp_path / "conv1d.mlpackage"
    model.save(str(path))
    x = rng.standard_normal((1, 4, 16)).astype(np.float32)
    compiled = anesim.compile(path, "m5-pro")
    (got,) = anesim.execute(compiled, {"x": x}, "m5-pro").values()
    assert got.dtype == np.float32  # the description's output type, as the runtime hands it back

    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    conv = np.stack([np.einsum("ck,nck->n", weight[o], np.stack([padded[:, :, 2 * i:2 * i + 3] for i in range(8)], 1)
                               .reshape(8, 4, 3)) for o in range(8)]) + bias[:, None]
    want = conv.reshape(1, 2, 4, 8).transpose(0, 2, 1, 3)
    assert np.asarray(got).shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2 ** -7, atol=2 ** -7 * np.abs(want).max())


def _run(ct, prog, path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    model.save(str(path))
    compiled = anesim.compile(path, "m5-pro")
    (got,) = anesim.execute(compiled, feeds, "m5-pro").values()
    return np.asarray(got, np.float32)


def test_rank5_group_norm_view(ct, tmp_path: Path) -> None:
    """Group norm as the converter writes it: a (N, G, C/G, H, W) view reduced over its last three axes."""
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(1)
    gamma = rng.standard_normal((1, 8, 1, 1)).astype(np.float32)
    shift = rng.standard_normal((1, 4, 1, 1, 1)).astype(np.float32)  # a rank-5 constant, per group

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        v = mb.reshape(x=x, shape=[1, 4, 2, 4, 4], name="groups")
        mean = mb.reduce_mean(x=v, axes=[2, 3, 4], keep_dims=True)
        d = mb.sub(x=v, y=mean)
        var = mb.reduce_mean(x=mb.square(x=d), axes=[2, 3, 4], keep_dims=True)
        n = mb.real_div(x=d, y=mb.sqrt(x=mb.add(x=var, y=1e-5)))
        n = mb.add(x=n, y=shift)
        return mb.mul(x=mb.reshape(x=n, shape=[1, 8, 4, 4]), y=gamma, name="out")

    x = rng.standard_normal((1, 8, 4, 4)).astype(np.float32)
    got = _run(ct, prog, tmp_path / "gn.mlpackage", {"x": x})
    v = x.reshape(1, 4, 2, 4, 4)
    d = v - v.mean(axis=(2, 3, 4), keepdims=True)
    want = ((d / np.sqrt((d ** 2).mean(axis=(2, 3, 4), keepdims=True) + 1e-5) + shift).reshape(1, 8, 4, 4)) * gamma
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2 ** -7, atol=2 ** -7 * np.abs(want).max())


def test_rank5_attention_split_and_split_op(ct, tmp_path: Path) -> None:
    """torch's packed-projection split (unit axes through rank 5) and MIL split are pure data movement."""
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 1, 12))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.reshape(x=x, shape=[5, 1, 3, 4])
        y = mb.expand_dims(x=y, axes=[0])  # (1, 5, 1, 3, 4)
        y = mb.transpose(x=y, perm=[3, 1, 2, 0, 4])  # (3, 5, 1, 1, 4)
        y = mb.squeeze(x=y, axes=[-2])  # (3, 5, 1, 4)
        a, b = mb.split(x=y, split_sizes=[1, 2], axis=0)
        return mb.concat(values=[b, a], axis=0, name="out")

    x = np.arange(60, dtype=np.float32).reshape(5, 1, 12) / 8
    got = _run(ct, prog, tmp_path / "split.mlpackage", {"x": x})
    y = x.reshape(5, 1, 3, 4)[None].transpose(3, 1, 2, 0, 4).squeeze(-2)
    want = np.concatenate([y[1:], y[:1]], axis=0)
    np.testing.assert_array_equal(got, want)


def test_rank5_uses_without_a_lowering_are_refused(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    from anesim.errors import UnsupportedError

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3, 4, 4))], opset_version=ct.target.iOS17)
    def soft(x):
        return mb.softmax(x=mb.reshape(x=x, shape=[2, 3, 1, 4, 4]), axis=2, name="out5")

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3, 4, 4))], opset_version=ct.target.iOS17)
    def mixed(x):
        v = mb.reshape(x=x, shape=[2, 3, 2, 2, 4])
        m = mb.reduce_mean(x=v, axes=[1], keep_dims=True)  # one of the merged axes only
        return mb.reshape(x=mb.sub(x=v, y=m), shape=[2, 3, 4, 4], name="out")

    for prog, op in ((soft, "softmax"), (mixed, "reduce_mean")):
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                           compute_precision=ct.precision.FLOAT32)
        path = tmp_path / f"{op}.mlpackage"
        model.save(str(path))
        with pytest.raises(UnsupportedError, match=f"\\({op}\\)"):
            anesim.compile(path, "m5-pro")


@pytest.mark.parametrize("pad_type, before", [("same", 0), ("same_lower", 1)])
def test_same_and_same_lower_put_the_odd_pixel_on_opposite_sides(ct, tmp_path: Path, pad_type: str,
                                                                  before: int) -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 5, 5))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type=pad_type, name="pool")

    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    got = _run(ct, prog, tmp_path / f"{pad_type}.mlpackage", {"x": x})
    pad = ((0, 0), (0, 0), (before, 1 - before), (before, 1 - before))
    padded = np.pad(x, pad, constant_values=-np.inf)
    want = np.max([padded[:, :, i:i + 5, j:j + 5] for i in (0, 1) for j in (0, 1)], axis=0)
    np.testing.assert_allclose(got, want.astype(np.float16).astype(np.float32))


def test_a_cast_to_an_integer_type_is_refused_not_read_as_identity(ct, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    from anesim.errors import UnsupportedError

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.cast(x=mb.cast(x=x, dtype="int32", name="ints"), dtype="fp32", name="back")

    with pytest.raises(UnsupportedError, match="op .* 'ints' \\(cast\\): a cast to a non-float type .*found 'int32'"):
        _run(ct, prog, tmp_path / "cast.mlpackage", {"x": np.zeros((1, 2, 4, 4), np.float32)})


def test_layer_norm_with_a_shift_and_no_scale_keeps_the_shift_a_shift(ct, tmp_path: Path) -> None:
    """MIL's layer_norm takes gamma and beta, each optional; with beta alone, beta is the shift (it
    was passed on as the first parameter, where the scale goes). coremltools' builder cannot write
    beta without gamma, so the spec loses its gamma after the conversion."""
    from coremltools.converters.mil import Builder as mb

    beta = np.linspace(-1.0, 1.0, 8).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.layer_norm(x=x, axes=[-1], gamma=np.full(8, 3.0, np.float32), beta=beta, epsilon=1e-5, name="ln")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    spec = model.get_spec()
    (block,) = spec.mlProgram.functions["main"].block_specializations.values()
    del next(op for op in block.operations if op.type == "layer_norm").inputs["gamma"]
    path = tmp_path / "ln.mlpackage"
    ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True).save(str(path))
    x = np.random.default_rng(2).standard_normal((1, 4, 8)).astype(np.float32)
    (got,) = anesim.execute(anesim.compile(path, "m5-pro"), {"x": x}, "m5-pro").values()
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) + beta
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=2e-2)


@pytest.mark.parametrize("drop, extra", [("x", None), (None, "x")])
def test_an_op_missing_its_tensor_or_given_two_is_refused(ct, tmp_path: Path, drop, extra) -> None:
    """A damaged spec whose convolution has no input tensor, or two bound to 'x', is one clear error
    naming the op (the first raised IndexError, the second passed the second tensor on)."""
    from coremltools.converters.mil import Builder as mb

    from anesim.errors import AnesimError

    weight = np.ones((2, 2, 1, 1), np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.conv(x=x, weight=weight, name="conv")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    spec = model.get_spec()
    main = spec.mlProgram.functions["main"]
    (block,) = main.block_specializations.values()
    conv = next(op for op in block.operations if op.type == "conv")
    if drop:
        del conv.inputs[drop]
    else:
        conv.inputs[extra].arguments.add().name = conv.inputs[extra].arguments[0].name
    damaged = ct.models.MLModel(spec, weights_dir=model.weights_dir, skip_model_load=True)
    path = tmp_path / "damaged.mlpackage"
    damaged.save(str(path))
    with pytest.raises(AnesimError, match="'conv' \\(conv\\): parameter 'x' of conv needs one tensor"):
        anesim.compile(path, "m5-pro")


def _tampered(ct, prog, path: Path, op_name: str, dims: list[int]) -> Path:
    """``prog`` converted, with the declared output shape of operation ``op_name`` set to ``dims``."""
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    spec = model.get_spec()
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    (op,) = [o for o in block.operations if o.outputs and o.outputs[0].name == op_name]
    tensor = op.outputs[0].type.tensorType
    del tensor.dimensions[:]
    for d in dims:
        tensor.dimensions.add().constant.size = d
    tensor.rank = len(dims)
    ct.models.MLModel(spec, weights_dir=model.weights_dir).save(str(path))
    return path


@pytest.mark.parametrize("op_name, dims", [
    ("groups", [1, 2, 4, 4, 4]),  # a rank-5 reshape: the declared view is not the shape parameter's
    ("mean", [1, 4, 1, 1]),  # a rank-5 reduction declared without the kept axes
    ("relu", [1, 8, 4, 2]),  # a rank-4 operation: its result is (1, 8, 4, 4)
])
def test_a_declared_output_shape_the_parameters_do_not_give_is_refused(ct, tmp_path: Path, op_name: str,
                                                                        dims: list[int]) -> None:
    """A model whose declared output type disagrees with what the operation's parameters give is
    malformed: which of the two its producer meant decides the values, so it is refused, never
    built from one of them."""
    from coremltools.converters.mil import Builder as mb

    from anesim.errors import AnesimError

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        v = mb.reshape(x=x, shape=[1, 4, 2, 4, 4], name="groups")
        m = mb.reduce_mean(x=v, axes=[2, 3, 4], keep_dims=True, name="mean")
        y = mb.reshape(x=mb.sub(x=v, y=m), shape=[1, 8, 4, 4])
        return mb.relu(x=y, name="relu")

    path = _tampered(ct, prog, tmp_path / f"{op_name}.mlpackage", op_name, dims)
    with pytest.raises(AnesimError, match=f"declared output shape .*found {dims}".replace("[", "\\[").replace("]", "\\]")):
        anesim.compile(path, "m5-pro")
    # the untampered model compiles
    anesim.compile(_tampered(ct, prog, tmp_path / "ok.mlpackage", "relu", [1, 8, 4, 4]), "m5-pro")


def _relu_package(ct, tmp_path: Path) -> tuple[Path, Path, object]:
    """A one-op package as coremltools writes it (input x (1, 4, 8, 8), output y): its path, its
    spec file and the spec parsed, to be tampered with."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.proto import Model_pb2

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.relu(x=x, name="y")

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       compute_precision=ct.precision.FLOAT32)
    path = tmp_path / "relu.mlpackage"
    model.save(str(path))
    spec_file = next(path.rglob("*.mlmodel"))
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    return path, spec_file, spec


@pytest.mark.parametrize("side", ["input", "output"])
def test_a_description_naming_other_features_than_the_program_is_refused(ct, tmp_path: Path, side: str) -> None:
    """The description and the program disagree on a name: malformed, refused with both named
    (a run would have to guess what to feed or what to hand back)."""
    from coremltools.proto import Model_pb2

    from anesim.errors import ProgramError

    path, spec_file, spec = _relu_package(ct, tmp_path)
    assert anesim.execute(anesim.compile(path, "m1"), {"x": np.ones((1, 4, 8, 8), np.float32)}, "m1")["y"].dtype \
        == np.float32
    original = spec.SerializeToString()
    getattr(spec.description, side)[0].name = "renamed"
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(ProgramError, match=f"description's {side}s are not its program's") as err:
        anesim.compile(path, "m1")
    assert "renamed" in str(err.value) and spec_file.name in str(err.value)
    if side == "output":  # a float result declared as int32 would be rounded: refused too
        spec.ParseFromString(original)
        spec.description.output[0].type.multiArrayType.dataType = Model_pb2.ArrayFeatureType.INT32
        spec_file.write_bytes(spec.SerializeToString())
        with pytest.raises(ProgramError, match="output 'y': the model description's output type is not its program's"):
            anesim.compile(path, "m1")


def test_a_description_declaring_another_input_kind_or_shape_than_the_program_is_refused(ct, tmp_path: Path) -> None:
    """The description's input must be the program's: a float input declared as int32, or with
    another shape, is malformed (what would a run be fed?), refused with both named; so is an
    output declared with another shape than the program computes."""
    from coremltools.proto import Model_pb2

    from anesim.errors import ProgramError

    path, spec_file, spec = _relu_package(ct, tmp_path)
    original = spec.SerializeToString()
    spec.description.input[0].type.multiArrayType.dataType = Model_pb2.ArrayFeatureType.INT32
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(ProgramError, match="input 'x': the model description's input type is not its program's"):
        anesim.compile(path, "m1")
    for side, name, dims in (("input", "x", [1, 4, 8, 9]), ("output", "y", [1, 4, 8, 1])):
        spec.ParseFromString(original)
        shape = getattr(spec.description, side)[0].type.multiArrayType.shape
        del shape[:]
        shape.extend(dims)
        spec_file.write_bytes(spec.SerializeToString())
        found = ", ".join(map(str, dims))
        with pytest.raises(ProgramError, match=fr"{side} '{name}': the model description's {side} shape is not its "
                                               fr"program's \(expected \[1, 4, 8, 8\], found \[{found}\]\)"):
            anesim.compile(path, "m1")
    spec_file.write_bytes(original)
    anesim.compile(path, "m1")  # (as written by coremltools: accepted)


def test_integer_arithmetic_on_an_int32_input_is_refused_and_a_cast_of_it_kept(ct, tmp_path: Path) -> None:
    """Core ML adds int32 tensors exactly; the engine would hold 3001 as 3000 in fp16 and add
    there, so an int32 input read by anything but a cast to a float type is refused. The cast
    rounds as the engine holds the value: 3001 -> 3000, as a float conversion rounds it."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from anesim.errors import UnsupportedError

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.int32)], opset_version=ct.target.iOS16)
    def adds(x):
        return mb.cast(x=mb.add(x=x, y=np.int32(1000)), dtype="fp32", name="y")

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4), dtype=types.int32)], opset_version=ct.target.iOS16)
    def casts(x):
        return mb.relu(x=mb.cast(x=x, dtype="fp16"), name="y")

    paths = {}
    for name, prog in (("adds", adds), ("casts", casts)):
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                           compute_precision=ct.precision.FLOAT16)
        paths[name] = tmp_path / f"{name}.mlpackage"
        model.save(str(paths[name]))
    with pytest.raises(UnsupportedError, match=r"an operation on an integer tensor known only at run time.*'x' \(INT32\)"):
        anesim.compile(paths["adds"], "m1")
    x = np.array([[1, 3001, 5000, -7]], np.int32)
    out = anesim.execute(anesim.compile(paths["casts"], "m1"), {"x": x}, "m1")
    assert list(out.values())[0].tolist() == [[1.0, 3000.0, 5000.0, 0.0]]
    assert x.astype(np.float16)[0, 1] == 3000


def test_an_operation_attribute_other_than_its_name_is_refused(ct, tmp_path: Path) -> None:
    """An ML program operation's parameters are its inputs; an attribute beside its name (which
    coremltools' own reader refuses too) would be ignored if accepted: refused, named."""
    from anesim.errors import ProgramError

    path, spec_file, spec = _relu_package(ct, tmp_path)
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    relu = next(op for op in block.operations if op.type == "relu")
    relu.attributes["alpha"].CopyFrom(relu.attributes["name"])
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(ProgramError, match="attribute 'alpha' on a relu operation"):
        anesim.compile(path, "m1")


@pytest.mark.parametrize("tamper", ["program attribute", "function attribute", "block attribute", "opset",
                                    "version"])
def test_ml_program_fields_that_would_go_unread_are_refused(ct, tmp_path: Path, tamper: str) -> None:
    """What coremltools' own reader refuses is refused too, named: attributes of the program
    (but its build information), the function or the block, a function without a block for its
    opset among several, another format version."""
    from anesim.errors import AnesimError

    path, spec_file, spec = _relu_package(ct, tmp_path)
    program = spec.mlProgram
    main = program.functions["main"]
    block = main.block_specializations[main.opset]
    name = block.operations[0].attributes["name"]
    if tamper == "program attribute":
        program.attributes["precision"].CopyFrom(name)
    elif tamper == "function attribute":
        main.attributes["precision"].CopyFrom(name)
    elif tamper == "block attribute":
        block.attributes["precision"].CopyFrom(name)
    elif tamper == "opset":
        main.block_specializations["CoreML9"].CopyFrom(block)
        main.opset = "CoreML42"
    else:
        program.version = 2
    spec_file.write_bytes(spec.SerializeToString())
    expected = {"program attribute": "program attribute 'precision'", "function attribute": "main function attribute",
                "block attribute": "block attribute 'precision'", "opset": "no block for its opset",
                "version": "format version"}[tamper]
    with pytest.raises(AnesimError, match=expected):
        anesim.compile(path, "m1")


def test_a_function_input_that_is_not_a_tensor_is_refused(ct, tmp_path: Path) -> None:
    """A state (iOS 18's stateful models) or another non-tensor input was imported as a tensor of
    one element: refused, named."""
    from coremltools.proto import MIL_pb2

    from anesim.errors import UnsupportedError

    path, spec_file, spec = _relu_package(ct, tmp_path)
    main = spec.mlProgram.functions["main"]
    extra = main.inputs.add(name="cache")
    extra.type.stateType.wrappedType.tensorType.dataType = MIL_pb2.FLOAT16
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(UnsupportedError, match="input 'cache': a function input that is not a tensor"):
        anesim.compile(path, "m1")
