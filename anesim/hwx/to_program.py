"""Decoded registers -> the generation-independent program model (anesim.program).

The register file is replayed task by task (registers persist across tasks) and read through
each map's ``semantics`` table, so one builder serves every generation. Where a register the
model needs was never written, a default is assumed (fp16 data, 1x1 kernel, stride 1, one
group): H14+ compilers omit registers that hold their reset value and those values are not
published (command-stream.md §3.5, Q2). Everything the builder cannot interpret - dynamic
weights, planar-engine configurations not seen in labelled samples, bias sources - is reported
in ``Program.notes`` rather than guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import FormatError
from anesim.hwx.container import Container
from anesim.hwx.regfile import RegisterFile
from anesim.hwx.summary import Decoded, KernelChannel, Summary, summarize
from anesim.hwx.tasks import DecodedTask
from anesim.program.kernels import gather_weights
from anesim.program.model import (
    DTYPE_BYTES, ActivationTable, Kernel, KernelPlacement, Layout, NeStage, PlanarStage, Program, Slot, Task, TensorSpec, align_up,
)

FMT_DTYPE = {0: "uint8", 1: "int8", 2: "fp16"}
NE_OPS = {0: "conv", 1: "elementwise", 4: "bypass", 5: "transconv"}
ACTIVATIONS = {0: "none", 1: "relu", 2: "lut"}
# Raw H13 planar-engine Cfg words and the operation each performs, named after the eiln kernels
# (add/mul/max/min .bin) and tinygrad sum.hwx that use them (derived from those samples).
PLANAR_OPS = {0x80000: "add", 0x80004: "mul", 0x80008: "max", 0x8000C: "min", 0x0: "copy"}
BINARY_PLANAR = {"add", "sub", "mul", "max", "min", "sqsum", "div"}
# Assumed values of registers a program never writes (see module docstring).
DEFAULTS = {"kw": 1, "kh": 1, "sx": 1, "sy": 1, "groups": 1, "cin": 1, "cout": 1, "win": 1, "hin": 1,
            "wout": 1, "hout": 1, "in_fmt": 2, "out_fmt": 2, "src1_memfmt": 2, "src2_memfmt": 2,
            "dst_memfmt": 2, "kfmt": 2, "post_scale": 0x3C00}
MAX_SLOT_BYTES = 1 << 32  # buffer addresses are 32-bit offsets in the ANE's DART window
LUT_SAMPLES = 33  # after a 4-value header: range_lo, range_hi, value_below, value_above (§5, derived)


def fp16(bits: int) -> float:
    """The float value of fp16 ``bits``."""
    return float(np.array([bits & 0xFFFF], dtype=np.uint16).view(np.float16)[0])


def fp32(bits: int) -> float:
    """The float value of fp32 ``bits``."""
    return float(np.array([bits & 0xFFFFFFFF], dtype=np.uint32).view(np.float32)[0])


class _Builder:
    def __init__(self, decoded: Decoded) -> None:
        self.decoded = decoded
        self.summary: Summary = summarize(decoded)
        self.notes: list[str] = list(self.summary.notes)
        self.slots: dict[int, Slot] = {}
        self.constant: dict[int, bytes] = {}
        self.regs = RegisterFile(decoded.regmap)

    def v(self, meaning: str) -> int:
        """The current value of a semantic quantity, or its assumed default."""
        return self.regs.sem(meaning, DEFAULTS.get(meaning, 0))

    # -- slots and tensors ------------------------------------------------------------------
    def build_slots(self) -> None:
        """Program.slots: constant data for sections with file bytes, sizes for host buffers."""
        d = self.decoded
        if isinstance(d, Container):
            for slot, addr in sorted(self.summary.slots.items()):
                sec = d.section_at(addr)
                if sec is None:
                    self.notes.append(f"buffer slot {slot} points at {addr:#x}, inside no section")
                elif sec is d.text:
                    continue  # the command stream itself
                elif sec.has_data:
                    data = d.section_bytes(sec)[addr - sec.addr:]
                    self.slots[slot] = Slot(slot, len(data), "constant", data)
                    self.constant[slot] = data
                else:
                    role = {1: "input", 2: "output"}.get(sec.maxprot, "intermediate")
                    size = max(sec.size, sec.segment_vmsize)
                    if size > MAX_SLOT_BYTES:
                        raise FormatError(f"buffer slot {slot} claims more bytes than the ANE can address",
                                          file=d.file, where=f"section {sec.segname},{sec.sectname}",
                                          expected=f"<= {MAX_SLOT_BYTES:#x}", found=f"{size:#x}")
                    self.slots[slot] = Slot(slot, size, role)
        else:
            weights = d.data[d.weights_offset:d.weights_offset + d.weights_size]
            self.slots[1] = Slot(1, len(weights), "constant", weights)
            self.constant[1] = weights
            for b in d.sidecar.buffers:
                self.slots[b.slot] = Slot(b.slot, b.bytes, b.role if b.role != "constant" else "constant")

    def build_tensors(self) -> dict[str, TensorSpec]:
        """Program.tensors: every host tensor with a slot, an NCHW shape and a known dtype."""
        out = {}
        for t in self.summary.tensors:
            if t.slot is None or len(t.shape) != 4 or t.dtype not in DTYPE_BYTES:
                if t.role in ("input", "output"):
                    self.notes.append(f"tensor {t.name}: no usable slot, NCHW shape or dtype in the program")
                continue
            n_stride, c_stride, h_stride = (t.strides + (0, 0, 0))[:3] if len(t.strides) >= 3 else (0, 0, 0)
            out[t.name] = TensorSpec(t.name, tuple(t.shape), t.dtype, t.role, t.slot, 0,  # type: ignore[arg-type]
                                     h_stride, c_stride, n_stride)
        return out

    # -- layouts ----------------------------------------------------------------------------
    def _dtype(self, meaning: str) -> str:
        code = self.v(meaning)
        if code not in FMT_DTYPE:
            self.notes.append(f"{meaning} = {code} is not a known tensor format; assuming fp16")
        return FMT_DTYPE.get(code, "fp16")

    def _dram(self, prefix: str, slot: int, channels: int, height: int, width: int) -> Layout:
        return Layout("dram", slot, 64 * self.v(f"{prefix}_base"), channels, height, width,
                      self._dtype(f"{prefix}_memfmt"),  # type: ignore[arg-type]
                      64 * self.v(f"{prefix}_row"), 64 * self.v(f"{prefix}_plane"),
                      1, 64 * self.v(f"{prefix}_depth"), 1, 64 * self.v(f"{prefix}_group"))

    def _pool(self, prefix: str, channels: int, height: int, width: int, fmt: str) -> Layout:
        return Layout("pool", None, 16 * self.v(f"{prefix}_base"), channels, height, width,
                      self._dtype(fmt),  # type: ignore[arg-type]
                      16 * self.v(f"{prefix}_row"), 16 * self.v(f"{prefix}_chan"))

    # -- one task ---------------------------------------------------------------------------
    def task(self, task: DecodedTask, binding: dict[str, int]) -> Task:
        """The model of one task, read from the register file after its writes."""
        win, hin, cin = self.v("win"), self.v("hin"), self.v("cin")
        wout, hout, cout = self.v("wout"), self.v("hout"), self.v("cout")
        planar = self._planar(task)
        sources = [self._dram("src1", binding["src1"], cin, hin, win) if "src1" in binding
                   else self._pool("l2_src1", cin, hin, win, "in_fmt")]
        if planar is not None and planar.op in BINARY_PLANAR:
            sources.append(self._dram("src2", binding["src2"], cin, hin, win) if "src2" in binding
                           else self._pool("l2_src2", cin, hin, win, "in_fmt"))
        result = (self._dram("dst", binding["dst"], cout, hout, wout) if "dst" in binding
                  else self._pool("l2_res", cout, hout, wout, "out_fmt"))
        ne = self._ne(task, binding, cin, hin, win, cout, hout, wout) if task.header.get("ENE", 1) else None
        fields = {f"Header.{k}": v for k, v in task.header.items()}
        for addr, value in self.regs.values.items():
            reg = self.decoded.regmap.lookup(addr)
            if reg is None:
                fields[f"{addr:#x}"] = value
            elif not reg.fields:
                fields[reg.name] = value
            else:
                fields.update({f"{reg.name}.{k}": v for k, v in reg.split(value)[0].items()})
        kind = ne.op if ne is not None else (planar.op if planar is not None else "none")
        return Task(task.index, tuple(sources), result, ne, planar, 1 << self.v("active_ne"),
                    1 << self.v("ocg"), self.v("tile_h"), False, f"task{task.index}:{kind}", fields)

    def _planar(self, task: DecodedTask) -> PlanarStage | None:
        if "pe_cfg" not in self.decoded.regmap.semantics:
            return None
        cfg = self.v("pe_cfg")
        scales = (self.v("pe_bias"), self.v("pe_scale"), self.v("pe_prescale"), self.v("pe_final"))
        if task.header.get("ENE", 1) and cfg == 0 and not any(scales):
            return None  # an NE task with the planar engine left idle
        op = PLANAR_OPS.get(cfg)
        if op == "copy" and self.v("groups") != 1:
            op = None  # the same Cfg word with many groups is some reduction (softmax, norm); not decoded
        if op is None:
            self.notes.append(f"task {task.index}: planar-engine configuration {cfg:#x} is not understood; "
                              "the task's planar stage is left out")
            return None
        bias, scale, pre, final = scales
        if pre == 0xBC00 and op == "add":
            op = "sub"  # add with the first source scaled by -1 (eiln sub.bin, frac.bin)
        return PlanarStage(op, pre_scale=fp16(pre) if pre else 1.0, bias=fp16(bias), scale=fp16(scale) if scale else 1.0,  # type: ignore[arg-type]
                           final_scale=fp32(final) if final else 1.0)

    def _channels(self, task: DecodedTask) -> list[KernelChannel]:
        return [c for c in self.summary.channels if c.task == task.index]

    def _ne(self, task: DecodedTask, binding: dict[str, int], cin: int, hin: int, win: int,
            cout: int, hout: int, wout: int) -> NeStage:
        op_mode = self.v("op_mode")
        op = NE_OPS.get(op_mode)
        if op is None:
            self.notes.append(f"task {task.index}: NE op mode {op_mode} is not understood; treated as convolution")
            op = "conv"
        act = ACTIVATIONS.get(self.v("nl_mode"), "none")
        kh, kw, sy, sx, py, px = (self.v(k) for k in ("kh", "kw", "sy", "sx", "py", "px"))
        pad_b = max((hout - 1) * max(sy, 1) + kh - hin - py, 0)
        pad_r = max((wout - 1) * max(sx, 1) + kw - win - px, 0)
        groups = max(self.v("groups"), 1)
        kernel, table = None, None
        channels = self._channels(task)
        slot = binding.get("kernel")
        if self.v("bias_mode"):
            self.notes.append(f"task {task.index}: BiasMode is set but where the bias comes from is unknown")
        if channels and slot is not None and act == "lut":
            if slot in self.constant:
                table = self._table(task, self.constant[slot], channels[0])
            else:
                self.notes.append(f"task {task.index}: lookup table is read from slot {slot} at run time; not modelled")
        elif channels and slot is not None and op in ("conv", "transconv"):
            kernel = self._kernel(task, slot, channels, cin // groups, cout, kh, kw)
        return NeStage(op, (kh, kw), (sy, sx), (py, pad_b, px, pad_r), (1, 1), groups, kernel, None,  # type: ignore[arg-type]
                       fp16(self.v("post_scale")), act, table)  # type: ignore[arg-type]

    def _table(self, task: DecodedTask, data: bytes, ch: KernelChannel) -> ActivationTable | None:
        raw = data[ch.offset:ch.offset + 2 * (4 + LUT_SAMPLES)]
        if len(raw) < 2 * (4 + LUT_SAMPLES):
            self.notes.append(f"task {task.index}: lookup table runs past the end of its buffer")
            return None
        words = np.frombuffer(raw, dtype=np.uint16).copy()
        head = words[:4].view(np.float16).astype(float)
        return ActivationTable(float(head[0]), float(head[1]), float(head[2]), float(head[3]), words[4:4 + LUT_SAMPLES], name=f"task{task.index}-lut")

    def _kernel(self, task: DecodedTask, slot: int, channels: list[KernelChannel], cin_g: int, cout: int,
                kh: int, kw: int) -> Kernel | None:
        code = self.v("kfmt")
        if self.v("pal_en") or self.v("sparse"):
            self.notes.append(f"task {task.index}: palettized or sparse kernels are not unpacked yet")
            return None
        fmt = FMT_DTYPE.get(code)
        if fmt is None:
            self.notes.append(f"task {task.index}: kernel format {code} is not understood")
            return None
        cores = 1 << self.v("active_ne")
        by_core = {c.channel: c for c in channels}
        placement = KernelPlacement(
            slot, tuple(by_core[n].offset if n in by_core else -1 for n in range(cores)),
            tuple(by_core[n].bytes if n in by_core else 0 for n in range(cores)),
            1 << self.v("ocg"), cores,
            align_up(cin_g * kh * kw * DTYPE_BYTES[fmt]),  # each output channel padded to 64 bytes (derived)
            (cout, cin_g, kh, kw),
        )
        dram_bytes = sum(c.bytes for c in channels)
        if slot not in self.constant:
            self.notes.append(f"task {task.index}: kernel is read from buffer slot {slot} at run time (dynamic weights)")
            return Kernel(fmt, None, dram_bytes=dram_bytes, placement=placement)  # type: ignore[arg-type]
        weights = gather_weights(self.constant[slot], placement, fmt)
        if weights is None:
            self.notes.append(f"task {task.index}: some output channel has no weights in its kernel channel; "
                              "the model's kernel is left empty")
            return None
        return Kernel(fmt, weights, dram_bytes=dram_bytes)  # type: ignore[arg-type]

    def build(self) -> Program:
        """The whole program, replaying the register file task by task."""
        d = self.decoded
        self.build_slots()
        tensors = self.build_tensors()
        tasks = []
        persistent: dict[str, int] = {}
        for task, binding in zip(d.stream.tasks, self.summary.bindings):
            self.regs.apply(task.writes)
            if d.generation.encoding == "B":
                persistent.update(binding)  # relocated bases stay bound until rewritten
                binding = dict(persistent)
            tasks.append(self.task(task, binding))
        name = Path(d.file).name.split(".")[0] if d.file else "program"
        if not isinstance(d, Container) and d.sidecar.name:
            name = d.sidecar.name
        return Program(name, d.generation.name, tasks, tensors, self.slots, source=d.file or "", notes=self.notes)


def build_program(decoded: Decoded) -> Program:
    """The program model of a decoded .hwx file or raw command buffer."""
    program = _Builder(decoded).build()
    # Remember the decoded form so anesim.encode(program) can give the original bytes back.
    program.decoded = decoded  # type: ignore[attr-defined]
    return program


def decoded_of(program: Any) -> Decoded | None:
    """The decoded form a program was built from, if it came from this module."""
    return getattr(program, "decoded", None)
