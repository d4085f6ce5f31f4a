"""The IDX format of MNIST and Fashion-MNIST (raw or gzip): magic, dimensions, then the data.

Magic: two zero bytes, a type code (0x08 = uint8, the only one these data sets use), and the
number of dimensions; then one big-endian uint32 per dimension.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file."""


def _read_bytes(path: str) -> bytes:
    if os.path.isdir(path):
        raise DataError(
            f"{path}: is a directory; expected an IDX file (e.g. train-images-idx3-ubyte.gz)."
        )
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}).") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc}).") from None
    return raw


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array of its declared shape."""
    raw = _read_bytes(path)
    if len(raw) == 0:
        raise DataError(f"{path}: the file is empty; expected an IDX file.")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise DataError(
            f"{path}: wrong magic number {raw[:4].hex()}; expected an IDX file "
            "(00 00 <type> <ndim>, e.g. 00000803 for images, 00000801 for labels)."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes for {ndim} dimensions).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: holds {len(raw) - header} data bytes, but its header {shape} declares "
            f"{expected}; the file is truncated or corrupt."
        )
    # A native-order copy: writable, and free of the decompressed bytes.
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
