"""The IDX format of MNIST (http://yann.lecun.com/exdb/mnist/), gzipped or not, read and written.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions),
the dimensions as big-endian uint32, then the data, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._errors import CorruptFileError

# IDX type codes (http://yann.lecun.com/exdb/mnist/): data is big-endian.
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x1f\x8b":  # gzip magic; an uncompressed IDX starts with 0x0000
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptFileError(f"Corrupt gzip file {path}: {err}") from err


def read_idx(path: str | os.PathLike[str], *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or not, into a native-endian array.

    Args:
        path: The file.
        magic: Expected magic number (2051 for images, 2049 for labels), or None.

    Raises:
        CorruptFileError: A ``ValueError``: the file is not IDX, has the wrong magic,
            or its size does not match its header (truncated or corrupt).
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_TYPES:
        raise CorruptFileError(f"Not an IDX file: {path} (header bytes {data[:4].hex()})")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise CorruptFileError(f"Wrong IDX magic in {path}: expected {magic}, found {found}")
    ndim, header = data[3], 4 + 4 * data[3]
    if len(data) < header:
        raise CorruptFileError(f"Corrupt IDX file {path}: header truncated")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise CorruptFileError(
            f"Corrupt IDX file {path}: header says shape {dims} ({expected} bytes of "
            f"data), found {len(data) - header} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzipped when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, codes))}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(np.dtype(_IDX_TYPES[code])).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)
