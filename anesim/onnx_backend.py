"""anesim as an ONNX backend (``onnx.backend.base.Backend``), so ONNX test suites run against it.

    import anesim.onnx_backend as backend
    rep = backend.prepare(model, device="m5-pro")   # compile for a chip
    outputs = rep.run([x])                           # execute with the engine's fp16 numerics
    outputs = backend.run_model(model, [x], device="m1")

Devices. ``device`` may be any chip name anesim has a file for (``m1``, ``m5-pro``, ``a17-pro``
...; ``anesim chips`` lists them). ``"CPU"`` — the device ONNX's test runner and most callers
pass, since ONNX has no device for a Neural Engine — means the chip named by the environment
variable ``ANESIM_ONNX_CHIP`` when it is set, else :data:`DEFAULT_CHIP` (``m5-pro``). Either way
the model runs on the simulated engine of that chip, with the chip's CPU running only what the
engine cannot (Core ML's CPU fallback, timed and reported as such). ``"CUDA"`` and other
devices are not supported.

Integer inputs (int64, int32) are compile-time data — shapes, indices, slice bounds — so a
model that has them is compiled when their values arrive, once per distinct value. Outputs
known at compile time (shape arithmetic) are returned as computed. Everything the engine
computes is fp16; outputs are converted to the types the model declares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from anesim.errors import AnesimError, InputError

DEFAULT_CHIP = "m5-pro"
CHIP_ENV = "ANESIM_ONNX_CHIP"  # overrides the chip "CPU" means

try:  # the base classes; without onnx the backend still imports and says what is missing
    from onnx.backend.base import Backend as _Backend
    from onnx.backend.base import BackendRep as _BackendRep
except ImportError:  # pragma: no cover - exercised only without the extra
    _Backend = object  # type: ignore[assignment,misc]
    _BackendRep = object  # type: ignore[assignment,misc]


def chip_for_device(device: str) -> str:
    """The chip a device names: itself, or for "CPU" ``$ANESIM_ONNX_CHIP`` else :data:`DEFAULT_CHIP`."""
    import os

    if device.split(":")[0].upper() == "CPU":
        return os.environ.get(CHIP_ENV) or DEFAULT_CHIP
    return device


class AnesimRep(_BackendRep):  # type: ignore[misc,valid-type]
    """A prepared model: compiled for one chip (per set of integer-input values)."""

    def __init__(self, model: Any, chip: Any, name: str = "<onnx>") -> None:
        from anesim.compiler.frontends.onnx import bound_inputs

        self.model = model
        self.chip = chip
        self.name = name
        self.bound_names = bound_inputs(model)
        inits = {i.name for i in model.graph.initializer}
        self.input_names = [v.name for v in model.graph.input if v.name not in inits]
        self._compiled: dict[bytes, tuple[Any, Any]] = {}
        if not self.bound_names:
            self._prepare({})

    def _prepare(self, bound: dict[str, np.ndarray]) -> tuple[Any, Any]:
        key = b"".join(f"{n}:{bound[n].dtype}:{bound[n].shape}:".encode() + np.ascontiguousarray(bound[n]).tobytes()
                       for n in self.bound_names)
        if key not in self._compiled:
            from anesim.compiler import compile_graph
            from anesim.compiler.frontends.onnx import import_onnx

            imported = import_onnx(self.model, self.name, bound)
            result = compile_graph(imported.graph, self.chip) if imported.graph is not None else None
            self._compiled[key] = (imported, result)
        return self._compiled[key]

    @property
    def compiled(self) -> Any:
        """The compile result (segments, host ops, report) of the last compile, or None."""
        if not self._compiled:
            return None
        return list(self._compiled.values())[-1][1]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Execute on a list (model input order) or a mapping of arrays; outputs in model order."""
        from anesim.functional import execute

        feeds = self._feeds(inputs)
        bound = {n: np.asarray(feeds.pop(n)) for n in self.bound_names}
        imported, result = self._prepare(bound)
        engine_in: dict[str, np.ndarray] = {}
        for value in imported.inputs:
            if not value.graph_name:
                continue
            arr = np.asarray(feeds[value.name])
            if tuple(arr.shape) != value.shape:
                raise InputError(f"input '{value.name}' has the wrong shape", expected=value.shape,
                                 found=tuple(arr.shape))
            # Inputs are passed in their ONNX type: host ops (the CPU fallback) read them exactly,
            # and engine segments read them converted to fp16 (CompileResult.execute).
            engine_in[value.graph_name] = arr.reshape(value.shape or (1,)).astype(value.dtype, copy=False)
        # Engine segments on the functional engine, host ops (CPU fallback) in numpy between them.
        produced = (result.execute(engine_in, lambda segment, fed: execute(segment, fed, self.chip))
                    if result is not None else {})
        outputs = []
        for value in imported.outputs:
            if value.name in imported.folded:
                outputs.append(imported.folded[value.name])
                continue
            # (in the declared type already: CompileResult.execute converts the engine's fp16)
            outputs.append(np.asarray(produced[value.graph_name]).reshape(value.shape))
        return tuple(outputs)

    def _feeds(self, inputs: Any) -> dict[str, Any]:
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            values = list(inputs) if isinstance(inputs, Sequence) or isinstance(inputs, tuple) else [inputs]
            if len(values) != len(self.input_names):
                raise InputError("wrong number of inputs", expected=len(self.input_names), found=len(values))
            feeds = dict(zip(self.input_names, values))
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"missing input '{missing[0]}'", expected=", ".join(self.input_names))
        return feeds



