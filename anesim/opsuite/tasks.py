"""Register fields of the task kinds the suite generates: DMA and pool streams, NE and PE stages."""

from __future__ import annotations

import numpy as np

from anesim.opsuite.stream import Buffer, TaskRegs, f16_bits, f32_bits

MEMFMT = {"uint8": 0, "int8": 1, "fp16": 2}
LUT_BYTES = 128
# Table word 42: argument modes and input folds (anesim/hwx/tables.py, docs/functional.md)
MODE = {"none": 0, "centred": 1, "frac": 3, "int": 4, "sqrt": 5, "recip": 7, "log2": 9, "exp2": 10}
FOLD = {"none": 0x00, "odd": 0x60, "positive": 0xC0}
TAILS_ONLY = 0x40


def shape_fields(cin: int, hin: int, win: int, cout: int, hout: int, wout: int, fmt: str = "fp16",
                 out_fmt: str = "fp16", groups: int = 1) -> dict[str, int]:
    """Common: dimensions, formats, a 1x1 kernel at stride 1, one NE core."""
    return {"Common.InDim.Win": win, "Common.InDim.Hin": hin, "Common.Cin.Cin": cin, "Common.Cout.Cout": cout,
            "Common.OutDim.Wout": wout, "Common.OutDim.Hout": hout, "Common.ChCfg.InFmt": MEMFMT[fmt],
            "Common.ChCfg.OutFmt": MEMFMT[out_fmt], "Common.ConvCfg.Kw": 1, "Common.ConvCfg.Kh": 1,
            "Common.ConvCfg.Sx": 1, "Common.ConvCfg.Sy": 1, "Common.ConvCfg.Ox": 1, "Common.ConvCfg.Oy": 1,
            "Common.GroupConvCfg.NumGroups": groups, "Common.TileCfg.TileHeight": hout}


def dram_source(buf: Buffer, second: bool = False, offset: int = 0, row: int | None = None,
                plane: int | None = None, group: int | None = None) -> dict[str, int]:
    """TileDMASrc fields reading ``buf`` (source 1, or source 2)."""
    p = "TileDMASrc.Src2" if second else "TileDMASrc."
    row = buf.row_stride if row is None else row
    plane = buf.plane_stride if plane is None else plane
    group = plane * buf.shape[1] if group is None else group
    fields = {f"{p}DMAConfig.En" if second else "TileDMASrc.DMAConfig.En": 1,
              f"{p}BaseAddr.Addr": offset // 64, f"{p}RowStride.Stride": row // 64,
              f"{p}PlaneStride.PlaneStride": plane // 64, f"{p}DepthStride.Stride": plane * buf.shape[1] // 64,
              f"{p}GroupStride.Stride": group // 64, f"{p}Fmt.MemFmt": MEMFMT[buf.dtype],
              f"{p}Fmt.FmtMode": 1 if buf.dtype == "fp16" else 0, f"{p}Fmt.Truncate": 3}
    if not second:
        fields["TileDMASrc.Fmt.Interleave"] = 1
    return {k.replace("TileDMASrc.Src2Src2", "TileDMASrc.Src2"): v for k, v in fields.items()}


def dram_result(buf: Buffer, row: int | None = None, plane: int | None = None,
                group: int | None = None) -> dict[str, int]:
    """TileDMADst fields writing ``buf``."""
    row = buf.row_stride if row is None else row
    plane = buf.plane_stride if plane is None else plane
    group = plane * buf.shape[1] if group is None else group
    return {"TileDMADst.DMAConfig.En": 1, "TileDMADst.BaseAddr.Addr": 0, "TileDMADst.RowStride.RowStride": row // 64,
            "TileDMADst.PlaneStride.PlaneStride": plane // 64,
            "TileDMADst.DepthStride.DepthStride": plane * buf.shape[1] // 64,
            "TileDMADst.GroupStride.GroupStride": group // 64, "TileDMADst.Fmt.MemFmt": MEMFMT[buf.dtype],
            "TileDMADst.Fmt.FmtMode": 1 if buf.dtype == "fp16" else 0, "TileDMADst.Fmt.Truncate": 3,
            "TileDMADst.Fmt.Interleave": 1}


