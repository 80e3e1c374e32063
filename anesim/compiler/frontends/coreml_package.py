"""The layout of a Core ML package (``.mlpackage``): which file in it is the model spec.

The manifest (``Manifest.json``) is read as bounded plain JSON rather than through coremltools'
``ModelPackage``, because opening a package with ``ModelPackage`` rewrites its ``Manifest.json``
(and creates a package where there is none): a reader must not change the model it reads.
"""

from __future__ import annotations

from pathlib import Path

from anesim.errors import ProgramError
from anesim.jsonfile import read_json

MAX_MANIFEST_BYTES = 1 << 20


def spec_path(package: Path) -> Path:
    """The model spec a package's manifest names (``itemInfoEntries[rootModelIdentifier].path``)."""
    manifest = package / "Manifest.json"
    if not manifest.is_file():
        raise ProgramError("not an .mlpackage: no Manifest.json", file=package)
    data = read_json(manifest, ProgramError, "the .mlpackage manifest", MAX_MANIFEST_BYTES)
    try:
        entries = data["itemInfoEntries"]
        root = entries[data["rootModelIdentifier"]]["path"]
        if not isinstance(root, str) or not root or "\0" in root:
            raise TypeError(root)
    except (KeyError, IndexError, TypeError):
        raise ProgramError("unreadable .mlpackage manifest", file=manifest,
                           expected="itemInfoEntries[rootModelIdentifier].path naming the spec") from None
    return package / "Data" / root
