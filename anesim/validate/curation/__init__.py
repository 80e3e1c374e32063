"""Curation as data: the rules that turn published measurement rows into validation traces.

``table.yaml`` and ``sources/*.yaml`` are the rules (one file per published source);
``schema`` validates them; ``labels`` reads chip labels as chip files; ``engine`` applies the
rules to rows. Adding a source is a new file under ``sources/`` (or an extra rules file passed
to :func:`load_table`), never code.
"""

from anesim.validate.curation.engine import Curator
from anesim.validate.curation.schema import Table, load_table

__all__ = ["Curator", "Table", "load_table"]
