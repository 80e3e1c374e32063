"""The containers of a Core ML model: the files of a package (``.mlpackage``: which one is the
model spec, and the weight files its blob values name, read with coremltools' blob reader), and
the ML program's function and block to import.

The manifest (``Manifest.json``) is read as bounded plain JSON rather than through coremltools'
``ModelPackage``, because opening a package with ``ModelPackage`` rewrites its ``Manifest.json``
(and creates a package where there is none): a reader must not change the model it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from anesim.errors import ProgramError, UnsupportedError
from anesim.jsonfile import read_json
from anesim.weightblob import check_blob

INSTALL = "pip install 'anesim[coreml]'"
MODEL_PATH = "@model_path/"  # how a spec names files relative to its own folder
MAX_MANIFEST_BYTES = 1 << 20
# The blob reader's method for each MIL type (MIL.proto ``DataType``) a weight file may hold.
BLOB_READERS = {"FLOAT16": "read_fp16_data", "FLOAT32": "read_float_data", "INT8": "read_int8_data",
                "UINT8": "read_uint8_data", "INT16": "read_int16_data", "UINT16": "read_uint16_data",
                "INT32": "read_int32_data", "UINT32": "read_uint32_data"}


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


class Blobs:
    """Lazy access to the weight files a spec names, through coremltools' blob reader."""

    def __init__(self, spec_path: Path) -> None:
        self.folder = spec_path.parent
        self.spec = spec_path
        self.readers: dict[Path, Any] = {}

    def path(self, file_name: str) -> Path:
        """The weight file a blob value names (``@model_path/weights/weight.bin``)."""
        relative = file_name[len(MODEL_PATH):] if file_name.startswith(MODEL_PATH) else file_name
        path = (self.folder / relative.replace("\x00", "")).resolve()  # (no file name holds a NUL)
        if not relative or Path(relative).is_absolute() or self.folder.resolve() not in path.parents \
                or "\x00" in relative:
            raise ProgramError("a weight file name that names no file inside the model's folder", file=self.spec,
                               expected=f"{MODEL_PATH}<file>", found=repr(file_name))
        if not path.is_file():
            raise ProgramError("the model refers to a weight file that is missing", file=self.spec,
                               found=repr(file_name))
        return path

    def read(self, file_name: str, offset: int, dtype: str) -> np.ndarray:
        """The values of the blob at ``offset`` of a weight file, of MIL type ``dtype``."""
        path = self.path(file_name)
        method = BLOB_READERS.get(dtype)
        if method is None:
            raise UnsupportedError("weight blobs of this type are not supported", file=path,
                                   where=f"byte {offset:#x}", expected=", ".join(BLOB_READERS), found=dtype)
        check_blob(path, offset)  # the record's sizes against the file before coremltools reads it
        reader = self.readers.get(path)
        if reader is None:
            try:
                from coremltools.libmilstoragepython import _BlobStorageReader
            except ImportError:
                raise UnsupportedError("reading Core ML weight files needs coremltools' libmilstoragepython",
                                       file=path, expected=INSTALL) from None
            reader = self.readers[path] = _BlobStorageReader(str(path))
        try:
            values = getattr(reader, method)(offset)
        except (RuntimeError, ValueError) as exc:  # bad sentinel, type or bounds
            raise ProgramError(f"unreadable weight blob ({exc})", file=path, where=f"byte {offset:#x}",
                               expected=f"a {dtype} blob") from None
        return values.view(np.float16) if dtype == "FLOAT16" else values


def main_block(program: Any, file: str) -> tuple[Any, Any]:
    """The ML program's ``main`` function and the block of its opset; a field coremltools' own
    reader refuses (another format version, an attribute of the program but its build
    information, of the function or of the block) is refused too, as it would go unread."""
    if program.version != 1:  # (the only version of the ML program format there is)
        raise UnsupportedError("an ML program format version anesim does not read", file=file,
                               expected=1, found=program.version)
    functions = program.functions
    if "main" not in functions:
        raise ProgramError("the ML program has no 'main' function", file=file,
                           found=", ".join(sorted(functions)) or "no functions")
    main = functions["main"]
    blocks = main.block_specializations
    if not blocks:
        raise ProgramError("the main function has no block", file=file)
    if main.opset not in blocks and len(blocks) > 1:  # (which one would run is not said)
        raise ProgramError("the main function has no block for its opset", file=file,
                           expected=main.opset or "an opset", found=", ".join(sorted(blocks)))
    # the block of the function's opset; a spec without one names its only block otherwise
    block = blocks[main.opset] if main.opset in blocks else next(iter(blocks.values()))
    extra = [f"program attribute '{k}'" for k in sorted(program.attributes) if k != "buildInfo"]
    extra += [f"main function attribute '{k}'" for k in sorted(main.attributes)]
    extra += [f"block attribute '{k}'" for k in sorted(block.attributes)]
    if extra:
        raise ProgramError("an attribute the ML program format does not define", file=file,
                           expected="none but the program's buildInfo", found=extra[0])
    return main, block
