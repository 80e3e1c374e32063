"""ANE network descriptions (the ``.plist`` netplists Apple's compiler reads) -> graphs.

The netplist (guide ch. 22, "Native layers and netplist authoring") names the network's
inputs, units and output ports; each unit has a ``Type``, a ``Bottom`` and ``Params``. This
reader covers the unit types of the public samples: ``Conv``, ``ScaledElementWise``
Add/Multiply/Max/Min/Sub at unit scale, ``Concat`` (channels) and ``Neuron``. Inputs are
declared in the order the ``Inputs`` list gives, which is the slot order.

Every key is read or refused: a key this reader does not know, a value of the wrong type, a mode
it cannot model (an interleaved or 3-D port, a packing other than the one anesim lays out, a
non-unit element-wise scale, sparse or non-fp16 kernels) is an error naming the key. A
convolution's weights live in the files ``Weights`` names, whose layout no public source gives:
they are not read, so the network compiles and times, but asking for their values (a functional
run) is refused.
"""

from __future__ import annotations

import plistlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.graph.constants import ConstantData
from anesim.compiler.graph.graph import Graph
from anesim.errors import AnesimError, ProgramError, UnsupportedError
from anesim.jsonfile import check_depth
from anesim.program.model import DType, Layout
from anesim.yamlfile import read_bounded