class AnesimBackend(_Backend):  # type: ignore[misc,valid-type]
    """The ONNX backend interface over anesim's compiler and functional engine."""

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        """Whether the model's operators import (compiling decides the rest)."""
        return True

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> AnesimRep:
        """Compile ``model`` for the chip ``device`` names ("CPU": ``$ANESIM_ONNX_CHIP`` or :data:`DEFAULT_CHIP`)."""
        from anesim.chips import load_chip
        from anesim.compiler.frontends.onnx import name_not_text
        from anesim.errors import ProgramError

        name = kwargs.get("name", "<onnx>")
        where = name_not_text(model.graph, "graph")
        if where is not None:
            raise ProgramError("not a valid ONNX model: a name or string attribute is not UTF-8 text", file=name,
                               where=where)
        chip = load_chip(chip_for_device(device))
        return AnesimRep(model, chip, kwargs.get("name", model.graph.name or "<onnx>"))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Compile and run once."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run one node: wrapped in a model whose inputs take the given arrays' types and shapes."""
        from onnx import helper

        arrays = [np.asarray(a) for a in (inputs.values() if isinstance(inputs, Mapping) else inputs)]
        names = [n for n in node.input if n]
        graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                        for n, a in zip(names, arrays)]
        outs = [helper.make_tensor_value_info(n, 0, None) for n in node.output if n]
        if outputs_info:
            outs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t)), s)
                    for n, (t, s) in zip([n for n in node.output if n], outputs_info)]
        opset = kwargs.pop("opset_version", None)
        model = helper.make_model(helper.make_graph([node], "node", graph_inputs, outs),
                                  opset_imports=[helper.make_opsetid("", opset)] if opset else None)
        return cls.run_model(model, arrays, device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """A chip anesim has a configuration for, or "CPU" (``$ANESIM_ONNX_CHIP`` or the default chip); never CUDA."""
        from anesim.chips import load_chip

        try:
            load_chip(chip_for_device(device))
        except AnesimError:
            return False
        return True


prepare = AnesimBackend.prepare
run_model = AnesimBackend.run_model
run_node = AnesimBackend.run_node
supports_device = AnesimBackend.supports_device
is_compatible = AnesimBackend.is_compatible
