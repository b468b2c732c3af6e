"""Read IDX files (the MNIST / Fashion-MNIST format), plain or gzipped, with strict checks.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the values in
row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from landscape.errors import LandscapeError

# The IDX type byte -> big-endian numpy dtype.
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file; a name ending in ``.gz`` is decompressed first.

    Args:
        path: the file.

    Returns:
        The array, shape as the header says, in native byte order (``uint8`` for images).

    Raises:
        LandscapeError: the file is unreadable, has a bad magic number, or its byte count
            does not match its header (truncated or padded).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise LandscapeError(f"IDX file {path} {what}; give the path of an IDX file")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise LandscapeError(
            f"could not read IDX file {path}: {err}; the file is corrupt or truncated, "
            f"fetch it again"
        ) from None
    return parse_idx(raw, name=str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file; see :func:`read_idx`. ``name`` goes into errors."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise LandscapeError(
            f"{name} is not an IDX file (magic number {raw[:4].hex() or 'missing'}); "
            f"expected 0000 then a type byte (08 for uint8) and the number of dims"
        )
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LandscapeError(f"{name} is truncated inside its header; fetch it again")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise LandscapeError(
            f"{name} holds {len(raw)} bytes but its header {shape} needs {expected}; the file "
            f"is truncated or corrupt, fetch it again"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
