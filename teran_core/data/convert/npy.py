"""Row ranges of a large ``.npy`` file, read with one ranged read (works on S3, never loads the whole file)."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib import format as npy_format

from teran_core.data.errors import DataError
from teran_core.storage import Location

__all__ = ["npy_header", "read_npy_rows"]


def _header(f, label: str) -> tuple[tuple[int, ...], np.dtype, int]:
    try:
        version = npy_format.read_magic(f)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran_order, dtype = read(f)
    except ValueError as err:
        raise DataError(f"{label} is not a readable .npy file ({err})") from None
    if fortran_order or dtype.hasobject:
        raise DataError(f"{label} holds a Fortran-ordered or object array; save it with np.save of a C-ordered numeric array")
    return shape, dtype, f.tell()


def npy_header(location: Location, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: it is not a plain numeric .npy file.
    """
    with location.open("rb") as f:
        shape, dtype, _ = _header(f, label)
    return shape, dtype


def read_npy_rows(location: Location, start: int, stop: int, label: str) -> np.ndarray:
    """Rows ``start``..``stop - 1`` (along axis 0) of a ``.npy`` file.

    Raises:
        DataError: the file is not a plain .npy file or ends before row ``stop`` (truncated).

    Example:
        >>> import tempfile, io
        >>> from teran_core.storage import resolve
        >>> loc = resolve(tempfile.mkdtemp()).join("x.npy")
        >>> buffer = io.BytesIO(); np.save(buffer, np.arange(12).reshape(4, 3)); loc.write_bytes(buffer.getvalue())
        >>> read_npy_rows(loc, 1, 3, "x.npy").tolist()
        [[3, 4, 5], [6, 7, 8]]
    """
    with location.open("rb") as f:
        shape, dtype, offset = _header(f, label)
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        f.seek(offset + start * row_bytes)
        data = f.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
        raise DataError(f"{label} is truncated: its header says {shape[0]} rows of {shape[1:]}, but rows {start}..{stop - 1} are not all there")
    return np.frombuffer(data, dtype).reshape((stop - start, *shape[1:]))
