"""How one engine op maps onto the chip: cores, OCG size and passes, Winograd, tile height.

Sources (guide ch. 20 unless noted):

- OCG size (output channels per core per pass): ``ComputeMaxOcgSize`` divides the accumulator
  budget (8 per core) by the kernel-element count, rounds down to a power of two, scales by the
  output channels one accumulator holds in the op's source-patch mode (8 tiny, 4 small, 2 fp16
  default, 1 otherwise) and clamps to the per-format byte cap (32/16/8 bytes per kernel
  element, HAL 0x388/0x390/0x398) divided by the kernel-element count.
- Cores: channels spread round-robin over the cores first (core ``c mod N``), the group is the
  next power of two of each core's share (clamped to the maximum above), and the active-core
  count is the next power of two of ``ceil(C_out / OCG)`` (``GetNumNeededNEsNextPow2``). This
  spread-first order reproduces the H13 samples: conv 3->3 on 4 cores with OCG 1, the 512x512
  inner product on 16 cores with OCG 32 (command-stream.md §3.10).
- Passes: ``ceil(C_out / (OCG * cores))``.
- Winograd: the ``CanUseWinogradMode`` gate (3x3, stride 1, no dilation, dense, 2-D, work
  threshold) plus channels enough to amortise the transform (ch. 13). The compiler does not
  select it by default (``SELECT_WINOGRAD``): every measured 3x3 convolution runs at 1.3-2x
  its chip's GEMM rate, not the 2.25-4x a Winograd datapath would give, and direct
  convolution reproduces the measured sweeps (docs/validation.md).
- Tile height: the whole output while its largest operand fits the working-set cap (ch. 21),
  otherwise the most output rows whose input slab and output rows fit the cap together.
"""

from __future__ import annotations

from dataclasses import dataclass

from anesim.chips.schema import ChipConfig
from anesim.compiler.lowering.eops import EOp

OCG_FIELD_MAX = 128  # the ConvCfg.OCGSize field is 3 bits of log2 (command-stream.md §3.6)
SELECT_WINOGRAD = False  # the gate is modelled; measured conv rates show direct convolution
WINOGRAD_MIN_CHANNELS = 16  # "any dense 3x3 stride-1 convolution with enough channels" (ch. 13)
WINOGRAD_KERNEL_ELEMENTS = 4  # F(2x2, 3x3): 16 products per 2x2 output tile, 4 per output
TINY_SOURCE = 4  # HAL 0x338 on the M1: tiny source mode up to 4 (ch. 20)
SMALL_SOURCE = 16  # assumed bound of the small-source mode (not published)