ELEMENTWISE = {"Add": "add", "Multiply": "mul", "Mul": "mul", "Max": "max", "Min": "min", "Sub": "sub"}
NEURONS = {"ReLU": "relu", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp2": "exp2",
           "Exp": "exp", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Inv": "reciprocal", "Log2": "log2"}
FP16_ONE = 0x3C00  # a ScaledElementWise ``Scale`` is an fp16 bit pattern; this one is 1.0
MAX_DIM = 1 << 20  # a port dimension past this is refused before any size is computed
MAX_NETPLIST_BYTES = 16 << 20  # (the public samples are 2 KB)
MAX_NETPLIST_DEPTH = 8  # a netplist nests four levels: network, unit, Params, Step

NETWORK_KEYS = ("Inputs", "Units", "Outputs", "Weights")
INPUT_KEYS = ("BatchSize", "InputChannels", "InputDepth", "InputHeight", "InputWidth", "InputInterleave",
              "InputPlaneStride", "InputRowStride", "InputType")
OUTPUT_KEYS = ("Bottom", "OutputInterleave", "OutputPlaneStride", "OutputRowStride", "OutputType")
UNIT_KEYS = ("Type", "Bottom", "Name", "OutputType", "Params", "UnescapedBottom", "UnescapedName",
             "OutputChannels")
CONV_PARAMS = ("Type", "KernelHeight", "KernelWidth", "KernelIndex", "KernelOffset", "KernelType",
               "KernelMode", "Step")


def _strip_port(name: str) -> str:
    return name.split("@", 1)[0]


class _Reader:
    def __init__(self, data: dict[str, Any], file: str) -> None:
        self.data = data
        self.file = file
        self.weight_files: list[str] = []

    # -- typed access: every value is checked before it is used --------------------------

    # (``where`` is a dotted key path: ``net.conv.Params.Step``)
    def fail(self, where: str, problem: str, **kw: Any) -> ProgramError:
        return ProgramError(problem, file=self.file, where=f"key '{where}'", **kw)

    def refuse(self, where: str, problem: str, **kw: Any) -> UnsupportedError:
        return UnsupportedError(problem, file=self.file, where=f"key '{where}'", **kw)

    def dict_at(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a dictionary", found=type(value).__name__)
        return value

    def str_at(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "expected a non-empty string", found=repr(value)[:60])
        return value

    def names_at(self, value: Any, where: str, *, single: bool = False) -> list[str]:
        """A list of names (or, with ``single``, also one name on its own)."""
        if single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list of names", found=repr(value)[:60])
        return [self.str_at(v, f"{where}[{i}]") for i, v in enumerate(value)]

    def int_at(self, value: Any, where: str, low: int = 1, high: int = MAX_DIM) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "expected an integer", found=repr(value)[:60])
        if not low <= value <= high:
            raise self.fail(where, "integer out of range", expected=f"{low}..{high}", found=value)
        return value

    def known_keys(self, spec: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in spec:
            if key not in allowed:
                raise self.refuse(f"{where}.{key}", "a netplist key this reader does not model",
                                  expected=", ".join(allowed))

    def mode(self, spec: dict[str, Any], key: str, allowed: tuple[Any, ...], where: str) -> None:
        """A mode key: absent, or one of the values anesim models."""
        if key in spec and spec[key] not in allowed:
            raise self.refuse(f"{where}.{key}", "a mode anesim does not model",
                              expected=" or ".join(repr(a) for a in allowed), found=repr(spec[key])[:60])

    # -- the network -----------------------------------------------------------------------

    def run(self) -> Graph:
        for key in self.data:
            if not isinstance(key, str):
                raise self.fail("", "keys must be strings", found=repr(key)[:60])
        networks = self.names_at(self.data.get("Networks"), "Networks")
        if len(networks) != 1:
            raise self.refuse("Networks", "a netplist with more than one network",
                              expected="one", found=len(networks))
        net_name = networks[0]
        if "Version" in self.data:  # (the samples' 1.0.9 and the guide's 1.0.10: the 1.0 schema)
            version = self.str_at(self.data["Version"], "Version")
            if not re.fullmatch(r"1\.0(\.\d+)?", version):
                raise self.refuse("Version", "a netplist schema version this reader does not model",
                                  expected="1.0.x", found=repr(version)[:60])
        extra = set(self.data) - {"Networks", "Version", net_name}
        if extra:
            raise self.refuse(str(sorted(extra, key=str)[0]), "a netplist key this reader does not model",
                              expected=f"Networks, Version, {net_name}")
        at = net_name
        net = self.dict_at(self.data.get(net_name), at)
        inputs = self.names_at(net.get("Inputs"), f"{at}.Inputs")
        units = self.names_at(net.get("Units"), f"{at}.Units")
        outputs = self.names_at(net.get("Outputs"), f"{at}.Outputs")
        if "Weights" in net:
            self.weight_files = self.names_at(net["Weights"], f"{at}.Weights")
        described = set(NETWORK_KEYS) | set(inputs) | set(units) | set(outputs)
        for key in net:
            if key not in described:
                raise self.refuse(f"{at}.{key}", "a netplist key no input, unit or output names")
        if len(set(inputs) | set(units) | set(outputs)) != len(inputs) + len(units) + len(outputs):
            raise self.fail(at, "a name is listed twice among the inputs, units and outputs")
        b = Builder(Path(self.file).stem.replace("simple_", "").replace("plists_", ""), source=self.file)
        for name in inputs:
            self._input(b, net, net_name, name)
        for unit in units:
            self._unit(b, net, net_name, unit)
        for out in outputs:
            self._output(b, net, net_name, out)
        return b.build()

    def _port_packing(self, spec: dict[str, Any], prefix: str, shape: list[int], dtype: DType,
                      where: str) -> None:
        """A port's interleave and strides: only the packing anesim lays out itself."""
        self.mode(spec, f"{prefix}Interleave", (1,), where)
        packed = Layout.packed("dram", None, shape[1], shape[2], shape[3], dtype)
        for key, natural in ((f"{prefix}RowStride", packed.row_stride_bytes),
                             (f"{prefix}PlaneStride", packed.plane_stride_bytes)):
            if key in spec and self.int_at(spec[key], f"{where}.{key}", 1, 1 << 40) != natural:
                raise self.refuse(f"{where}.{key}", "a packing other than the one anesim lays out",
                                  expected=natural, found=spec[key])

    def _input(self, b: Builder, net: dict[str, Any], net_name: str, name: str) -> None:
        where = f"{net_name}.{name}"
        spec = self.dict_at(net.get(name), where)
        self.known_keys(spec, INPUT_KEYS, where)
        kind = spec.get("InputType", "Float16")
        if kind not in ("Float16", "UInt8"):
            raise self.refuse(f"{where}.InputType", "inputs must be Float16 or UInt8", found=repr(kind)[:60])
        self.mode(spec, "InputDepth", (1,), where)
        shape = [self.int_at(spec.get(key, 1), f"{where}.{key}")
                 for key in ("BatchSize", "InputChannels", "InputHeight", "InputWidth")]
        self._port_packing(spec, "Input", shape, "uint8" if kind == "UInt8" else "fp16", where)
        b.input(name, shape, "uint8" if kind == "UInt8" else "fp16")

    def _output(self, b: Builder, net: dict[str, Any], net_name: str, out: str) -> None:
        where = f"{net_name}.{out}"
        port = net.get(out)
        if port is None:  # (an output named by its unit alone)
            b.output(b.tensor(_strip_port(out)))
            return
        port = self.dict_at(port, where)
        self.known_keys(port, OUTPUT_KEYS, where)
        self.mode(port, "OutputType", ("Float16",), where)
        source = self.str_at(port.get("Bottom", _strip_port(out)), f"{where}.Bottom")
        tensor = b.tensor(source)
        if len(tensor.shape) == 4:
            self._port_packing(port, "Output", list(tensor.shape), "fp16", where)
        b.output(tensor)

    def _unit(self, b: Builder, net: dict[str, Any], net_name: str, unit: str) -> None:
        where = f"{net_name}.{unit}"
        spec = self.dict_at(net.get(unit), where)
        self.known_keys(spec, UNIT_KEYS, where)
        kind = self.str_at(spec.get("Type"), f"{where}.Type")
        params = self.dict_at(spec.get("Params", {}), f"{where}.Params")
        given = self.names_at(spec.get("Bottom"), f"{where}.Bottom", single=True)
        bottoms = [_strip_port(n) for n in given]
        name = self.str_at(spec.get("Name", unit), f"{where}.Name")
        if name != unit:
            raise self.refuse(f"{where}.Name", "a unit whose Name differs from its key",
                              expected=repr(unit), found=repr(name)[:60])
        # The names before escaping: no escaping is modelled, so they must be the names themselves.
        for key, same in (("UnescapedBottom", given), ("UnescapedName", [name])):
            if key in spec and self.names_at(spec[key], f"{where}.{key}", single=True) != same:
                raise self.refuse(f"{where}.{key}", "an escaped name (anesim reads names as written)",
                                  expected=repr(same if len(same) > 1 else same[0]), found=repr(spec[key])[:60])
        self.mode(spec, "OutputType", ("Float16",), where)
        if kind != "Conv" and "OutputChannels" in spec:
            raise self.refuse(f"{where}.OutputChannels", f"a {kind} unit takes its channels from its inputs")
        if kind == "Conv":
            self._conv(b, spec, params, bottoms, name, where)
        elif kind == "ScaledElementWise":
            self.known_keys(params, ("Type", "Scale"), f"{where}.Params")
            kind_of = params.get("Type")
            op = ELEMENTWISE.get(kind_of) if isinstance(kind_of, str) else None
            if op is None:
                raise self.refuse(f"{where}.Params.Type", "unsupported elementwise type",
                                  expected=", ".join(ELEMENTWISE), found=repr(params.get("Type"))[:60])
            # (what a scale other than 1.0 multiplies, the result or an operand, no source says)
            self.mode(params, "Scale", (FP16_ONE,), f"{where}.Params")
            if len(bottoms) != 2:
                raise self.fail(f"{where}.Bottom", "an element-wise unit has two inputs", found=len(bottoms))
            b.op(op, bottoms, name=name)
        elif kind == "Concat":
            self.known_keys(params, (), f"{where}.Params")
            b.concat(bottoms, axis=1, name=name)
        elif kind == "Neuron":
            self.known_keys(params, ("Type",), f"{where}.Params")
            kind_of = params.get("Type")
            op = NEURONS.get(kind_of) if isinstance(kind_of, str) else None
            if op is None:
                raise self.refuse(f"{where}.Params.Type", "unsupported neuron type",
                                  expected=", ".join(NEURONS), found=repr(params.get("Type"))[:60])
            if len(bottoms) != 1:
                raise self.fail(f"{where}.Bottom", "a neuron has one input", found=len(bottoms))
            if op == "exp2":
                b.op("exp", [b.scale(bottoms[0], 0.6931471805599453, name=f"{name}.ln2")], name=name)
            elif op == "log2":
                b.scale(b.op("log", bottoms, name=f"{name}.ln"), 1.4426950408889634, name=name)
            else:
                b.op(op, bottoms, name=name)
        else:
            raise self.refuse(f"{where}.Type", "unsupported unit type",
                              expected="Conv, ScaledElementWise, Concat or Neuron", found=repr(kind)[:60])

    def _conv(self, b: Builder, spec: dict[str, Any], params: dict[str, Any], bottoms: list[str], name: str,
              where: str) -> None:
        pw = f"{where}.Params"
        self.known_keys(params, CONV_PARAMS, pw)
        self.mode(params, "Type", ("Conv",), pw)
        self.mode(params, "KernelType", ("Float16",), pw)
        self.mode(params, "KernelMode", ("Dense",), pw)
        if len(bottoms) != 1:
            raise self.fail(f"{where}.Bottom", "a convolution has one input", found=len(bottoms))
        x = b.tensor(bottoms[0])
        if len(x.shape) != 4:
            raise self.fail(f"{where}.Bottom", "a convolution reads an NCHW tensor", found=x.shape)
        cout = self.int_at(spec.get("OutputChannels"), f"{where}.OutputChannels")
        kh = self.int_at(params.get("KernelHeight", 1), f"{pw}.KernelHeight", 1, 64)
        kw = self.int_at(params.get("KernelWidth", 1), f"{pw}.KernelWidth", 1, 64)
        step = params.get("Step", [1, 1])
        if not isinstance(step, list) or len(step) != 2:
            raise self.fail(f"{pw}.Step", "expected [x step, y step]", found=repr(step)[:60])
        sx, sy = (self.int_at(s, f"{pw}.Step[{i}]", 1, 64) for i, s in enumerate(step))
        index = self.int_at(params.get("KernelIndex", 0), f"{pw}.KernelIndex", 0, 1 << 20)
        offset = self.int_at(params.get("KernelOffset", 0), f"{pw}.KernelOffset", 0, 1 << 40)
        if index >= len(self.weight_files):
            raise self.fail(f"{pw}.KernelIndex", "names no entry of the network's Weights list",
                            expected=f"below {len(self.weight_files)}", found=index)
        shape = (cout, x.shape[1], kh, kw)
        source = f"{self.weight_files[index]} at byte {offset}"
        file = self.file

        def unknown() -> np.ndarray:
            raise UnsupportedError(
                f"the weights of unit '{name}' are in {source}, which anesim does not read (no public "
                "source gives their layout): their values are unknown (anesim run --timing-only times the "
                "network without them)",
                file=file)

        weights = b.constant_data(f"{name}.weight", ConstantData.derived(shape, unknown, f"weights at {source}"))
        b.conv2d(x, cout, kernel=(kh, kw), stride=(sy, sx), weights=weights, name=name)


def load_netplist(path: str | Path) -> Graph:
    """Read an ANE netplist (.plist) into a graph."""
    file = Path(path)
    raw = read_bounded(file, ProgramError, "netplist", MAX_NETPLIST_BYTES)
    try:
        data = plistlib.loads(raw)
    # (the standard library's parser fails on malformed documents with whatever error its code
    # runs into: ExpatError, ValueError, IndexError, KeyError, LookupError for a bad encoding,
    # RecursionError. Only the parse is in this block, so each means the same thing.)
    except Exception as exc:
        raise ProgramError("cannot read netplist: not a well-formed property list", file=file,
                           found=f"{type(exc).__name__}: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise ProgramError("a netplist must be a dictionary", file=file, found=type(data).__name__)
    check_depth(data, ProgramError, file, "netplist", MAX_NETPLIST_DEPTH)
    try:
        return _Reader(data, str(path)).run()
    except AnesimError as exc:
        if exc.file:
            raise
        raise type(exc)(exc.problem, file=file, where=exc.where, expected=exc.expected,
                        found=exc.found) from None
