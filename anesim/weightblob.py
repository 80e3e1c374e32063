"""Reading one weight blob of a Core ML ``weight.bin``, every stated size checked before reading.

coremltools' storage layout: a 64-byte file header, then per blob a 64-byte record
``u32 sentinel 0xDEADBEEF, u32 data type, u64 size in bytes, u64 offset of the data`` and the
data itself. The record is read from the model's stated offset; its size and data offset must
lie inside the file, fit the data type and hold exactly the elements the model declares, and
stay within the memory limit, before any bytes are read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from anesim.errors import ProgramError
from anesim.limits import check_bytes

BLOB_SENTINEL = 0xDEADBEEF
RECORD = struct.Struct("<IIQQ")
BLOB_TYPES = {1: np.float16, 2: np.float32, 3: np.uint8, 4: np.int8, 6: np.int16, 7: np.uint16}


def read_blob(path: Path, offset: int, elements: int | None = None) -> np.ndarray:
    """The 1-D array of the blob whose record is at ``offset``; ``elements`` is the count the model declares."""
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
                               where=f"{where}: size", expected=f"{elements:,} elements",
                               found=f"{size // itemsize:,}")
        check_bytes(size, file=path, field=f"{where}: size")
        fh.seek(data_offset)
        data = fh.read(size)
    if len(data) != size:
        raise ProgramError("weight blob ends early", file=path, where=where, expected=size, found=len(data))
    return np.frombuffer(data, BLOB_TYPES[dtype])
