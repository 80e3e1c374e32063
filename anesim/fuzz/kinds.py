"""One fuzz case per input kind: damage a seed input, write it to files, load it as a user would.

Every case function takes the case's random stream, a scratch folder and the shared reference
folder (for the real .hwx samples and raw kernels; None when absent) and either returns (the
input was accepted, timed and possibly executed) or raises. Seeds are built once per worker.
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from anesim.datafiles import shipped_dir
from anesim.fuzz.checks import exercise, other_commands
from anesim.fuzz.mutate import flip_bytes, hostile_text, mutate_doc



@dataclass(frozen=True)
class Sources:
    """Where the real samples are: the shared reference folder and the raw kernels' sidecars."""

    shared: str | None = None
    sidecars: str | None = None

EXECUTE_SHARE = 0.25  # share of accepted cases also executed (timing always runs)
REPORT_SHARE = 0.1  # share of accepted model files also read by the other commands (checks.other_commands)

PROGRAM_SEEDS = (
    """name: small_block
seed: 3
inputs:
  x: {shape: [1, 8, 8, 8]}
blocks:
  conv_relu:
    params: {x: null, c: null, k: 3}
    ops:
      - {op: conv2d, in: $x, out: y, out_channels: $c, kernel: $k, padding: 1, bias: true, activation: relu}
    returns: y
ops:
  - {use: conv_relu, with: {x: x, c: 8}, out: a}
  - {op: add, in: [a, x], out: s0}
  - repeat: 2
    as: i
    ops:
      - {op: relu, in: "s${i}", out: "s${i+1}"}
  - {op: avg_pool2d, in: s2, out: p, kernel: 2, stride: 2}
outputs: [p]
""",
    """name: small_mlp
seed: 1
inputs:
  x: {shape: [1, 32, 1, 4]}
constants:
  w: {shape: [1, 1, 4, 8], init: normal, std: 0.1}
  b: {shape: [1, 1, 1, 8], init: uniform, low: -0.5, high: 0.5}
  s: {shape: [1, 1, 1, 8], init: xavier_uniform, gain: 1.0}
ops:
  - {op: linear, in: x, out: h, out_features: 16, bias: {init: he_normal, gain: 0.5}}
  - {op: gelu, in: h, out: g}
  - {op: matmul, in: [g, w], out: m}
  - {op: add, in: [m, b], out: mb}
  - {op: mul, in: [mb, s], out: ms}
  - {op: softmax, in: ms, out: y, axis: -1}
outputs: [y]
""",
    """name: small_attrs
seed: 5
inputs:
  x: {shape: [1, 8, 8, 8]}
constants:
  mean: {shape: [8], init: zeros}
  var: {shape: [8], init: ones}
  gain: {shape: [8], init: fill, value: 1.5}
  shift: {shape: [8], init: uniform, low: -0.1, high: 0.1}
ops:
  - {op: batch_norm, in: x, out: bn, gamma: gain, beta: shift, mean: mean, var: var, eps: 1.0e-3}
  - {op: clip, in: bn, out: c, min: -1.0, max: 2.0}
  - {op: leaky_relu, in: c, out: lr, alpha: 0.1}
  - {op: slice, in: lr, out: sl0, axis: 2, start: 1, end: 8, step: 2}
  - {op: slice, in: sl0, out: sl, axis: 3, start: 0, end: 7, step: 2}
  - {op: max_pool2d, in: lr, out: mp, kernel: 3, stride: 2, padding: 1}
  - {op: concat, in: [sl, mp], out: cat, axis: 1}
  - {op: transpose, in: cat, out: tr, perm: [0, 1, 3, 2]}
  - {op: depth_to_space, in: tr, out: d2s, blocksize: 2, mode: CRD}
  - {op: space_to_depth, in: d2s, out: s2d, blocksize: 2}
  - {op: layer_norm, in: s2d, out: ln, axis: 1, eps: 1.0e-5}
  - {op: scale, in: ln, out: sc, scale: 0.5, bias: 0.25}
  - {op: shrink, in: sc, out: sh, lambd: 0.2, bias: 0.1}
  - {op: reduce_mean, in: sh, out: rm, axis: 3}
  - {op: argmax, in: sh, out: am, axis: 1, keepdims: true}
  - {op: softmax, in: rm, out: y, axis: 1}
outputs: [y, am]
""",
    """name: small_kinds
seed: 9
inputs:
  x: {shape: [1, 8, 6, 6]}
  z: {shape: [1, 8, 6, 6]}
ops:
  - {op: conv2d, in: x, out: c1, out_channels: 8, kernel: 3, padding: 2, dilation: 2, groups: 2, bias: true, weight_format: palette, palette_bits: 4}
  - {op: conv2d, in: c1, out: c2, out_channels: 8, kernel: 1, stride: 1, sparsity: 0.5}
  - {op: where, in: [z, c2, x], out: w}
  - {op: greater, in: [w, z], out: g}
  - {op: fmod, in: [w, z], out: f}
  - {op: hard_swish, in: f, out: hs}
  - {op: softplus, in: hs, out: sp}
  - {op: reduce_max, in: sp, out: rmax, axis: 2}
  - {op: global_max_pool, in: sp, out: gmp}
  - {op: gather, in: sp, out: ga, axis: 1, indices: [0, 2, 4]}
  - {op: argmin, in: sp, out: amin, axis: 3, keepdims: false, select_last_index: true}
  - {op: matmul, in: [sp, x], out: mm, transpose_b: true}
  - {op: linear, in: gmp, out: lin, out_features: 4, weight_format: int8}
  - {op: reshape, in: mm, out: rs, shape: [1, 8, 36, 1]}
outputs: [rmax, ga, amin, lin, rs, g]
""",
)