def floor_pow2(n: int) -> int:
    """The largest power of two <= n (1 for n < 1)."""
    return 1 << (max(n, 1).bit_length() - 1)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling of a / b."""
    return -(-a // b)


@dataclass(frozen=True)
class NePlan:
    """The geometry decisions for one task."""

    cores: int
    ocg: int
    passes: int
    winograd: bool
    tile_height: int
    source_mode: str  # tiny, small or default


def source_mode(out_h: int, out_w: int) -> str:
    """The source-patch mode the output extent selects (``ComputeSmallSourceMode``)."""
    if out_h <= TINY_SOURCE and out_w <= TINY_SOURCE:
        return "tiny"
    if out_h <= SMALL_SOURCE and out_w <= SMALL_SOURCE:
        return "small"
    return "default"


def channels_per_accumulator(mode: str, fmt: str) -> int:
    """Output channels one accumulator slot holds (``GetNumOutputChannelsPerAccumulator``)."""
    return {"tiny": 8, "small": 4}.get(mode, 2 if fmt == "fp16" else 1)


def byte_cap(chip: ChipConfig, fmt: str) -> int:
    """The per-format OCG byte cap per kernel element (fp16 first, then 8-bit, then palette)."""
    caps = chip.ne.ocg_byte_caps_per_element.value
    index = {"fp16": 0, "int8": 1, "uint8": 1}.get(fmt, 2)
    return caps[min(index, len(caps) - 1)]


def max_ocg(chip: ChipConfig, kernel_elements: int, fmt: str, mode: str) -> int:
    """The largest output-channel group one core holds per pass."""
    budget = chip.ne.accumulator_budget_per_core.value
    by_budget = floor_pow2(budget // kernel_elements) * channels_per_accumulator(mode, fmt)
    by_bytes = floor_pow2(byte_cap(chip, fmt) // kernel_elements)
    return max(1, min(by_budget, by_bytes, OCG_FIELD_MAX))


def winograd_ok(chip: ChipConfig, eop: EOp) -> bool:
    """True when Winograd is selected, its gate holds and the layer is big enough to take it."""
    ne = eop.ne
    if not SELECT_WINOGRAD or ne is None or ne.op != "conv" or ne.kernel is None or not chip.ne.winograd.value:
        return False
    if ne.kernel_hw != (3, 3) or ne.stride_hw != (1, 1) or ne.dilation_hw != (1, 1) or ne.groups != 1:
        return False
    if ne.kernel.format == "palette":
        return False
    cin = eop.sources[0].c
    return (cin >= WINOGRAD_MIN_CHANNELS and eop.dest.c >= WINOGRAD_MIN_CHANNELS
            and eop.dest.h >= 4 and eop.dest.w >= 4)


def weight_format(eop: EOp) -> str:
    """The weight format of an NE op (fp16 for tensor-supplied weights)."""
    if eop.ne is not None and eop.ne.kernel is not None:
        return eop.ne.kernel.format
    return "fp16"


def plan(chip: ChipConfig, eop: EOp, cores_available: int) -> NePlan:
    """Cores, OCG, passes, Winograd and tile height of one engine op."""
    cout = eop.dest.c
    out_h, out_w = eop.dest.h, eop.dest.w
    mode = source_mode(out_h, out_w)
    th = tile_height(chip, eop)
    if eop.ne is None:
        return NePlan(1, 1, 1, False, th, mode)
    if eop.ne.op == "bypass":
        cores = min(cores_available, next_pow2(cout))
        return NePlan(cores, 1, 1, False, th, mode)
    kh, kw = eop.ne.kernel_hw
    wino = winograd_ok(chip, eop)
    elements = WINOGRAD_KERNEL_ELEMENTS if wino else kh * kw
    group_max = max_ocg(chip, elements, weight_format(eop), mode)
    per_core = ceil_div(cout, cores_available)
    ocg = min(group_max, next_pow2(per_core))
    cores = min(cores_available, next_pow2(ceil_div(cout, ocg)))
    passes = ceil_div(cout, ocg * cores)
    return NePlan(cores, ocg, passes, wino, th, mode)


def plan_key(eop: EOp) -> tuple:
    """Everything :func:`plan` reads from an op: ops with equal keys get equal plans (a large
    model has tens of thousands of ops and a few hundred distinct geometries)."""
    ne, pl, d = eop.ne, eop.planar, eop.dest
    return (
        d.c, d.h, d.w, d.sh, tuple([(s.c, s.sh, s.h) for s in eop.sources]), eop.weights_view is None,
        None if ne is None else (ne.op, ne.kernel_hw, ne.stride_hw, ne.dilation_hw, ne.groups,
                                 None if ne.kernel is None else ne.kernel.format),
        None if pl is None else (pl.op, pl.pool_hw, pl.pool_stride_hw),
    )


def _rows_in(eop: EOp, out_rows: int) -> int:
    src_h = eop.sources[0].h
    if eop.ne is not None and eop.ne.op == "conv" and eop.weights_view is None:
        kh = eop.ne.kernel_hw[0]
        rows = (out_rows - 1) * eop.ne.stride_hw[0] + (kh - 1) * eop.ne.dilation_hw[0] + 1
    elif eop.planar is not None and eop.planar.op.endswith("pool"):
        rows = (out_rows - 1) * eop.planar.pool_stride_hw[0] + eop.planar.pool_hw[0]
    else:
        rows = out_rows
    return max(1, min(src_h, rows))


def tile_height(chip: ChipConfig, eop: EOp) -> int:
    """Output rows per tile so the tile's operands fit the working-set cap."""
    cap = chip.memory.working_set_cap_bytes.value
    out_h = eop.dest.h
    out_row = eop.dest.c * eop.dest.sh
    in_rows = [(s.c * s.sh, s.h) for s in eop.sources]
    if max([out_row * out_h] + [r * h for r, h in in_rows]) <= cap:
        return out_h
    best = 1
    lo, hi = 1, out_h
    while lo <= hi:
        mid = (lo + hi) // 2
        need = mid * out_row + sum(r * min(h, _rows_in(eop, mid)) for r, h in in_rows)
        if need <= cap:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best
