"""H13 register fields of compiled tasks, named as the H13 decoder names them.

This is the compiler's side of the register map: for each task of a compiled program, the value
of every H13 task-descriptor field (header, kernel DMA, common, tile DMA, L2, planar and NE
blocks) the way Apple's compiler v4 sets it. The rules come from command-stream.md §3.6 and
§3.10 and from the register values of the tinygrad samples; fields whose rule is not known
keep the value the samples show for that kind of task, and ``docs/compiler.md`` lists them.

The values are used to compare compiled tasks with Apple's field by field
(:mod:`anesim.compiler.apple`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from anesim.compiler.lowering.kernels import core_channels, row_bytes
from anesim.program.model import Layout, Program, Task

GRANULE = 16  # L2 addresses and strides count 16-byte granules (command-stream.md §3.6)
TD_BYTES = 0x274  # the v4-v7 H13 task size (seven groups, §3.2)
TD_PITCH = 0x300  # tasks placed 0x300 apart by the v4 compiler (§3.5)
LUT_BYTES = 0x80  # an activation table fetched through coefficient channel 0 (§5)
KERNEL_CHANNELS = 16  # H13 has 16 coefficient DMA channels (§3.1)

# Fields every H13 task of Apple's v4 compiler sets to the same value (tinygrad samples).
CONSTANT_FIELDS: dict[str, int] = {
    "Header.SPL": 1, "Header.TSR": 1, "Header.TSE": 1, "Header.SrcLoc": 1, "Header.DstLoc": 1,
    "Header.RBE0": 1, "Header.WBE": 1,
    "Common.InDepth": 1, "Common.ChCfg.InFmt": 2, "Common.ChCfg.OutFmt": 2, "Common.OutDepth": 1,
    "Common.ConvCfg.Ox": 1, "Common.ConvCfg.Oy": 1, "Common.unk_20": 0x2041,
    "Common.GroupConvCfg.UnicastCin": 1,
    "TileDMASrc.DMAConfig.En": 1, "TileDMASrc.DMAConfig.CacheHint": 2,
    "TileDMASrc.DMAConfig.CacheHintReuse": 14, "TileDMASrc.DMAConfig.CacheHintNoReuse": 12,
    "TileDMASrc.Src2DMAConfig.CacheHint": 2, "TileDMASrc.Fmt.FmtMode": 1, "TileDMASrc.Fmt.Truncate": 3,
    "TileDMASrc.Fmt.MemFmt": 2, "TileDMASrc.Fmt.Interleave": 1,
    "L2.SourceCfg.SourceType": 2, "L2.SourceCfg.AliasConvSrc": 1, "L2.SourceCfg.AliasConvRslt": 1,
    "L2.SourceCfg.DMAFmt": 1, "L2.SourceCfg.DMAInterleave": 1,
    "L2.ResultCfg.ResultType": 2, "L2.ResultCfg.AliasConvSrc": 1, "L2.ResultCfg.AliasConvRslt": 1,
    "L2.ResultCfg.DMAFmt": 1, "L2.ResultCfg.DMAInterleave": 1,
    "TileDMADst.DMAConfig.En": 1, "TileDMADst.DMAConfig.CacheHint": 3, "TileDMADst.Fmt.FmtMode": 1,
    "TileDMADst.Fmt.Truncate": 3, "TileDMADst.Fmt.MemFmt": 2, "TileDMADst.Fmt.Interleave": 1,
}
# Field name prefixes that carry buffer addresses: excluded from comparisons.
ADDRESS_FIELDS = ("Header.NextPointer",)


def _fp16_bits(value: float) -> int:
    return int(np.array([value], np.float32).astype(np.float16).view(np.uint16)[0])


def _units(nbytes: int, unit: int = 64) -> int:
    return nbytes // unit


def _kind(task: Task) -> str:
    if task.ne is None:
        return "planar"
    if task.ne.op == "bypass":
        return "bypass"
    return "conv"


def _l2_channel_granules(layout: Layout) -> int:
    return -(-layout.width * 2 // GRANULE) * layout.height


def task_fields(program: Program, index: int, kernel_offset: int = -1) -> dict[str, int]:
    """Every H13 field of task ``index`` as Apple's v4 compiler would set it."""
    task = program.tasks[index]
    n = len(program.tasks)
    last = index == n - 1
    kind = _kind(task)
    f: dict[str, int] = dict(CONSTANT_FIELDS)
    src = task.sources[0]
    dst = task.result
    two = task.planar is not None and len(task.sources) > 1

    # header (§3.4)
    f["Header.TID"] = index
    f["Header.EON"] = int(last)
    f["Header.LNID"] = int(last and n > 1)
    f["Header.NextSize"] = 0 if last else TD_BYTES // 4 - 1
    f["Header.NextPointer"] = 0 if last else TD_PITCH * (index + 1)
    f["Header.LogEvents"] = 0x422 if last else 0x400
    f["Header.DebugLogEvents"] = 0xFFF86A if n == 1 else (0x6A if last else 0x68)
    f["Header.TBE"] = int(not last)
    f["Header.RBase0"] = src.slot or 0
    if two:
        f["Header.RBase1"], f["Header.RBE1"] = task.sources[1].slot or 0, 1
    f["Header.WBase"] = dst.slot or 0
    f["Header.ENE"] = 0 if kind == "planar" else int(math.log2(task.cores_used)) + 1

    # kernel DMA (§3.6 KernelDMASrc, §3.10): one coefficient channel per core
    fetch = task.ne is not None and (task.ne.kernel is not None or task.ne.activation == "lut")
    if task.ne is not None:
        for ch in range(KERNEL_CHANNELS):
            f[f"KernelDMASrc.CoeffDMAConfig[{ch}].CacheHint"] = 2
            f[f"KernelDMASrc.CoeffBfrSize[{ch}].MemBfrSize"] = 1
        for aux in range(4):
            f[f"KernelDMASrc.AuxDMAConfig[{aux}]"] = 0x80
    if fetch:
        f["Header.KBase0"], f["Header.KBE0"] = 1, 1
        f["KernelDMASrc.unk_00"] = 0x40
    if task.ne is not None and task.ne.kernel is not None:
        kernel = task.ne.kernel
        shape = tuple(kernel.shape)
        bits = 16 if kernel.format == "fp16" else (kernel.palette_bits if kernel.format == "palette" else 8)
        row = row_bytes(shape, bits)  # type: ignore[arg-type]
        offset = max(kernel_offset, 0)
        for core, count in enumerate(core_channels(shape[0], task.cores_used, task.ocg_size)):
            if count:
                f[f"KernelDMASrc.CoeffDMAConfig[{core}].En"] = 1
                f[f"KernelDMASrc.CoeffBaseAddr[{core}].Addr"] = _units(offset)
                f[f"KernelDMASrc.CoeffBfrSize[{core}].MemBfrSize"] = _units(count * row)
                offset += count * row
    elif task.ne is not None and task.ne.activation == "lut":
        f["KernelDMASrc.CoeffDMAConfig[0].En"] = 1
        f["KernelDMASrc.CoeffBfrSize[0].MemBfrSize"] = _units(LUT_BYTES)

    # common (§3.6 Common)
    f["Common.InDim.Win"], f["Common.InDim.Hin"] = src.width, src.height
    f["Common.Cin.Cin"], f["Common.Cout.Cout"] = src.channels, dst.channels
    f["Common.OutDim.Wout"], f["Common.OutDim.Hout"] = dst.width, dst.height
    kh, kw = task.ne.kernel_hw if task.ne is not None else (1, 1)
    sy, sx = task.ne.stride_hw if task.ne is not None else (1, 1)
    f["Common.ConvCfg.Kw"], f["Common.ConvCfg.Kh"] = kw, kh
    f["Common.ConvCfg.Sx"], f["Common.ConvCfg.Sy"] = sx, sy
    if task.ne is not None:
        pt, _, pl, _ = task.ne.padding_tblr
        f["Common.ConvCfg.Px"], f["Common.ConvCfg.Py"] = pl, pt
    f["Common.ConvCfg.OCGSize"] = int(math.log2(task.ocg_size)) if kind == "conv" else 0
    f["Common.GroupConvCfg.NumGroups"] = task.ne.groups if task.ne is not None else 1
    f["Common.GroupConvCfg.UnicastEn"] = int(kind == "bypass")
    f["Common.TileCfg.TileHeight"] = task.tile_height or dst.height
    f["Common.ChCfg.Src2InFmt"] = 2 if two else 0
    f["Common.unk_2c"] = 4 if kind == "planar" else 0
    if kind == "conv":
        demand = -(-task.ocg_size // 4)  # accumulator work units: 4 fp16 channels per cycle (ch. 20)
        f["Common.Cfg.SmallSourceMode"] = int(dst.height * dst.width <= 16)
        f["Common.Cfg.ShPref"] = f["Common.Cfg.ShMin"] = f["Common.Cfg.ShMax"] = 4
        f["Common.Cfg.AccDoubleBufEn"] = int(2 * demand <= 8 and task.ocg_size < 8)
    elif kind == "bypass":
        f["Common.Cfg.ShPref"] = f["Common.Cfg.ShMax"] = 1
        f["Common.Cfg.ShMin"] = int(task.cores_used > 1)
        f["Common.Cfg.AccDoubleBufEn"] = 1
    f["Common.Cfg.ActiveNE"] = int(math.log2(task.cores_used)) if kind != "planar" else 0
    f["Common.TaskInfo.NID"] = int(kind != "planar")

    # tile DMA source and destination (§3.6; strides in 64-byte units)
    f["TileDMASrc.BaseAddr.Addr"] = _units(src.offset_bytes)
    f["TileDMASrc.RowStride.Stride"] = _units(src.row_stride_bytes)
    f["TileDMASrc.PlaneStride.PlaneStride"] = _units(src.plane_stride_bytes)
    f["TileDMASrc.DepthStride.Stride"] = _units(src.plane_stride_bytes * src.channels)
    f["TileDMASrc.Src2DMAConfig.CacheHintReuse"] = 14 if two else 2
    f["TileDMASrc.Src2DMAConfig.CacheHintNoReuse"] = 12 if two else 2
    f["TileDMASrc.unk_40"] = 0 if kind == "planar" else 0x100
    if two:
        s2 = task.sources[1]
        f["TileDMASrc.Src2BaseAddr.Addr"] = _units(s2.offset_bytes)
        f["TileDMASrc.Src2RowStride.Stride"] = _units(s2.row_stride_bytes)
        f["TileDMASrc.Src2PlaneStride.PlaneStride"] = _units(s2.plane_stride_bytes)
        f["TileDMASrc.Src2DepthStride.Stride"] = _units(s2.plane_stride_bytes * s2.channels)
        f["TileDMASrc.Src2Fmt.Truncate"], f["TileDMASrc.Src2Fmt.MemFmt"] = 3, 2
    f["TileDMADst.BaseAddr.Addr"] = _units(dst.offset_bytes)
    f["TileDMADst.RowStride.RowStride"] = _units(dst.row_stride_bytes)
    f["TileDMADst.PlaneStride.PlaneStride"] = _units(dst.plane_stride_bytes)
    f["TileDMADst.DepthStride.DepthStride"] = _units(_tensor_depth_stride(program, dst))
    buffered = int(kind != "conv")
    f["TileDMADst.DMAConfig.L2BfrMode"] = buffered
    f["TileDMADst.Fmt.ZeroPadLast"] = f["TileDMADst.Fmt.ZeroPadFirst"] = int(kind != "planar")

    # L2 (§3.6 L2; 16-byte granules): sources from 0, the result right after them
    cs = _l2_channel_granules(src)
    src_row = src.channels * cs
    f["L2.SourceCfg.AliasPlanarSrc"] = f["L2.SourceCfg.AliasPlanarRslt"] = 1
    f["L2.SourceChannelStride.Stride"] = cs
    f["L2.SourceRowStride.Stride"] = src_row
    f["L2.SourceDepthStride.Stride"] = f["L2.SourceGroupStride.Stride"] = src_row
    end = src_row
    if two:
        s2 = task.sources[1]
        cs2 = _l2_channel_granules(s2)
        base2 = -(-src_row // 4) * 4 + (2 if src_row % 4 == 0 else 0)
        f["L2.Source2Base.Addr"] = base2
        f["L2.Source2ChannelStride.Stride"] = cs2
        f["L2.Source2RowStride.Stride"] = s2.channels * cs2
        f["L2.Source2DepthStride.Stride"] = f["L2.Source2GroupStride.Stride"] = s2.channels * cs2
        end = base2 + s2.channels * cs2
    f["L2.ResultCfg.L2BfrMode"] = buffered
    f["L2.ResultCfg.AliasPlanarSrc"] = f["L2.ResultCfg.AliasPlanarRslt"] = 1
    f["L2.ResultBase.Addr"] = end
    if kind == "conv":
        dcs = _l2_channel_granules(dst)
        f["L2.ConvResultChannelStride.Stride"] = dcs
        f["L2.ConvResultRowStride.Stride"] = dst.channels * dcs
        f["L2.ResultDepthStride.Stride"] = f["L2.ResultGroupStride.Stride"] = dst.channels * dcs

    # planar engine (§3.6 PE)
    if task.planar is not None:
        op_mode = {"add": 0, "mul": 1, "max": 2, "min": 3}.get(task.planar.op, 0)
        f["PE.Cfg.OpMode"] = op_mode
        f["PE.Cfg.SecSrc"] = 2 if two else 0
        f["PE.Cfg.ReluEn"] = int(task.planar.relu)
        f["PE.BiasScale.Scale"] = _fp16_bits(task.planar.scale)
        f["PE.PreScale.PreScale"] = _fp16_bits(task.planar.pre_scale)
        f["PE.FinalScale.FinalScale"] = int(np.array([task.planar.final_scale], np.float32).view(np.uint32)[0])

    # NE (§3.6 NE)
    if task.ne is not None:
        ne = task.ne
        kernel = ne.kernel
        f["NE.KernelCfg.PalettizedBits"] = 8 if kernel is None or kernel.format != "palette" else kernel.palette_bits
        if kernel is not None:
            f["NE.KernelCfg.KernelFmt"] = {"fp16": 2, "int8": 1, "uint8": 0}.get(kernel.format, 2)
            f["NE.KernelCfg.PalettizedEn"] = int(kernel.format == "palette")
            f["NE.MACCfg.BinaryPoint"] = 28
        f["NE.MACCfg.OpMode"] = 4 if kind == "bypass" else 0
        f["NE.MACCfg.KernelMode"] = int(kind == "bypass")
        f["NE.MACCfg.NonlinearMode"] = {"none": 0, "relu": 1, "lut": 2}[ne.activation]
        f["NE.MACCfg.BiasMode"] = int(ne.bias is not None)
        f["NE.PostScale.PostScale"] = _fp16_bits(ne.post_scale)
    return f


def _tensor_depth_stride(program: Program, layout: Layout) -> int:
    """The destination's depth stride: the whole tensor in its slot (Apple writes the tensor's)."""
    for spec in program.tensors.values():
        if spec.slot == layout.slot and layout.space == "dram":
            return spec.layout().depth_stride_bytes
    return layout.plane_stride_bytes * layout.channels


def program_fields(program: Program, kernel_offsets: Iterable[int] | None = None) -> list[dict[str, int]]:
    """The H13 fields of every task of a program."""
    offsets = list(kernel_offsets) if kernel_offsets is not None else [-1] * len(program.tasks)
    return [task_fields(program, i, offsets[i]) for i in range(len(program.tasks))]