# Netplists of the unit kinds the reader models (one of each, small), as parsed documents.
NETPLIST_SEEDS: tuple[dict[str, Any], ...] = (
    {"Networks": ["main"], "Version": "1.0.9", "main": {
        "Inputs": ["a", "b"], "Units": ["conv", "both", "act", "joined"], "Outputs": ["joined@output"],
        "Weights": ["weights.bin"],
        "a": {"BatchSize": 1, "InputChannels": 8, "InputHeight": 4, "InputWidth": 4, "InputType": "Float16",
              "InputInterleave": 1, "InputRowStride": 64, "InputPlaneStride": 256},
        "b": {"InputChannels": 8, "InputHeight": 4, "InputWidth": 4, "InputType": "Float16"},
        "conv": {"Type": "Conv", "Bottom": "a", "Name": "conv", "OutputChannels": 8, "OutputType": "Float16",
                 "Params": {"Type": "Conv", "KernelHeight": 1, "KernelWidth": 1, "KernelIndex": 0,
                            "KernelOffset": 0, "KernelType": "Float16", "KernelMode": "Dense", "Step": [1, 1]}},
        "both": {"Type": "ScaledElementWise", "Bottom": ["conv", "b"], "Name": "both",
                 "Params": {"Type": "Add", "Scale": 0x3C00}},
        "act": {"Type": "Neuron", "Bottom": "both", "Name": "act", "Params": {"Type": "Sigmoid"}},
        "joined": {"Type": "Concat", "Bottom": ["act", "b"], "Name": "joined"},
        "joined@output": {"Bottom": "joined", "OutputType": "Float16", "OutputInterleave": 1},
    }},
    {"Networks": ["n"], "n": {
        "Inputs": ["x"], "Units": ["y"], "Outputs": ["y@output"],
        "x": {"BatchSize": 2, "InputChannels": 3, "InputHeight": 5, "InputWidth": 5, "InputType": "Float16"},
        "y": {"Type": "Neuron", "Bottom": "x", "Name": "y", "Params": {"Type": "Exp2"}},
        "y@output": {"Bottom": "y"},
    }},
)


@lru_cache(maxsize=None)
def hwx_samples(shared: str | None) -> list[tuple[str, bytes]]:
    """(name, bytes) of every real .hwx sample in the shared folder."""
    if shared is None:
        return []
    return [(p.name, p.read_bytes()) for p in sorted((Path(shared) / "hwx").glob("*/*.hwx*"))]


