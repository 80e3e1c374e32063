"""The lowering: a graph for one chip -> engine operations over buffer views, tiled and placed.

In come the passed graph and a chip configuration; out go the per-node placement (engine or
host, :mod:`~anesim.compiler.lowering.capability`), the buffers of each segment and the
:class:`~anesim.compiler.lowering.eops.EOp` s that compute it (:mod:`~anesim.compiler.lowering.lower`
and the op-family modules it combines), together with the planning the backend reads: how an op
maps onto cores, output-channel groups and tiles (``tile``), where each buffer lives (``memory``),
how weights are formatted and laid out per core (``kernels``), strided views (``views``) and
activation lookup tables (``luts``). The lowering imports the graph package only; it knows
nothing of the frontends or of task and register encoding.
"""