def pool_source(base: int, row: int, channel: int, group: int = 0, second: bool = False) -> dict[str, int]:
    """L2 fields reading a tile of the on-chip pool (byte offsets, 16-byte units)."""
    p = "L2.Source2" if second else "L2.Source"
    return {f"{p}Base.Addr": base // 16, f"{p}RowStride.Stride": row // 16, f"{p}ChannelStride.Stride": channel // 16,
            f"{p}GroupStride.Stride": group // 16}


def pool_result(base: int, row: int, channel: int, group: int = 0) -> dict[str, int]:
    """L2 fields writing a tile of the on-chip pool."""
    return {"L2.ResultBase.Addr": base // 16, "L2.ConvResultRowStride.Stride": row // 16,
            "L2.ConvResultChannelStride.Stride": channel // 16, "L2.ResultGroupStride.Stride": group // 16}


def lut_words(head: tuple[float, float, float, float], samples: np.ndarray | None = None,
              tails: tuple[float, float, float, float] | None = None, shift: int = 0,
              mode: str = "none", fold: str = "none") -> bytes:
    """A 64-word activation table (anesim/hwx/tables.py gives the layout)."""
    words = np.zeros(64, np.uint16)
    with np.errstate(over="ignore"):
        words[:4] = np.array(head, np.float64).astype(np.float16).view(np.uint16)
        if samples is not None:
            words[4:37] = np.asarray(samples, np.float64).astype(np.float16).view(np.uint16)
        if tails is not None:
            words[37:41] = np.array(tails, np.float64).astype(np.float16).view(np.uint16)
    if tails is not None or mode != "none" or fold != "none":
        words[41] = shift if samples is not None else TAILS_ONLY
        words[42] = MODE[mode] | FOLD[fold]
    return words.astype("<u2").tobytes()


def ne_fields(op_mode: int = 4, nonlinear: int = 0, table_at: int | None = None, post_scale: float = 1.0,
              kernel_bytes: int = 0, kernel_fmt: int = 2) -> dict[str, int]:
    """NE (and kernel DMA) fields: op mode, nonlinearity, post-scale, and the coefficient channel."""
    fields = {"NE.KernelCfg.KernelFmt": kernel_fmt, "NE.MACCfg.OpMode": op_mode, "NE.MACCfg.BinaryPoint": 28,
              "NE.MACCfg.NonlinearMode": nonlinear, "NE.PostScale.PostScale": f16_bits(post_scale),
              "Common.Cfg.ActiveNE": 0}
    if table_at is not None or kernel_bytes:
        size = LUT_BYTES if table_at is not None else kernel_bytes
        fields.update({"NE.MACCfg.KernelMode": 1, "KernelDMASrc.unk_00": 0x40,
                       "KernelDMASrc.CoeffDMAConfig[0].En": 1, "KernelDMASrc.CoeffDMAConfig[0].CacheHint": 2,
                       "KernelDMASrc.CoeffBaseAddr[0].Addr": (table_at or 0) // 64,
                       "KernelDMASrc.CoeffBfrSize[0].MemBfrSize": -(-size // 64)})
    return fields


def pe_fields(cfg: int, scale: float = 1.0, bias: float = 0.0, pre_scale: float = 1.0,
              final_scale: float = 1.0) -> dict[str, int]:
    """PE fields: the whole Cfg word and the fp16 / fp32 scalars."""
    return {"PE.Cfg": cfg, "PE.BiasScale.Bias": f16_bits(bias), "PE.BiasScale.Scale": f16_bits(scale),
            "PE.PreScale.PreScale": f16_bits(pre_scale), "PE.FinalScale.FinalScale": f32_bits(final_scale)}


def header(src: int | None = None, src2: int | None = None, dst: int | None = None, kernel: bool = False,
           ne: bool = True) -> dict[str, int]:
    """Header fields binding the slots (RBase/WBase/KBase) and the NE count (ENE)."""
    h = {"ENE": 1 if ne else 0}
    if src is not None:
        h.update(RBase0=src, RBE0=1)
    if src2 is not None:
        h.update(RBase1=src2, RBE1=1)
    if dst is not None:
        h.update(WBase=dst, WBE=1)
    if kernel:
        h.update(KBase0=1, KBE0=1)
    return h


def task(fields: dict[str, int], hdr: dict[str, int]) -> TaskRegs:
    """A TaskRegs from merged field dicts."""
    return TaskRegs(dict(fields), dict(hdr))
