"""The engine's numeric rules as data: what the MAC array rounds, where, and how it overflows.

The rules (docs/numerics.md gives the evidence for each):

* Operands are fp16. NaN becomes +inf at the input boundary of every unit. With
  ``flush_subnormals`` (M1 generation) a subnormal operand enters the MAC as +0.
* Products are exact: an fp16 × fp16 product has at most 22 significant bits and fits float32.
* Products reduce in tiles of four consecutive lanes of a fixed lattice over the reduction index
  (for a convolution the lanes run over kernel row, kernel column, input channel, innermost
  last). A tile is a chain of three additions: the partial ``s`` starts as the first product;
  each further product ``p`` is added in a float32 adder and the sum is rounded, nearest-even,
  to the grid one bit finer than the fp16 grid of the larger addend: quantum ``2**(E - 11)``
  with ``E = max(exponent(s), exponent(p))``. A short last tile is padded with zero products,
  which go through the same additions.
* Tile partials are added in order into a float32 accumulator (round to nearest even).
* At the output port the accumulator rounds to fp16. A result whose fp16 magnitude would reach
  ``port_limit`` becomes ±inf, and so does the result of any reduction whose running
  accumulator reached that magnitude after some tile (the overflow is sticky). With
  ``flush_subnormals`` a subnormal result becomes +0.
* Indeterminate forms (inf − inf, 0 × inf) give +0, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE_LANES = 4  # radix of the first reduction stage (guide ch. 3 and 20, measured)
TILE_BITS = 12  # significant bits of a tile partial: fp16 plus one guard bit (fitted to probes)
WIDTH_SLICE_GAIN = 16.0  # crop-DMA gain of a width slice with a non-zero begin (guide ch. 3)
M1_PORT_LIMIT = 32768.0  # 2**15, the MAC output-port ceiling measured on M1/H13 (guide ch. 3)


def fp16_round_up_threshold(limit: float) -> float:
    """Smallest float32 magnitude that rounds (nearest even) to an fp16 value ≥ ``limit``."""
    if limit > 65504.0:
        return 65520.0  # plain fp16 overflow
    target = np.float16(limit)
    if float(target) != limit:
        raise ValueError(f"port limit {limit} is not an fp16 value")
    below = np.nextafter(target, np.float16(0))
    midpoint = (float(below) + float(target)) / 2.0
    target_is_even = (int(np.array(target).view(np.uint16)) & 1) == 0
    # a tie goes to the even neighbour: inclusive when the limit itself is even
    return midpoint if target_is_even else float(np.nextafter(np.float32(midpoint), np.float32(np.inf)))


@dataclass(frozen=True)
class MacRules:
    """The generation-dependent part of the MAC rounding rule."""

    port_limit: float | None = M1_PORT_LIMIT  # None: only the fp16 format's own overflow
    flush_subnormals: bool = True  # M1: subnormal operands and results flush to +0 in the MAC

    @property
    def overflow_threshold(self) -> float:
        """Accumulator magnitude from which the port returns ±inf."""
        return fp16_round_up_threshold(65536.0 if self.port_limit is None else self.port_limit)


M1_RULES = MacRules()  # measured on M1/H13 (and the A14/H14 saturation reproduces)
IEEE_PORT_RULES = MacRules(port_limit=None, flush_subnormals=False)  # M5-like: full fp16 range