@lru_cache(maxsize=None)
def raw_samples(shared: str | None, sidecars: str | None) -> list[tuple[str, bytes, str]]:
    """(name, kernel bytes, sidecar text) of every eiln raw kernel that has a sidecar."""
    if shared is None or sidecars is None:
        return []
    from anesim.hwx.fuzzing import eiln_kernels

    out = []
    for rel, data in eiln_kernels(Path(shared)):
        side = Path(sidecars) / rel.replace(".bin", ".sidecar.json")
        if side.is_file():
            out.append((rel, data, side.read_text(encoding="utf-8")))
    return out


@lru_cache(maxsize=None)
def chip_seed() -> tuple[str, str]:
    """(root generation file text, a child chip file text)."""
    folder = shipped_dir("chips", "_chipdata")
    root = (folder / "generations" / "h13.yaml").read_text(encoding="utf-8")
    return root, (folder / "m1.yaml").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def parsed(text: str) -> Any:
    """A seed text parsed once (mutations work on deep copies)."""
    return yaml.load(text, Loader=_LOADER)


def dump(doc: Any) -> str:
    """A mutated document as YAML text."""
    return yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@lru_cache(maxsize=None)
def small_program() -> Any:
    """The first program seed compiled for the M1 (what the chip and .npy fuzzers run)."""
    from anesim.compiler import compile_graph
    from anesim.compiler.frontends.program_file import parse_program

    return compile_graph(parse_program(yaml.safe_load(PROGRAM_SEEDS[0]), "seed.yaml"), "m1")


@lru_cache(maxsize=None)
def onnx_bytes() -> list[bytes]:
    """The ONNX seeds, serialised."""
    from anesim.fuzz.models import onnx_seeds

    return [m.SerializeToString(deterministic=True) for m in onnx_seeds()]


def warm(src: Sources, kinds: frozenset[str]) -> None:
    """Build the seeds of ``kinds`` once (before the worker's address space is capped and its clock starts)."""
    if not kinds & set(CASES) - set(SELFTESTS):
        return
    import anesim.chips
    import anesim.compiler  # noqa: F401 - import (and load the numba caches) before the clock starts
    import anesim.functional  # noqa: F401

    anesim.chips.load_chip("m1")
    if "hwx" in kinds:
        hwx_samples(src.shared)
    if "raw" in kinds:
        raw_samples(src.shared, src.sidecars)
    if "chip" in kinds:
        chip_seed()
    if kinds & {"chip", "npy"}:
        small_program()
    if "onnx" in kinds:
        onnx_bytes()
    if "coreml" in kinds:
        import coremltools.proto.MIL_pb2  # noqa: F401


def _execute(rng: random.Random) -> bool:
    return rng.random() < EXECUTE_SHARE


# -- the eight kinds --------------------------------------------------------------------------------

