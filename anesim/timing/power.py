"""Energy and average power of one dispatch: a linear model on time, MACs and DRAM bytes.

``E = power.engine_w * latency + power.mac_energy_j * MACs + power.dram_byte_energy_j * bytes``

The engine's rail draws ``engine_w`` for as long as a call is in flight (clocks, control,
SRAM and the firmware's part of the round trip), and every MAC and every byte the DMA engines
move adds its energy. Average power is ``E / latency``; in a back-to-back loop, which is how
the sources sample powermetrics' ANE rail, it is the power of the loop. The three
coefficients are derived for every chip by the cross-generation rules (vendor rating and node)
from constants ``anesim calibrate --shared`` fits to those samples (docs/timing.md).
"""

from __future__ import annotations

from anesim.chips.schema import ChipConfig


def energy_features(latency_s: float, macs: float, dram_bytes: float) -> tuple[float, float, float]:
    """The quantities the three coefficients multiply: seconds, MACs, DRAM bytes."""
    return float(latency_s), float(macs), float(dram_bytes)


def dispatch_energy_j(chip: ChipConfig, latency_s: float, macs: float, dram_bytes: float) -> float:
    """Energy of one dispatch in joules."""
    p = chip.power
    t, m, b = energy_features(latency_s, macs, dram_bytes)
    return p.engine_w.value * t + p.mac_energy_j.value * m + p.dram_byte_energy_j.value * b
