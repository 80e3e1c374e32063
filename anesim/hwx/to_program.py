"""Decoded registers -> the generation-independent program model (anesim.program).

The register file is replayed task by task (registers persist across tasks) and read through
each map's ``semantics`` table, so one builder serves every generation. Where a register the
model needs was never written, a default is assumed (fp16 data, 1x1 kernel, stride 1, one
group): H14+ compilers omit registers that hold their reset value and those values are not
published (command-stream.md §3.5, Q2). Every field value the builder cannot execute as the
engine would - a mode no document describes, a planar-engine configuration not seen in labelled
samples, a bias source - becomes a typed note in ``Program.approximations``
(:mod:`anesim.program.notes`) rather than a guess; ``anesim.load`` refuses a program with a
value note unless asked to approximate. Field values the model does not read at all are checked
against the values the sources describe (``regmaps/understood.json``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import FormatError
from anesim.hwx.container import Container
from anesim.hwx.regfile import RegisterFile
from anesim.hwx.summary import Decoded, KernelChannel, Summary, summarize
from anesim.hwx.tables import WORDS as LUT_WORDS
from anesim.hwx.tables import decode_table
from anesim.hwx.tasks import DecodedTask
from anesim.program.kernels import gather_weights
from anesim.hwx.understood import unexplained_fields
from anesim.program.model import (
    DTYPE_BYTES, REDUCTION_OPS, ActivationTable, Kernel, KernelPlacement, Layout, NeStage, PlanarStage, Program, Slot, Task,
    TensorSpec, align_up,
)
from anesim.program.notes import Note, NoteKind

FMT_DTYPE = {0: "uint8", 1: "int8", 2: "fp16"}
# NE MACCfg.OpMode: the enum names are published (command-stream.md §3.6, FT-MAPS h16: 0 Conv,
# 1 EW, 2 RCAS, 3 EWSqrt, 4 Bypass, 5 Transconv); what 1, 2, 3 and 5 compute from the registers
# is not, so those are refused rather than guessed.
NE_OPS = {0: "conv", 4: "bypass"}
NE_OP_NAMES = {1: "EW", 2: "RCAS", 3: "EWSqrt", 5: "Transconv"}
ACTIVATIONS = {0: "none", 1: "relu", 2: "lut"}
# H13 PE.Cfg fields (command-stream.md §3.6, FT-MAPS h13): En [1], OpMode [4:2], ReluEn [5],
# Cond [6], FirstSrc [16], SecSrc [19:18]. A second source from L2/DMA (SecSrc 2) with OpMode
# 0-4 is a binary op (AB examples: add, mul, max, min, (a+b)^2). The other words are read whole,
# as the eiln kernels use them; docs/functional.md gives the evidence for each.
PE_RELU_BIT = 0x20
PE_BINARY = {0: "add", 1: "mul", 2: "max", 3: "min", 4: "sqsum"}
PE_BINARY_MASK = 0xC001C  # SecSrc and OpMode: the only bits a binary configuration sets
PLANAR_WORDS = {0xC0000: "sub", 0x0: "copy", 0x40: "abs", 0x2: "reduce_max", 0x1000: "recip_sum"}
BINARY_PLANAR = {"add", "sub", "mul", "max", "min", "sqsum", "div"}
# Assumed values of registers a program never writes (see module docstring).
DEFAULTS = {"kw": 1, "kh": 1, "sx": 1, "sy": 1, "groups": 1, "cin": 1, "cout": 1, "win": 1, "hin": 1,
            "wout": 1, "hout": 1, "in_fmt": 2, "out_fmt": 2, "src1_memfmt": 2, "src2_memfmt": 2,
            "dst_memfmt": 2, "kfmt": 2, "post_scale": 0x3C00}
MAX_SLOT_BYTES = 1 << 32  # buffer addresses are 32-bit offsets in the ANE's DART window


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
        self.notes: list[Note] = [Note("value", n, field="container") for n in self.summary.notes]
        self.slots: dict[int, Slot] = {}
        self.constant: dict[int, bytes] = {}
        self.regs = RegisterFile(decoded.regmap)
        self.pool_written: dict[int, Layout] = {}  # on-chip pool offset -> the last result put there
        self.task_index: int | None = None

    def note(self, task: int | None, field: str, value: int | str | None, message: str,
             kind: NoteKind = "value") -> None:
        """Record a field value the model cannot execute faithfully."""
        self.notes.append(Note(kind, message, task, field, value))

    def field_of(self, meaning: str) -> str:
        """'Register.Field' of a semantic quantity, for notes."""
        reg, fld = self.decoded.regmap.semantics.get(meaning, (meaning, ""))
        return f"{reg}.{fld}" if fld else reg

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
                    self.note(None, f"slot {slot}", addr, "the buffer slot points inside no section")
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
                    self.note(None, f"tensor {t.name}", t.dtype, "no usable slot, NCHW shape or dtype in the program")
                continue
            n_stride, c_stride, h_stride = (t.strides + (0, 0, 0))[:3] if len(t.strides) >= 3 else (0, 0, 0)
            out[t.name] = TensorSpec(t.name, tuple(t.shape), t.dtype, t.role, t.slot, 0,  # type: ignore[arg-type]
                                     h_stride, c_stride, n_stride)
        return out

    # -- layouts ----------------------------------------------------------------------------
    def _dtype(self, meaning: str) -> str:
        code = self.v(meaning)
        if code not in FMT_DTYPE:
            self.note(self.task_index, self.field_of(meaning), code,
                      "not a tensor format the sources describe (0 uint8, 1 int8, 2 fp16)")
        return FMT_DTYPE.get(code, "fp16")

    def _dram(self, prefix: str, slot: int, channels: int, height: int, width: int, groups: int = 1) -> Layout:
        return Layout("dram", slot, 64 * self.v(f"{prefix}_base"), channels, height, width,
                      self._dtype(f"{prefix}_memfmt"),  # type: ignore[arg-type]
                      64 * self.v(f"{prefix}_row"), 64 * self.v(f"{prefix}_plane"),
                      1, 64 * self.v(f"{prefix}_depth"), groups, 64 * self.v(f"{prefix}_group"))

    def _pool(self, prefix: str, channels: int, height: int, width: int, fmt: str, groups: int = 1,
              group_register: str = "") -> Layout:
        group_stride = 16 * self.regs.field(group_register, "Stride") if groups > 1 else 0
        return Layout("pool", None, 16 * self.v(f"{prefix}_base"), channels, height, width,
                      self._dtype(fmt),  # type: ignore[arg-type]
                      16 * self.v(f"{prefix}_row"), 16 * self.v(f"{prefix}_chan"), 1, 0, groups, group_stride)

    def _pool_source(self, prefix: str, channels: int, height: int, width: int, groups: int) -> Layout:
        """A pool source; where an earlier task left one value per row there, the row is broadcast."""
        layout = self._pool(prefix, channels, height, width, "in_fmt", groups, "L2.SourceGroupStride")
        written = self.pool_written.get(layout.offset_bytes)
        if written is not None and written.width == 1 and width > 1:
            # The producer wrote one value per 16-byte line (a reduction over the width); the
            # reader's row stride steps those lines, so each row reads its one value.
            layout = replace(layout, width=1)
        return layout

    # -- one task ---------------------------------------------------------------------------
    def task(self, task: DecodedTask, binding: dict[str, int]) -> Task:
        """The model of one task, read from the register file after its writes."""
        self.task_index = task.index
        scopes = {"always"} | {k for k in ("src1", "src2", "dst") if k in binding}
        if task.header.get("ENE", 1):
            scopes.add("ne")
        for name, value, allowed, kind in unexplained_fields(self.decoded.regmap, self.regs, scopes):
            what = "the timing model" if kind == "timing" else "the model"
            self.note(task.index, name, value, f"{what} does not read this field, and the sources describe only "
                      f"{allowed}", kind)  # type: ignore[arg-type]
        win, hin, cin = self.v("win"), self.v("hin"), self.v("cin")
        wout, hout, cout = self.v("wout"), self.v("hout"), self.v("cout")
        planar = self._planar(task)
        # A planar-only task with many groups walks a fifth tensor axis (softmax and norm walk
        # rows this way); for the NE the groups are convolution groups over the channels.
        groups = max(self.v("groups"), 1) if not task.header.get("ENE", 1) else 1
        sources = [self._dram("src1", binding["src1"], cin, hin, win, groups) if "src1" in binding
                   else self._pool_source("l2_src1", cin, hin, win, groups)]
        if planar is not None and planar.op in BINARY_PLANAR:
            sources.append(self._dram("src2", binding["src2"], cin, hin, win, groups) if "src2" in binding
                           else self._pool_source("l2_src2", cin, hin, win, groups))
        if planar is not None and planar.op in REDUCTION_OPS:
            wout = 1  # one value per row: the result's rows are single 16-byte lines (docs/functional.md)
        result = (self._dram("dst", binding["dst"], cout, hout, wout, groups) if "dst" in binding
                  else self._pool("l2_res", cout, hout, wout, "out_fmt", groups, "L2.ResultGroupStride"))
        if result.space == "pool":
            self.pool_written[result.offset_bytes] = result
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
            self._unread_block("PE", task, "planar-engine registers of this generation are not decoded")
            return None
        cfg = self.v("pe_cfg")
        scales = (self.v("pe_bias"), self.v("pe_scale"), self.v("pe_prescale"), self.v("pe_final"))
        if task.header.get("ENE", 1) and cfg == 0 and not any(scales):
            return None  # an NE task with the planar engine left idle
        relu = bool(cfg & PE_RELU_BIT)
        word = cfg & ~PE_RELU_BIT
        op = PLANAR_WORDS.get(word)
        if op is None and word & ~PE_BINARY_MASK == 0 and word >> 18 == 2 and (word >> 2) & 7 in PE_BINARY:
            op = PE_BINARY[(word >> 2) & 7]
        if op == "copy" and self.v("groups") != 1 and not task.header.get("ENE", 1):
            op = "reduce_sum"  # the add configuration over many one-row groups: a sum along each row
        if op is None:
            self.note(task.index, self.field_of("pe_cfg"), cfg, "no source describes this planar-engine "
                      "configuration (docs/functional.md lists the understood ones)")
            return None
        bias, scale, pre, final = scales
        # sub.bin and frac.bin subtract as an add whose first source is pre-scaled by -1; the
        # stage keeps that form, so b - a comes out of add(-1 * a, b) with one rounding.
        return PlanarStage(op, pre_scale=fp16(pre) if pre else 1.0, bias=fp16(bias), scale=fp16(scale) if scale else 1.0,  # type: ignore[arg-type]
                           final_scale=fp32(final) if final else 1.0, relu=relu)

    def _unread_block(self, block: str, task: DecodedTask, message: str) -> None:
        """A note for every non-zero register of a block the builder has no semantics for."""
        for addr, value in sorted(self.regs.values.items()):
            reg = self.decoded.regmap.lookup(addr)
            owner = self.decoded.regmap.block_of(addr)
            if value and owner is not None and owner.name == block:
                self.note(task.index, reg.name if reg is not None else f"{addr:#x}", value, message)
                return

    def _channels(self, task: DecodedTask) -> list[KernelChannel]:
        return [c for c in self.summary.channels if c.task == task.index]

    def _ne(self, task: DecodedTask, binding: dict[str, int], cin: int, hin: int, win: int,
            cout: int, hout: int, wout: int) -> NeStage:
        op_mode = self.v("op_mode")
        op = NE_OPS.get(op_mode)
        if op is None:
            name = NE_OP_NAMES.get(op_mode)
            what = (f"NE op mode {op_mode} ({name}): the sources name it but not what it computes" if name
                    else "no source describes this NE op mode")
            self.note(task.index, self.field_of("op_mode"), op_mode, what + "; the approximation runs it as bypass")
            op = "bypass"
        nl_mode = self.v("nl_mode")
        act = ACTIVATIONS.get(nl_mode)
        if act is None:
            self.note(task.index, self.field_of("nl_mode"), nl_mode,
                      "no source describes this nonlinear mode (0 none, 1 relu, 2 lookup table)")
            act = "none"
        kh, kw, sy, sx, py, px = (self.v(k) for k in ("kh", "kw", "sy", "sx", "py", "px"))
        pad_b = max((hout - 1) * max(sy, 1) + kh - hin - py, 0)
        pad_r = max((wout - 1) * max(sx, 1) + kw - win - px, 0)
        groups = max(self.v("groups"), 1)
        if op in ("conv", "transconv") and (min(kh, kw, sy, sx) < 1 or cin % groups or cout % groups):
            raise FormatError(f"task {task.index}: a convolution the engine cannot run", file=self.decoded.file,
                              where=f"task {task.index} at command-stream offset {task.offset:#x}",
                              expected="kernel and stride of at least 1, groups dividing both channel counts",
                              found=f"kernel {kh}x{kw}, stride {sy}x{sx}, {groups} groups over {cin} -> {cout} channels")
        kernel, table = None, None
        channels = self._channels(task)
        slot = binding.get("kernel")
        if self.v("bias_mode"):
            self.note(task.index, self.field_of("bias_mode"), self.v("bias_mode"),
                      "the bias is enabled but no source says where it comes from")
        if act == "lut" and not (channels and slot is not None):
            self.note(task.index, self.field_of("nl_mode"), nl_mode, "a lookup-table nonlinearity with no table fetched")
        if channels and slot is not None and act == "lut":
            if slot in self.constant:
                table = self._table(task, self.constant[slot], channels[0])
            else:
                self.note(task.index, f"slot {slot}", slot, "the lookup table is read from a buffer the host fills "
                          "at run time; not modelled")
        elif channels and slot is not None and op in ("conv", "transconv"):
            kernel = self._kernel(task, slot, channels, cin // groups, cout, kh, kw)
        acc_bias = 0.0
        if op == "conv" and kernel is None and table is not None and "src2" not in binding \
                and self.regs.field("NE.MACCfg", "KernelMode"):
            # The coefficient channel carries only the table, so there are no weights: the
            # convolution passes its input through and adds the accumulator bias (eiln inv.bin:
            # AccBias = RN16(1e-4), Core ML's epsilon for inverse). Bypass skips that bias.
            op, acc_bias = "bypass", fp16(self.regs.field("NE.AccBias", "AccBias"))
        return NeStage(op, (kh, kw), (sy, sx), (py, pad_b, px, pad_r), (1, 1), groups, kernel, None,  # type: ignore[arg-type]
                       fp16(self.v("post_scale")), act, table, acc_bias)  # type: ignore[arg-type]

    def _table(self, task: DecodedTask, data: bytes, ch: KernelChannel) -> ActivationTable | None:
        raw = data[ch.offset:ch.offset + 2 * LUT_WORDS]
        if len(raw) < 2 * 37:  # the four clamp words and the 33 samples at least
            self.note(task.index, "KernelDMASrc.CoeffBaseAddr[0]", ch.offset, "the lookup table runs past the end "
                      "of its buffer")
            return None
        words = np.zeros(LUT_WORDS, np.uint16)
        words[:len(raw) // 2] = np.frombuffer(raw[:len(raw) // 2 * 2], dtype="<u2")
        table, notes = decode_table(words, f"task{task.index}-lut")
        for fld, value, message in notes:
            self.note(task.index, fld, value, message)
        return table

    def _kernel(self, task: DecodedTask, slot: int, channels: list[KernelChannel], cin_g: int, cout: int,
                kh: int, kw: int) -> Kernel | None:
        code = self.v("kfmt")
        for meaning, what in (("pal_en", "palettized"), ("sparse", "sparse")):
            if self.v(meaning):
                self.note(task.index, self.field_of(meaning), self.v(meaning), f"{what} kernels: where the "
                          f"{'palette' if meaning == 'pal_en' else 'mask'} sits and how it is read is not documented")
                return None
        fmt = FMT_DTYPE.get(code)
        if fmt != "fp16":
            self.note(task.index, self.field_of("kfmt"), code,
                      f"{fmt} kernels: how the MAC scales integer weights (MACCfg.BinaryPoint, PostRightShift) "
                      "is not documented" if fmt else "no source describes this kernel format (2 fp16)")
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
            # run-time weights: the functional engine reads them from the slot as the kernel DMA would
            return Kernel(fmt, None, dram_bytes=dram_bytes, placement=placement)  # type: ignore[arg-type]
        weights = gather_weights(self.constant[slot], placement, fmt)
        if weights is None:
            self.note(task.index, "KernelDMASrc.CoeffBaseAddr", slot, "some output channel has no weights in its "
                      "kernel channel")
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
        return Program(name, d.generation.name, tasks, tensors, self.slots, source=d.file or "",
                       approximations=self.notes)


def build_program(decoded: Decoded) -> Program:
    """The program model of a decoded .hwx file or raw command buffer."""
    program = _Builder(decoded).build()
    # Remember the decoded form so anesim.encode(program) can give the original bytes back.
    program.decoded = decoded  # type: ignore[attr-defined]
    return program


def decoded_of(program: Any) -> Decoded | None:
    """The decoded form a program was built from, if it came from this module."""
    return getattr(program, "decoded", None)
