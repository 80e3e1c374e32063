"""The backend: engine operations -> tasks of the program model, H13 registers and ``.hwx`` files.

In come the lowering's engine operations, buffers and plans; out goes the
:class:`~anesim.program.model.Program` (tasks with slots, layouts and kernels,
:mod:`~anesim.compiler.backend.emit`) and, from a compiled result, its encodings: the program
model as JSON (``program_json``), the H13 task-descriptor fields (``h13``), an H13 command
buffer with its sidecar (``h13_emit``) and a Mach-O-shaped ``.hwx`` container (``h13_hwx``).
The backend imports the lowering and the graph packages, never a frontend.
"""
