"""ANE network descriptions (the ``.plist`` netplists Apple's compiler reads) -> graphs.

The netplist (guide ch. 22, "Native layers and netplist authoring") names the network's
inputs and units; each unit has a ``Type``, a ``Bottom`` and ``Params``. This reader covers the
unit types of the public samples (tinygrad's ``simple_conv``, ``simple_gemm``, ``plists_sum``,
``simple_concat``, ``plists_neuron``): ``Conv`` (weights generated, since the samples' weight
files are not published), ``ScaledElementWise`` Add/Multiply/Max/Min, ``Concat`` and ``Neuron``.
Inputs are declared in the order the ``Inputs`` list gives, which is the slot order.
"""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

from anesim.compiler.frontends.builder import Builder
from anesim.compiler.graph.graph import Graph
from anesim.errors import ProgramError, UnsupportedError

ELEMENTWISE = {"Add": "add", "Multiply": "mul", "Mul": "mul", "Max": "max", "Min": "min", "Sub": "sub"}
NEURONS = {"ReLU": "relu", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp2": "exp2",
           "Exp": "exp", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Inv": "reciprocal", "Log2": "log2"}


def _strip_port(name: str) -> str:
    return name.split("@", 1)[0]


class _Reader:
    def __init__(self, data: dict[str, Any], file: str) -> None:
        self.data = data
        self.file = file

    def fail(self, where: str, problem: str, **kw: Any) -> ProgramError:
        return ProgramError(problem, file=self.file, where=where, **kw)

    def run(self) -> Graph:
        networks = self.data.get("Networks")
        if not isinstance(networks, list) or not networks or networks[0] not in self.data:
            raise self.fail("key 'Networks'", "the netplist names no network")
        net_name = networks[0]
        net = self.data[net_name]
        if not isinstance(net, dict):
            raise self.fail(f"key '{net_name}'", "a network must be a dictionary")
        b = Builder(Path(self.file).stem.replace("simple_", "").replace("plists_", ""), source=self.file)
        for name in net.get("Inputs", []):
            spec = net.get(name, {})
            shape = [int(spec.get("BatchSize", 1)), int(spec.get("InputChannels", 1)),
                     int(spec.get("InputHeight", 1)), int(spec.get("InputWidth", 1))]
            if spec.get("InputType", "Float16") not in ("Float16", "UInt8"):
                raise self.fail(f"key '{net_name}.{name}.InputType'", "inputs must be Float16 or UInt8",
                                found=spec.get("InputType"))
            b.input(name, shape, "uint8" if spec.get("InputType") == "UInt8" else "fp16")
        for unit in net.get("Units", []):
            self._unit(b, net, net_name, unit)
        for out in net.get("Outputs", []):
            port = net.get(out, {})
            b.output(port.get("Bottom", _strip_port(out)) if isinstance(port, dict) else _strip_port(out))
        return b.build()

    def _unit(self, b: Builder, net: dict[str, Any], net_name: str, unit: str) -> None:
        spec = net.get(unit)
        where = f"key '{net_name}.{unit}'"
        if not isinstance(spec, dict):
            raise self.fail(where, "unit is not described")
        kind = spec.get("Type")
        params = spec.get("Params", {}) or {}
        bottoms = spec.get("Bottom")
        bottoms = bottoms if isinstance(bottoms, list) else [bottoms]
        name = spec.get("Name", unit)
        if kind == "Conv":
            x = b.tensor(bottoms[0])
            stride = params.get("Step", [1, 1])
            b.conv2d(x, int(spec["OutputChannels"]), kernel=(int(params.get("KernelHeight", 1)),
                                                             int(params.get("KernelWidth", 1))),
                     stride=(int(stride[1]), int(stride[0])) if isinstance(stride, list) else int(stride),
                     weights="normal", name=name)
        elif kind == "ScaledElementWise":
            op = ELEMENTWISE.get(params.get("Type", ""))
            if op is None:
                raise UnsupportedError("unsupported elementwise type", file=self.file, where=where,
                                       found=params.get("Type"))
            b.op(op, bottoms, name=name)
        elif kind == "Concat":
            b.concat(bottoms, axis=1, name=name)
        elif kind == "Neuron":
            op = NEURONS.get(params.get("Type", ""))
            if op is None:
                raise UnsupportedError("unsupported neuron type", file=self.file, where=where,
                                       found=params.get("Type"))
            if op == "exp2":
                b.op("exp", [b.scale(bottoms[0], 0.6931471805599453, name=f"{name}.ln2")], name=name)
            elif op == "log2":
                b.scale(b.op("log", bottoms, name=f"{name}.ln"), 1.4426950408889634, name=name)
            else:
                b.op(op, bottoms, name=name)
        else:
            raise UnsupportedError("unsupported unit type", file=self.file, where=where, found=kind)


def load_netplist(path: str | Path) -> Graph:
    """Read an ANE netplist (.plist) into a graph."""
    file = Path(path)
    try:
        data = plistlib.loads(file.read_bytes())
    except FileNotFoundError:
        raise ProgramError("no such netplist", file=file) from None
    except (OSError, plistlib.InvalidFileException, ValueError) as exc:
        raise ProgramError(f"cannot read netplist: {exc}", file=file) from None
    if not isinstance(data, dict):
        raise ProgramError("a netplist must be a dictionary", file=file)
    return _Reader(data, str(path)).run()
