"""Reading a NumPy ``.npy`` input: the header is checked against the file's length before any allocation.

``numpy.load`` trusts the header's shape and allocates it before reading; a four-byte file that
claims a shape of (4096, 4096, 4096) would ask for 128 GiB. Here numpy's own header parser reads
the header, then the stated shape and dtype must account for exactly the bytes that follow and
stay within the memory limit (:mod:`anesim.limits`), and only then is the array read. A header
written by Python 2 (numpy parses it a second way and warns that it did) is read without that
warning: the file is valid, and the warning would reach the user as a library's traceback line.
"""

from __future__ import annotations

import os
import tokenize
import warnings
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from anesim.errors import InputError
from anesim.limits import check_bytes, tensor_bytes

MAX_HEADER_BYTES = 10_000  # numpy's own default bound on the header it will parse
NUMERIC_KINDS = "biuf"


def load_npy(path: str | Path, what: str = "input") -> np.ndarray:
    """The array in the .npy file at ``path``; any mismatch is an InputError naming the file."""
    file = Path(path)
    try:
        fh = open(file, "rb")
    except FileNotFoundError:
        raise InputError(f"no such file for {what}", file=file) from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror or exc}", file=file) from None
    with fh:
        length = os.fstat(fh.fileno()).st_size
        try:
            version = npy_format.read_magic(fh)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*created on Python 2", category=UserWarning)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
                else:
                    raise ValueError(f"format version {version}")
        except (ValueError, EOFError, SyntaxError, TypeError, OverflowError, tokenize.TokenError) as exc:
            raise InputError(f"{what} is not a readable .npy file", file=file, where="header",
                             expected="a NumPy .npy header (format 1.0 or 2.0) of numeric dtype",
                             found=" ".join(str(exc).split())[:120] or type(exc).__name__) from None
        start = fh.tell()
        if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
            raise InputError(f"{what} is not an array of numbers", file=file, where="header 'descr'",
                             expected="bool, integer or float elements", found=str(dtype))
        if any(int(d) < 0 for d in shape):
            raise InputError(f"{what} has a negative dimension", file=file, where="header 'shape'", found=shape)
        nbytes = tensor_bytes(shape, dtype.itemsize)
        if nbytes != length - start:
            raise InputError(f"{what}'s header does not match the file's length", file=file, where="header 'shape'",
                             expected=f"{length - start:,} data bytes after the {start}-byte header",
                             found=f"shape {tuple(shape)} of {dtype} = {nbytes:,} bytes")
        check_bytes(nbytes, file=file, field="header 'shape'")
        data = fh.read(nbytes)
    if len(data) != nbytes:  # the file shrank while being read
        raise InputError(f"{what} ends early", file=file, expected=f"{nbytes:,} data bytes", found=len(data))
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()
