"""The ONNX backend conformance cases: loading, type classes, fp16 tolerances and one run.

Shared by tests/test_onnx_backend.py and benchmarks/onnx_conformance.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXPECTED_FAILURES = Path(__file__).with_name("onnx_expected_failures.yaml")

# Element types the engine holds: fp16 (and fp32, computed in fp16), int8, uint8, bool, and
# int64 as compile-time shape data.
ANE_TYPES = {"FLOAT", "FLOAT16", "INT8", "UINT8", "BOOL", "INT64"}

# Tolerances (docs/onnx.md "Tolerances"). The engine stores every tensor in fp16 (unit roundoff
# u = 2^-11 ~ 4.9e-4) and evaluates transcendental functions through 33-sample lookup tables.
# A chain of a few roundings and one table stays within 2^-7 ~ 7.8e-3 relative; values near
# zero get the same bound in absolute terms, scaled to the output's magnitude (fp16 results of
# sums of terms of size M carry an error of a few u * M).
RTOL = 2.0 ** -7
# Cases whose inputs fp16 cannot hold: a run gives the right answer for the fp16-rounded inputs,
# which is not the case's answer.
_LARGE = ("inputs 10000 to 10003 differ by less than fp16's spacing of 8 there: fp16 holds them all as "
          "10000, so the softmax is uniform")
FP16_LIMITED = {f"test_{op}_large_number{suffix}": _LARGE for op in ("softmax", "logsoftmax")
                for suffix in ("", "_expanded", "_expanded_ver18")}
FP16_LIMITED["test_dynamicquantizelinear_expanded"] = (
    "the scale (max - min) / 255 is computed on the engine in fp16 (0.01961 for 0.0196078); x = -2.5 sits "
    "at 127.5 scale steps from the zero point, a rounding boundary the fp16 scale moves: one uint8 is 25, "
    "not 26 (the unexpanded operator runs on the host and passes)")
ATOL_FLOOR = 2.0 ** -7


def atol_for(reference: np.ndarray) -> float:
    """The absolute tolerance: 2^-7, or 2^-7 of the largest |value| when that is larger."""
    ref = np.asarray(reference)
    if ref.dtype.kind != "f" or ref.size == 0:
        return 0.0
    finite = np.abs(ref[np.isfinite(ref)])
    peak = float(finite.max()) if finite.size else 0.0
    return max(ATOL_FLOOR, RTOL * peak)


def load_cases() -> list:
    """Every node and simple-model case the installed onnx ships (node cases are generated)."""
    import warnings

    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return list(load_model_tests(kind="node")) + list(load_model_tests(kind="simple"))


def case_model(case):
    """The case's model and its data sets [(inputs, outputs)]."""
    import onnx
    from onnx import numpy_helper

    if case.model is not None:
        return case.model, [([_array(a) for a in ins], [_array(a) for a in outs]) for ins, outs in case.data_sets]
    path = Path(case.model_dir)
    model = onnx.load(str(path / "model.onnx"))
    sets = []
    for folder in sorted(path.glob("test_data_set*")):
        ins = [numpy_helper.to_array(_tensor(p)) for p in sorted(folder.glob("input_*.pb"))]
        outs = [numpy_helper.to_array(_tensor(p)) for p in sorted(folder.glob("output_*.pb"))]
        sets.append((ins, outs))
    return model, sets


def _array(value):
    """A data-set entry as an array (the generated cases hold some as TensorProto)."""
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


def _tensor(path: Path):
    import onnx

    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t


def types_of(model) -> set[str]:
    """The element types of a model's inputs, outputs, initializers and cast targets."""
    import onnx

    names = set()

    def add(elem: int) -> None:
        if elem:
            names.add(onnx.TensorProto.DataType.Name(elem))

    for value in list(model.graph.input) + list(model.graph.output):
        t = value.type
        if t.HasField("tensor_type"):
            add(t.tensor_type.elem_type)
        else:
            names.add("NON_TENSOR")
    for init in model.graph.initializer:
        add(init.data_type)
    for node in model.graph.node:
        for a in node.attribute:
            if a.name == "to" and node.op_type == "Cast":
                add(a.i)
            if a.type == onnx.AttributeProto.TENSOR:
                add(a.t.data_type)
            if a.type == onnx.AttributeProto.GRAPH:
                names.add("SUBGRAPH")
    return names


def is_ane_typed(model) -> bool:
    """True when the case uses only types the engine handles."""
    return types_of(model) <= ANE_TYPES


@dataclass
class Outcome:
    name: str
    status: str  # passed, refused, wrong, crashed
    detail: str
    ane_typed: bool
    seconds: float
    host_ops: int = 0
    folded: bool = False


def run_case(case, chip: str = "CPU") -> Outcome:
    """Import, compile and execute one case; compare every data set's outputs."""
    from anesim.errors import AnesimError
    from anesim.onnx_backend import AnesimBackend

    started = time.perf_counter()
    model, sets = case_model(case)
    ane = is_ane_typed(model)
    try:
        with np.errstate(all="ignore"):
            rep = AnesimBackend.prepare(model, chip)
            for inputs, expected in sets:
                got = rep.run(inputs)
                compare(expected, got)
    except AnesimError as exc:
        return Outcome(case.name, "refused", str(exc), ane, time.perf_counter() - started)
    except AssertionError as exc:
        return Outcome(case.name, "wrong", " ".join(str(exc).split())[:300], ane, time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - every other exception is a crash to report
        return Outcome(case.name, "crashed", f"{type(exc).__name__}: {exc}"[:300], ane,
                       time.perf_counter() - started)
    result = rep.compiled
    return Outcome(case.name, "passed", "", ane, time.perf_counter() - started,
                   len(result.host_ops) if result is not None else 0, result is None)


def compare(expected: list, got: tuple) -> None:
    """Shapes and types equal, values within the fp16 tolerances (AssertionError otherwise)."""
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for i, (ref, out) in enumerate(zip(expected, got)):
        ref = np.asarray(ref)
        out = np.asarray(out)
        assert out.shape == ref.shape, f"output {i}: shape {out.shape}, expected {ref.shape}"
        assert out.dtype == ref.dtype, f"output {i}: dtype {out.dtype}, expected {ref.dtype}"
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), rtol=RTOL,
                                       atol=atol_for(ref), err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(out, ref, err_msg=f"output {i}")
