"""Checking one weight-blob record of a Core ML ``weight.bin`` before anything reads its data.

coremltools' storage layout: a 64-byte file header, then per blob a 64-byte record
``u32 sentinel 0xDEADBEEF, u32 data type, u64 size in bytes, u64 offset of the data`` and the
data itself. The record at the model's stated offset must lie inside the file, name a known
type, and state a size and data offset that lie inside the file, fit the type, hold the
elements the model declares (when given) and stay within the memory limit.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anesim.errors import ProgramError
from anesim.limits import check_bytes

BLOB_SENTINEL = 0xDEADBEEF
RECORD = struct.Struct("<IIQQ")
BLOB_TYPES = {1: np.float16, 2: np.float32, 3: np.uint8, 4: np.int8, 6: np.int16, 7: np.uint16}


@dataclass(frozen=True)
class BlobRecord:
    """A checked blob record: its element type, its size in bytes and where its data starts."""

    dtype: type
    size: int
    data_offset: int


def check_blob(path: Path, offset: int, elements: int | None = None) -> BlobRecord:
    """The record at ``offset`` once every stated number is checked; ``elements`` is what the model declares."""
    with open(path, "rb") as fh:
        length = os.fstat(fh.fileno()).st_size
        where = f"blob record at byte {offset:#x}"
        if offset < 0 or offset + RECORD.size > length:
            raise ProgramError("weight blob record runs past the end of the file", file=path, where=where,
                               expected=f"a record within the file's {length:,} bytes",
                               found=f"{RECORD.size} bytes at {offset:#x}")
        fh.seek(offset)
        sentinel, dtype, size, data_offset = RECORD.unpack(fh.read(RECORD.size))
    if sentinel != BLOB_SENTINEL or dtype not in BLOB_TYPES:
        raise ProgramError("not a weight blob", file=path, where=where,
                           expected=f"sentinel {BLOB_SENTINEL:#x} and a known type {sorted(BLOB_TYPES)}",
                           found=f"{sentinel:#x}/{dtype}")
    itemsize = np.dtype(BLOB_TYPES[dtype]).itemsize
    if data_offset + size > length:
        raise ProgramError("weight blob data runs past the end of the file", file=path, where=f"{where}: size",
                           expected=f"offset + size <= {length:,}", found=f"{data_offset:#x} + {size:,}")
    if size % itemsize:
        raise ProgramError("weight blob size is not a whole number of elements", file=path,
                           where=f"{where}: size", expected=f"a multiple of {itemsize}", found=size)
    if elements is not None and size // itemsize != elements:
        raise ProgramError("weight blob does not hold the tensor the model declares", file=path,
                           where=f"{where}: size", expected=f"{elements:,} elements", found=f"{size // itemsize:,}")
    check_bytes(size, file=path, field=f"{where}: size")
    return BlobRecord(BLOB_TYPES[dtype], size, data_offset)