def case_hwx(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged .hwx: decode, list, re-encode, build the program, time and execute it."""
    import anesim.hwx as hwx
    from anesim.hwx.to_program import build_program

    name, data = rng.choice(hwx_samples(src.shared))
    damaged = flip_bytes(data, rng, hot=0x5000)
    path = work / name
    path.write_bytes(damaged)
    decoded = hwx.load(path)
    hwx.listing(decoded)
    if hwx.encode(json.loads(json.dumps(hwx.to_json(decoded)))) != damaged:
        raise AssertionError(f"{name}: re-encoding a decodable input changed its bytes")
    exercise(build_program(decoded), "m1", name, execute=_execute(rng) and rng.random() < 0.5)


def case_raw(rng: random.Random, work: Path, src: Sources) -> None:
    """A raw command buffer with a damaged buffer, sidecar document or sidecar text."""
    import anesim.hwx as hwx
    from anesim.hwx.to_program import build_program

    rel, data, side = rng.choice(raw_samples(src.shared, src.sidecars))
    r = rng.random()
    if r < 0.3:
        data = flip_bytes(data, rng, hot=0x2000)
    elif r < 0.8:
        side = json.dumps(mutate_doc(json.loads(side), rng))
    else:
        side = hostile_text(side, rng)  # type: ignore[assignment]
    kernel = work / Path(rel).name
    kernel.write_bytes(data)
    sidecar = work / (kernel.stem + ".sidecar.json")
    sidecar.write_bytes(side if isinstance(side, bytes) else side.encode("utf-8", "surrogatepass"))
    decoded = hwx.load(kernel, sidecar=sidecar)
    hwx.listing(decoded)
    exercise(build_program(decoded), "m1", rel, execute=_execute(rng) and rng.random() < 0.3)


def case_chip(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged chip file (a whole generation file, or a child inheriting one); time a program on it."""
    from anesim.chips.loader import load_chip_file
    from anesim.compiler import compile_graph

    root, child = chip_seed()
    standalone = rng.random() < 0.7
    text = root + "name: Fuzz\n" if standalone else child
    if rng.random() < 0.7:
        out: str | bytes = dump(mutate_doc(parsed(text), rng, rng.choice((1, 1, 2, 3))))
    else:
        out = hostile_text(text, rng)
    path = work / "fuzz-chip.yaml"
    path.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8", "surrogatepass"))
    chip = load_chip_file(path)
    compiled = compile_graph(small_program().graph, chip)
    exercise(compiled, chip, "chip", execute=_execute(rng) and rng.random() < 0.2)


def _compiled(path: Path) -> tuple[Any, float]:
    """The model file compiled for the M1, and how long reading and compiling it took (the other
    commands leave out a slow one)."""
    from anesim.compiler import compile_file

    started = time.perf_counter()
    compiled = compile_file(path, "m1")
    return compiled, time.perf_counter() - started


def case_program(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged program YAML: compile, time and execute it."""
    text = rng.choice(PROGRAM_SEEDS)
    if rng.random() < 0.75:
        out: str | bytes = dump(mutate_doc(parsed(text), rng))
    else:
        out = hostile_text(text, rng)
    path = work / "fuzz-program.yaml"
    path.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8", "surrogatepass"))
    compiled, load_s = _compiled(path)
    exercise(compiled, "m1", "program", execute=_execute(rng))
    if rng.random() < REPORT_SHARE:
        other_commands(path, compiled, rng, load_s)


def _npy_header(shape: Any, descr: Any, fortran: Any) -> bytes:
    text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran, shape)
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def case_npy(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged or lying .npy input to the small program, read as ``anesim run --input`` reads it."""
    compiled = small_program()
    spec = compiled.program.inputs[0]
    value = np.random.default_rng(rng.randrange(1 << 30)).uniform(-1, 1, spec.shape).astype(np.float16)
    r = rng.random()
    if r < 0.45:
        shape: Any = list(spec.shape)
        pick = rng.random()
        if pick < 0.4:
            shape[rng.randrange(len(shape))] = rng.choice((0, 2, 4096, 1 << 20, 1 << 40, -1, 3))
        elif pick < 0.6:
            shape = rng.choice(([4096, 4096, 4096], [], [1 << 62, 1 << 62], [2, 3], list(spec.shape) + [1]))
        descr = rng.choice(("<f2", "<f2", "<f4", "<f8", "|i1", "<i8", "|b1", "|O", "<U4", "<c8", "V8",
                            "[('a', '<f2')]", "<m8", "nonsense"))
        fortran = rng.choice((False, False, True, "yes"))
        raw = value.tobytes()
        data = _npy_header(tuple(shape) if rng.random() < 0.9 else shape, descr, fortran)
        data += raw[:rng.randrange(len(raw) + 1)] if rng.random() < 0.3 else raw
    else:
        buf = io.BytesIO()
        np.save(buf, value if rng.random() < 0.8 else value.astype(rng.choice((np.float32, np.int8, np.float64))))
        data = flip_bytes(buf.getvalue(), rng, hot=128)
    path = work / "x.npy"
    path.write_bytes(data)
    exercise(compiled, "m1", "npy", execute=True, inputs={spec.name: str(path)})


def case_onnx(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged ONNX model: compile, time and execute it."""
    seeds = onnx_bytes()
    data = rng.choice(seeds)
    if rng.random() < 0.6:
        data = _mutate_onnx(data, rng)
    else:
        data = flip_bytes(data, rng)
    path = work / "fuzz.onnx"
    path.write_bytes(data)
    compiled, load_s = _compiled(path)
    exercise(compiled, "m1", "onnx", execute=_execute(rng))
    if rng.random() < REPORT_SHARE:
        other_commands(path, compiled, rng, load_s)


def _mutate_onnx(data: bytes, rng: random.Random) -> bytes:
    """Structured damage through the protobuf API: dims, attributes, initialisers, node wiring."""
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    g = model.graph
    for _ in range(rng.choice((1, 1, 2, 3))):
        r = rng.random()
        if r < 0.25:
            dims = rng.choice(list(g.input) + list(g.output)).type.tensor_type.shape.dim
            if len(dims):
                d = dims[rng.randrange(len(dims))]
                if rng.random() < 0.2:
                    d.dim_param = "N"
                else:
                    d.dim_value = rng.choice((0, -1, 2, 4096, 1 << 20, 1 << 40, 1 << 62))
        elif r < 0.5 and len(g.initializer):
            t = g.initializer[rng.randrange(len(g.initializer))]
            pick = rng.random()
            if pick < 0.4 and len(t.dims):
                t.dims[rng.randrange(len(t.dims))] = rng.choice((0, 1, 3, 1 << 20, 1 << 40, -2))
            elif pick < 0.7 and t.raw_data:
                t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
            else:
                t.data_type = rng.choice((0, 2, 7, 8, 10, 11, 16, 99))
        elif r < 0.8 and len(g.node):
            node = g.node[rng.randrange(len(g.node))]
            if len(node.attribute):
                a = node.attribute[rng.randrange(len(node.attribute))]
                if len(a.ints):
                    a.ints[rng.randrange(len(a.ints))] = rng.choice((0, -1, 2, 7, 1 << 31, 1 << 40))
                else:
                    a.i = rng.choice((0, -1, 2, 3, 1 << 31, 1 << 40))
            elif rng.random() < 0.5:
                node.op_type = rng.choice(("Loop", "If", "Conv", "NoSuchOp", ""))
        elif len(g.node):
            node = g.node[rng.randrange(len(g.node))]
            if len(node.input):
                node.input[rng.randrange(len(node.input))] = rng.choice(("x", "y", "missing", "", "w1"))
            elif len(node.output):
                node.output[0] = "x"
    return model.SerializeToString(deterministic=True)


def case_coreml(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged .mlpackage: spec bytes, spec fields, weight blob header or payload, manifest."""
    from anesim.fuzz.models import coreml_seed

    package = coreml_seed(work)
    data_dir = package / "Data" / "com.apple.CoreML"
    spec, blob, manifest = data_dir / "model.mlmodel", data_dir / "weights" / "weight.bin", package / "Manifest.json"
    r = rng.random()
    if r < 0.25:
        spec.write_bytes(flip_bytes(spec.read_bytes(), rng))
    elif r < 0.5:
        spec.write_bytes(_mutate_coreml(spec.read_bytes(), rng))
    elif r < 0.85:
        data = bytearray(blob.read_bytes())
        if rng.random() < 0.6:  # the blob record at 64: sentinel, dtype, size, offset
            field, width = rng.choice(((64, 4), (68, 4), (72, 8), (80, 8)))
            value = rng.choice((0, 1, 2, 3, 5, 7, 0xFFFF, 1 << 31, 1 << 40, (1 << 64) - 1, 64, 127, 4096))
            data[field:field + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
            blob.write_bytes(bytes(data))
        else:
            blob.write_bytes(flip_bytes(bytes(data), rng, hot=160))
    else:
        text = manifest.read_text(encoding="utf-8")
        if rng.random() < 0.5:
            out: str | bytes = json.dumps(mutate_doc(json.loads(text), rng))
        else:
            out = hostile_text(text, rng)
        manifest.write_bytes(out if isinstance(out, bytes) else out.encode("utf-8", "surrogatepass"))
    compiled, load_s = _compiled(package)
    exercise(compiled, "m1", "coreml", execute=_execute(rng))
    if rng.random() < REPORT_SHARE:
        other_commands(package, compiled, rng, load_s)


def _mutate_coreml(data: bytes, rng: random.Random) -> bytes:
    """Structured damage through coremltools' protobuf classes: dims, blob offsets, immediates."""
    from coremltools.proto import Model_pb2

    model = Model_pb2.Model()
    model.ParseFromString(data)
    main = model.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    for _ in range(rng.choice((1, 1, 2))):
        r = rng.random()
        if r < 0.25:
            dims = main.inputs[0].type.tensorType.dimensions
            dims[rng.randrange(len(dims))].constant.size = rng.choice((0, 2, 4096, 1 << 20, 1 << 40, 1 << 63))
        else:
            ops = [op for op in block.operations if op.type == "const"]
            op = rng.choice(ops)
            val = op.attributes["val"]
            if val.HasField("blobFileValue") and r < 0.6:
                val.blobFileValue.offset = rng.choice((0, 1, 63, 128, 4096, 1 << 40, (1 << 64) - 1))
            elif val.type.tensorType.dimensions and r < 0.8:
                dims = val.type.tensorType.dimensions
                dims[rng.randrange(len(dims))].constant.size = rng.choice((0, 1, 3, 1 << 20, 1 << 40))
            elif val.immediateValue.tensor.ints.values and r >= 0.9:
                # the same parameter in another element kind: strings, fractions, NaN, infinities
                tensor = val.immediateValue.tensor
                ints = list(tensor.ints.values)
                if rng.random() < 0.5:  # (filling another member of the oneof clears the ints)
                    tensor.strings.values.extend(rng.choice(("a", "1", "", "nan")) for _ in ints)
                else:
                    tensor.floats.values.extend(v + rng.choice((0.0, 0.5, math.nan, math.inf)) for v in ints)
            elif val.immediateValue.tensor.ints.values:
                values = val.immediateValue.tensor.ints.values
                values[rng.randrange(len(values))] = rng.choice((0, -1, 2, 9, 1 << 30, -(1 << 31)))
            else:
                val.type.tensorType.dataType = rng.choice((0, 1, 2, 4, 10, 11, 14, 21, 99))
    return model.SerializeToString(deterministic=True)


def case_plist(rng: random.Random, work: Path, src: Sources) -> None:
    """A damaged ANE netplist (its document, or the XML text): compile, time and execute it."""
    import plistlib

    doc = rng.choice(NETPLIST_SEEDS)
    data: bytes | None = None
    if rng.random() < 0.7:
        try:
            data = plistlib.dumps(mutate_doc(doc, rng), fmt=rng.choice((plistlib.FMT_XML, plistlib.FMT_BINARY)))
        except (TypeError, ValueError, OverflowError):  # (a value a plist cannot hold: damage the text)
            data = None
    if data is None:
        damaged = hostile_text(plistlib.dumps(doc).decode("utf-8"), rng)
        data = damaged if isinstance(damaged, bytes) else damaged.encode("utf-8", "surrogatepass")
    path = work / "fuzz.plist"
    path.write_bytes(data)
    compiled, load_s = _compiled(path)
    exercise(compiled, "m1", "plist", execute=_execute(rng))
    if rng.random() < REPORT_SHARE:
        other_commands(path, compiled, rng, load_s)


# Cases that misbehave on purpose, so the tests can show each failure is caught and counted.
def _selftest_hang(rng: random.Random, work: Path, src: Sources) -> None:
    while True:
        pass


def _selftest_memory(rng: random.Random, work: Path, src: Sources) -> None:
    bytearray(8 << 30)


def _selftest_escape(rng: random.Random, work: Path, src: Sources) -> None:
    {}["missing"]


def _selftest_unnamed(rng: random.Random, work: Path, src: Sources) -> None:
    from anesim.errors import ProgramError

    raise ProgramError("an error that names no file")


def _selftest_crash(rng: random.Random, work: Path, src: Sources) -> None:
    import os

    os._exit(3)


SELFTESTS = {"selftest-hang": _selftest_hang, "selftest-memory": _selftest_memory,
             "selftest-escape": _selftest_escape, "selftest-unnamed": _selftest_unnamed,
             "selftest-crash": _selftest_crash}

CASES: dict[str, Callable[[random.Random, Path, Sources], None]] = {**SELFTESTS,
    "hwx": case_hwx, "raw": case_raw, "chip": case_chip, "program": case_program, "npy": case_npy,
    "onnx": case_onnx, "coreml": case_coreml, "plist": case_plist,
}


def run_case(kind: str, rng: random.Random, work: Path, src: Sources) -> None:
    """Run one case of ``kind``."""
    CASES[kind](rng, work, src)
