"""The op conformance suite: one generated command stream per engine mode, checked against numpy.

:mod:`anesim.opsuite.stream` writes H13 raw command buffers (and their sidecars) through the
project's own encoder; :mod:`anesim.opsuite.cases` lists the single-op cases and
:mod:`anesim.opsuite.compositions` the multi-task ones; :mod:`anesim.opsuite.report` runs them
and renders ``docs/ops.md`` (``python -m anesim.opsuite docs/ops.md``).
"""
