"""The program YAML format: expansion, and one-line errors that name the file and key path."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anesim.cli import main
from anesim.compiler.frontends.program_file import load_program_file, parse_program
from anesim.errors import AnesimError, ProgramError

GOOD = """
name: block
seed: 3
inputs:
  x: {shape: [1, 8, 6, 6]}
constants:
  shift: {shape: [1, 8, 1, 1], init: normal, std: 0.1}
blocks:
  conv_relu:
    params: {x: null, c: null, stride: 1}
    ops:
      - {op: conv2d, in: $x, out: y, out_channels: $c, kernel: 3, stride: $stride, padding: 1, bias: true,
         activation: relu}
    returns: y
ops:
  - {use: conv_relu, with: {x: x, c: 8}, out: a}
  - {op: conv2d, out: b, out_channels: "${4 * 2}", kernel: 1}
  - {op: add, in: [b, shift], out: c0}
  - repeat: 2
    as: i
    ops:
      - {op: relu, in: "c${i}", out: "c${i + 1}"}
outputs: [c2]
"""


def _write(tmp_path: Path, text: str, name: str = "prog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_power_in_expressions(tmp_path: Path) -> None:
    """``**`` in ``${...}``: whole for whole numbers and a non-negative exponent, else a float."""
    text = GOOD.replace('out_channels: "${4 * 2}"',
                        'out_channels: "${2 ** 3 * 1 ** 1000000 + (-1) ** 2 - 1}"')
    text = text.replace("{op: add, in: [b, shift], out: c0}",
                        '{op: add, in: [b, shift], out: c00}\n  - {op: scale, in: c00, out: c0, scale: "${(320 / 5) ** -0.5}"}')
    g = load_program_file(_write(tmp_path, text))
    assert g.info("b").shape == (1, 8, 6, 6)
    scale = next(n for n in g.nodes if n.op == "scale").attrs["scale"]
    assert scale == 0.125 and isinstance(scale, float)


def test_good_program_expands(tmp_path: Path) -> None:
    g = load_program_file(_write(tmp_path, GOOD))
    ops = [n.op for n in g.nodes]
    assert ops == ["conv2d", "relu", "identity", "conv2d", "add", "relu", "relu"]
    assert g.outputs == ["c2"]
    assert g.info("b").shape == (1, 8, 6, 6)
    assert "a/y.weight" in g.constants and "b.weight" in g.constants
    assert g.nodes[0].where.startswith("key 'blocks.conv_relu.ops[0]'")


def test_nested_blocks_and_repeats_get_distinct_names(repo_root: Path) -> None:
    g = load_program_file(repo_root / "programs" / "resnet50.yaml")
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert len(convs) == 53
    assert len({n.output for n in g.nodes}) == len(g.nodes)
    assert sum(1 for n in g.nodes if n.op == "add") == 16


BAD = [
    ("kernel: 3, stride", "kernelz: 3, stride", "key 'blocks.conv_relu.ops[0].kernelz'", "unknown key for conv2d"),
    ("kernel: 1}", "kernel: 1, padding: foo}", "key 'ops[1].padding'", "'padding' must be"),
    ("in: [b, shift]", "in: [b, nope]", "key 'ops[2].in[1]'", "unknown tensor"),
    ("use: conv_relu", "use: conv_relux", "key 'ops[0].use'", "unknown block"),
    ("shape: [1, 8, 6, 6]", "shape: [1, 8, 6, -6]", "key 'inputs.x.shape'", "positive"),
    ("outputs: [c2]", "outputs: [c9]", "key 'outputs[0]'", "unknown tensor"),
    ('"c${i + 1}"', '"c${i +}"', "key 'ops[3].ops[0].out'", "malformed expression"),
    ("seed: 3", "seed: three", "key 'seed'", "valid integer"),
    ("repeat: 2", "repeat: -1", "key 'ops[3].repeat'", "non-negative"),
    ("name: block", "name: block\nextra: 1", "key 'extra'", "unknown key"),
    ("init: normal", "init: gaussian", "key 'constants.shift.init'", "unknown initialiser"),
    ("with: {x: x, c: 8}", "with: {x: x}", "key 'ops[0].with'", "missing block parameter"),
    ("with: {x: x, c: 8}", "with: {x: x, c: 8, d: 1}", "key 'ops[0].with.d'", "unknown block parameter"),
    ("{op: relu, in", "{op: relu, bogus: 1, in", "key 'ops[3].ops[0].bogus'", "unknown key for relu"),
    ('"${4 * 2}"', '"${4 * q}"', "key 'ops[1].out_channels'", "unknown name"),
    ("kernel: 3, stride: $stride", "kernel: 3, stride: 18446744073709551616",
     "key 'blocks.conv_relu.ops[0].stride'", "'stride' must be at most 2147483647"),
    ("kernel: 1}", "kernel: 1, padding: [0, 4294967296]}", "key 'ops[1].padding'", "'padding' must be at most"),
    ('"${4 * 2}"', '"${9 ** 9 ** 9}"', "key 'ops[1].out_channels'", "power too large"),
    ('"${4 * 2}"', '"${(0 - 8) ** 0.5}"', "key 'ops[1].out_channels'", "power out of range"),
    ('"${4 * 2}"', '"${0 ** -1}"', "key 'ops[1].out_channels'", "power out of range"),
    ('"${4 * 2}"', '"${10.0 ** 400}"', "key 'ops[1].out_channels'", "power out of range"),
    ('"${4 * 2}"', '"${2 ** 3 ** 0.5 < 1}"', "key 'ops[1].out_channels'", "unsupported expression"),
    # a palette's bit width on weights with no palette was read by nothing
    ("kernel: 1}", "kernel: 1, weight_format: int8, palette_bits: 2}", "key 'ops[1]'",
     "palette_bits describes a palette: it needs weight_format palette (found weight_format 'int8', palette_bits 2)"),
    ("kernel: 1}", "kernel: 1, palette_bits: 2}", "key 'ops[1]'", "found weight_format 'fp16'"),
]


def _edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize("old, new, key, problem", BAD)
def test_bad_files_give_one_line_naming_file_and_key(tmp_path: Path, old: str, new: str, key: str,
                                                     problem: str) -> None:
    path = _write(tmp_path, _edit(old, new), "bad.yaml")
    with pytest.raises(ProgramError) as info:
        load_program_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("bias, problem", [
    ('{value: "0x"}', "the initialiser's 'value' must be a finite number (expected a number, found '0x')"),
    ("{init: fill, value: true}", "the initialiser's 'value' must be a finite number"),
    ("{init: normal, std: .nan}", "the initialiser's 'std' must be a finite number"),
    ("{init: normal, std: 1" + "0" * 400 + "}", "the initialiser's 'std' must be a finite number"),
    ("{init: normal, std: 1180591620717411303424}", "ok"),
    ("{init: normal, seed: x}", "the initialiser's 'seed' must be a whole number"),
    # numpy refused these as it drew the numbers, a traceback past the CLI
    ("{init: uniform, low: 5, high: -5}", "the initialiser's interval is empty or too wide"),
    ("{init: uniform, low: -1.0e+308, high: 1.0e+308}", "the initialiser's interval is empty or too wide"),
    ("{init: normal, std: -2}", "the initialiser's 'std' is negative"),
    ("{init: xavier_uniform, gain: -1}", "the initialiser's 'gain' is negative"),
    ("{init: xavier_uniform, gain: 1.7e+308}", "the initialiser's interval is empty or too wide"),
    ("{init: he_normal, gain: 1.0e+308}", "ok"),
    ("{init: xavier_uniform, gain: -0.0}", "ok"),  # (numpy refused the interval 0.0 .. -0.0)
    ("[1, x, 1, 1, 1, 1, 1, 1]", "a constant's values must be numbers"),
    ("[1, 18446744073709551616, 1, 1, 1, 1, 1, 1]", "a constant's values must be numbers"),
    ("[[1, 2], [3]]", "a constant's values must form a rectangular array"),
    ("{init: uniform, low: 0.0, high: -0.0}", "ok"),
    ("{init: normal, std: 1.0e+39}", "ok"),  # (infinities, as fp16 holds them, and no warning)
    ("{init: uniform, low: -1.0e+39, high: 1.0e+39}", "ok"),
])
def test_a_weight_initialiser_takes_numbers_only(tmp_path: Path, bias: str, problem: str) -> None:
    """An op's weight initialiser is checked like a named constant's: a string where a number goes
    escaped as ValueError when the numbers were first drawn (found by fuzzing)."""
    from anesim.compiler import compile_file

    path = _write(tmp_path, _edit("bias: true", f"bias: {bias}"), "bad.yaml")
    if problem == "ok":  # (an integer past 2**64 that a float holds: numpy's isfinite raised TypeError)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile_file(path, "m1")
            for constant in load_program_file(path).constants.values():  # (drawn, as a run does)
                constant.data.array()
        return
    with pytest.raises(AnesimError) as info:
        compile_file(path, "m1")
    assert str(info.value).startswith(f"{path}: key 'blocks.conv_relu.ops[0]'")
    assert problem in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ninputs: {x: {shape: [1, 2]\n", "broken.yaml")
    with pytest.raises(ProgramError, match=r"broken.yaml: line \d+, column \d+: malformed YAML"):
        load_program_file(path)


def test_cli_compile_bad_file_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _edit(*BAD[0][:2]), "bad.yaml")
    assert main(["compile", str(path), "--chip", "m1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "kernelz" in err and str(path) in err


# -- fuzzing -------------------------------------------------------------------------------

BASE: dict[str, Any] = yaml.safe_load(GOOD)
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, width=16),
                 st.text(max_size=6), st.lists(st.integers(-2, 40), max_size=5),
                 st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(JUNK)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=5))] = draw(JUNK)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzzed_programs_fail_only_with_anesim_errors(doc: dict[str, Any]) -> None:
    try:
        parse_program(doc, "fuzz.yaml")
    except AnesimError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_fails_only_with_anesim_errors(text: str) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    try:
        parse_program(data, "text.yaml")
    except AnesimError:
        pass


PARAMETRISED = {
    "name": "p", "params": {"batch": 1, "width": 8},
    "inputs": {"x": {"shape": ["${batch}", 4, 4, "$width"]}},
    "ops": [{"op": "conv2d", "in": "x", "out": "y", "out_channels": "${width // 2}", "kernel": 1}],
    "outputs": ["y"],
}


def test_program_params_have_defaults_and_overrides() -> None:
    graph = parse_program(copy.deepcopy(PARAMETRISED))
    assert graph.inputs["x"].shape == (1, 4, 4, 8)
    graph = parse_program(copy.deepcopy(PARAMETRISED), params={"batch": 3, "width": 16})
    assert graph.inputs["x"].shape == (3, 4, 4, 16)
    with pytest.raises(ProgramError, match="unknown program parameter"):
        parse_program(copy.deepcopy(PARAMETRISED), params={"seq": 2})
    bad = copy.deepcopy(PARAMETRISED)
    bad["params"]["batch"] = 0
    with pytest.raises(ProgramError, match=r"inputs.x.shape.*positive integers"):
        parse_program(bad)


def test_constant_shapes_take_program_params() -> None:
    program = copy.deepcopy(PARAMETRISED)
    program["constants"] = {"offset": {"shape": ["${batch}", 4, 4, "$width"], "init": "normal", "std": 0.1}}
    program["ops"].append({"op": "add", "in": ["x", "offset"], "out": "z"})
    program["outputs"] = ["y", "z"]
    graph = parse_program(copy.deepcopy(program), params={"width": 6})
    assert graph.constants["offset"].shape == (1, 4, 4, 6)
    program["constants"]["offset"]["shape"][3] = "${width - 8}"
    with pytest.raises(ProgramError, match=r"constants.offset.shape.*positive integers"):
        parse_program(program)


@pytest.mark.parametrize("op, problem", [
    # each escaped as IndexError, ZeroDivisionError or TypeError (found by fuzzing program seeds
    # with these ops), or was read as something else
    ("{op: layer_norm, in: x, out: y, axis: 7}", "layer_norm: 'axis' must be an integer in [-4, 3], found 7"),
    ("{op: layer_norm, in: x, out: y, axis: 1, gamma: g}", ""),
    ("{op: rms_norm, in: x, out: y, axis: [1], gamma: g}", "rms_norm: 'axis' must be an integer"),
    ("{op: layer_norm, in: x, out: y, eps: .nan}", "'eps' must be a finite non-negative number"),  # (accepted)
    ("{op: batch_norm, in: x, out: y, eps: [1]}", "'eps' must be a finite non-negative number"),
    ("{op: batch_norm, in: x, out: y, eps: '1*0e-3'}", "'eps' must be a finite non-negative number"),
    ("{op: space_to_depth, in: x, out: y, blocksize: 0}", "'blocksize' must be a positive integer, found 0"),
    ("{op: depth_to_space, in: x, out: y, blocksize: 0.0}", "'blocksize' must be a positive integer"),
    ("{op: gelu, in: x, out: y, approximate: tanh}", "'approximate' must be 'none'"),  # (computed as erf)
    ("{op: gelu, in: x, out: y, approximate: none}", ""),
    ("{op: shrink, in: x, out: y, bias: []}", "'bias' must be a finite number, found []"),  # (broke the host op)
    ("{op: shrink, in: x, out: y, lambd: .inf}", "'lambd' must be a finite number"),
    ("{op: is_inf, in: x, out: y, detect_negative: 'no'}", "'detect_negative' must be true or false"),  # (true)
    ("{op: reshape, in: x, out: y, shape: [true, 8, 16, 1]}", "'shape' must be a list of integers"),
    ("{op: transpose, in: x, out: y, perm: [0.0, 1, 3, 2]}", "'perm' must be a permutation"),
    ("{op: transpose, in: x, out: y, perm: [false, true, 3, 2]}", "'perm' must be a permutation"),
    # (a clip table over a range fp16 cannot hold was refused only when the program ran)
    ("{op: clip, in: x, out: y, min: -1, max: 1.0e+300}", ""),  # (a max with -1)
    ("{op: clip, in: x, out: y, min: 70000, max: 80000}", "beyond fp16's range on the far side"),
    ("{op: clip, in: x, out: y, min: -1, max: 65504}", ""),
    ("{op: clip, in: [x, x], out: y}", "clip takes 1 inputs"),
    ("{op: clip, in: x, out: y, min: 'a'}", "clip bounds must be numbers, found min 'a'"),  # (a TypeError's text)
    ("{op: clip, in: x, out: y, min: .nan, max: 1}", "clip bounds must be numbers, found min nan"),
    # flags a truth test read: keepdims 'x' kept the axis, 2 and 0 were read as true and false
    ("{op: reduce_mean, in: x, out: y, axis: 1, keepdims: 'x'}", "'keepdims' must be true or false, found 'x'"),
    ("{op: argmax, in: x, out: y, axis: 1, keepdims: 2}", "'keepdims' must be true or false, found 2"),
    ("{op: reduce_sum, in: x, out: y, axis: 1, keepdims: 0}", "'keepdims' must be true or false, found 0"),
    ("{op: matmul, in: [x, x], out: y, transpose_b: 1}", "'transpose_b' must be true or false, found 1"),
    ("{op: reduce_max, in: x, out: y, axis: 1, keepdims: false}", ""),
])
def test_op_attributes_are_checked_when_the_file_is_read(tmp_path: Path, op: str, problem: str) -> None:
    text = ("name: t\ninputs:\n  x: {shape: [1, 8, 4, 4]}\nconstants:\n  g: {shape: [8], init: ones}\n"
            f"ops:\n  - {op}\noutputs: [y]\n")
    path = _write(tmp_path, text, "t.yaml")
    if not problem:
        load_program_file(path)
        return
    with pytest.raises(ProgramError) as info:
        load_program_file(path)
    assert str(info.value).startswith(f"{path}: key 'ops[0]"), str(info.value)  # (.axis, .eps: the key)
    assert problem in str(info.value)


def test_a_scale_past_float32_gives_infinities_without_a_numpy_warning(tmp_path: Path) -> None:
    """fp16 holds the factor as an infinity; the run computed it so and leaked numpy's overflow warning."""
    import anesim

    text = ("name: t\ninputs:\n  x: {shape: [1, 2, 2, 2]}\n"
            "ops:\n  - {op: scale, in: x, out: y, scale: 1.0e+300}\noutputs: [y]\n")
    program = anesim.compile(_write(tmp_path, text, "t.yaml"), "m1")
    x = np.array([1.0, -2.0, 0.5, -0.25] * 2, np.float16).reshape(1, 2, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = anesim.execute(program, {"x": x}, "m1")["y"]
    assert np.array_equal(y, np.where(x > 0, np.inf, -np.inf).astype(np.float16))
