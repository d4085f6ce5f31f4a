"""The IDX format of MNIST and Fashion-MNIST (raw or gzip): magic, dimensions, then the data.

Magic: two zero bytes, a type code (0x08 = uint8, the only one these data sets use), and the
number of dimensions; then one big-endian uint32 per dimension.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file."""


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def _read_exactly(f, count: int, path: str) -> bytes:
    try:
        return f.read(count)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}).") from None


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array of its declared shape.

    The header is read first and the data after it only up to the size it declares (plus one
    byte, to see whether more follows): a gzip bomb is refused without being inflated."""
    if os.path.isdir(path):
        raise DataError(
            f"{path}: is a directory; expected an IDX file (e.g. train-images-idx3-ubyte.gz)."
        )
    try:
        raw_file = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}).") from None
    with raw_file:
        compressed = raw_file.read(2) == b"\x1f\x8b"
        raw_file.seek(0)
        f = gzip.GzipFile(fileobj=raw_file) if compressed else raw_file
        magic = _read_exactly(f, 4, path)
        if len(magic) == 0:
            raise DataError(f"{path}: the file is empty; expected an IDX file.")
        if (
            len(magic) < 4
            or magic[0] != 0
            or magic[1] != 0
            or magic[2] not in _TYPES
            or magic[3] == 0
        ):
            raise DataError(
                f"{path}: wrong magic number {magic[:4].hex()}; expected an IDX file "
                "(00 00 <type> <ndim>, e.g. 00000803 for images, 00000801 for labels)."
            )
        ndim = magic[3]
        dims = _read_exactly(f, 4 * ndim, path)
        if len(dims) < 4 * ndim:
            raise DataError(
                f"{path}: truncated header ({4 + len(dims)} bytes for {ndim} dimensions)."
            )
        shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
        dtype = np.dtype(_TYPES[magic[2]])
        expected = math.prod(shape) * dtype.itemsize
        memory = _memory_bytes()
        if memory is not None and expected > memory:
            raise DataError(
                f"{path}: its header {shape} declares {expected:,} data bytes, more than this "
                f"machine's {memory:,} bytes of memory; the file is corrupt or not this data set."
            )
        data = _read_exactly(f, expected + 1, path)
    if len(data) != expected:
        held = f"{len(data)}" if len(data) < expected else f"more than {expected}"
        raise DataError(
            f"{path}: holds {held} data bytes, but its header {shape} declares "
            f"{expected}; the file is truncated or corrupt."
        )
    # A native-order copy: writable, and free of the bytes read.
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
