"""The units of the timeline, in track order, and their indices in trace records."""

UNITS = ("host", "firmware", "kernel_dma", "tile_dma_src", "ne", "planar", "tile_dma_dst")
UNIT_ID = {u: i for i, u in enumerate(UNITS)}
NE_ID = UNIT_ID["ne"]
FIRMWARE_ID = UNIT_ID["firmware"]
PLANAR_ID = UNIT_ID["planar"]
SRC_ID = UNIT_ID["tile_dma_src"]
DST_ID = UNIT_ID["tile_dma_dst"]
