"""ANE netplists: every key read or refused, damaged documents refused naming the file."""

from __future__ import annotations

import copy
import plistlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anesim.compiler import compile_file
from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.fuzz.kinds import NETPLIST_SEEDS
from anesim.timing import simulate


def _write(tmp_path: Path, doc: Any, name: str = "net.plist") -> Path:
    path = tmp_path / name
    path.write_bytes(plistlib.dumps(doc))
    return path


def _seed() -> dict[str, Any]:
    return copy.deepcopy(NETPLIST_SEEDS[0])


def test_every_unit_kind_compiles_and_times(tmp_path: Path) -> None:
    result = compile_file(_write(tmp_path, _seed()), "m1")
    kinds = {t.name.split(":")[1] for t in result.program.tasks}
    assert {"conv", "add"} <= kinds
    assert simulate(result, "m1").latency_s > 0


def test_convolution_weights_are_unknown_so_a_functional_run_is_refused(tmp_path: Path) -> None:
    from anesim.functional.execute import execute

    path = _write(tmp_path, _seed())
    program = compile_file(path, "m1").program
    inputs = {n: np.zeros(s.shape, np.float16) for n, s in program.tensors.items() if s.role == "input"}
    with pytest.raises(UnsupportedError, match="weights of unit 'conv' are in weights.bin at byte 0") as info:
        execute(program, inputs)
    assert info.value.file == str(path)


def test_a_network_without_convolutions_runs(tmp_path: Path) -> None:
    from anesim.functional.execute import execute

    program = compile_file(_write(tmp_path, copy.deepcopy(NETPLIST_SEEDS[1])), "m1").program
    out = execute(program, {"x": np.zeros((2, 3, 5, 5), np.float16)})
    assert np.all(next(iter(out.values())) == 1.0)  # 2 ** 0


@pytest.mark.parametrize("edit, error, needle", [
    (lambda d: d["main"]["both"]["Params"].__setitem__("Scale", 0x4000), UnsupportedError, "Params.Scale"),
    (lambda d: d["main"]["conv"]["Params"].__setitem__("PadTop", 1), UnsupportedError, "Params.PadTop"),
    (lambda d: d["main"]["conv"]["Params"].__setitem__("KernelMode", "Sparse"), UnsupportedError, "KernelMode"),
    (lambda d: d["main"]["a"].__setitem__("InputInterleave", 2), UnsupportedError, "InputInterleave"),
    (lambda d: d["main"]["a"].__setitem__("InputRowStride", 128), UnsupportedError, "InputRowStride"),
    (lambda d: d["main"]["a"].__setitem__("InputDepth", 3), UnsupportedError, "InputDepth"),
    (lambda d: d["main"].__setitem__("Extra", {"Type": "Conv"}), UnsupportedError, "main.Extra"),
    (lambda d: d.__setitem__("Networks", ["main", "other"]), UnsupportedError, "more than one network"),
    (lambda d: d["main"]["conv"].__setitem__("Name", "renamed"), UnsupportedError, "Name differs"),
    (lambda d: d["main"]["act"].__setitem__("OutputType", "Float32"), UnsupportedError, "OutputType"),
    (lambda d: d["main"]["a"].__setitem__("InputChannels", 1 << 40), ProgramError, "out of range"),
    (lambda d: d["main"]["a"].__setitem__("InputChannels", "8"), ProgramError, "expected an integer"),
    (lambda d: d["main"]["conv"]["Params"].__setitem__("Step", [1]), ProgramError, "Step"),
    (lambda d: d["main"]["conv"]["Params"].__setitem__("KernelIndex", 4), ProgramError, "KernelIndex"),
    (lambda d: d["main"]["both"].__setitem__("Bottom", ["conv"]), ProgramError, "two inputs"),
    (lambda d: d["main"]["both"]["Params"].__setitem__("Type", ["Add"]), UnsupportedError, "elementwise type"),
    (lambda d: d["main"].__setitem__("Units", "conv"), ProgramError, "list of names"),
    (lambda d: d.__setitem__("Version", "2.0"), UnsupportedError, "schema version"),
    (lambda d: d["main"]["conv"].__setitem__("UnescapedBottom", "a b"), UnsupportedError, "UnescapedBottom"),
    (lambda d: d["main"]["both"].__setitem__("UnescapedName", "bo%th"), UnsupportedError, "escaped name"),
])
def test_what_the_reader_does_not_model_is_refused(tmp_path: Path, edit: Any, error: type, needle: str) -> None:
    doc = _seed()
    edit(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(error, match=needle) as info:
        compile_file(path, "m1")
    assert info.value.file == str(path)


@pytest.mark.parametrize("data", [
    b"<plist><dict><key>a</key></plist>",  # malformed XML
    b"<?xml version='1.0'?><plist version='1.0'><key>x</key></plist>",  # the standard parser's IndexError
    b"bplist00" + b"\xff" * 40,  # a damaged binary plist
    plistlib.dumps(["not", "a", "dictionary"]),
    plistlib.dumps({"Networks": ["n"], "n": {"Inputs": [[[[[[[[[["x"]]]]]]]]]]}}),
])
def test_damaged_documents_are_one_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.plist"
    path.write_bytes(data)
    with pytest.raises(AnesimError) as info:
        compile_file(path, "m1")
    assert info.value.file == str(path)
