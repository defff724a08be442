"""Per-image region lists (features, boxes) as numpy arrays, without a Python loop over rows.

Shape notation: B rows, R a row's regions, W the width of one region vector (F features, 4 box).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.errors import DataError

__all__ = ["as_array", "is_region_list", "inner_width", "fixed_regions", "region_arrays"]


def as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array from a column (Ray batches are usually one chunk already)."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def is_region_list(dtype: pa.DataType) -> bool:
    """Whether ``dtype`` is list<fixed_size_list<float>> or list<list<float>>."""
    if not (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)):
        return False
    inner = dtype.value_type
    if not (pa.types.is_fixed_size_list(inner) or pa.types.is_list(inner) or pa.types.is_large_list(inner)):
        return False
    return pa.types.is_floating(inner.value_type)


def inner_width(dtype: pa.DataType) -> int | None:
    """W of list<fixed_size_list<W>>; None when the inner lists have no fixed size."""
    inner = dtype.value_type
    return inner.list_size if pa.types.is_fixed_size_list(inner) else None


def fixed_regions(array: pa.Array, width: int, name: str = "features") -> pa.Array:
    """``array`` as list<fixed_size_list<width>>, casting list<list> when every inner list has ``width`` values.

    Raises:
        DataError: some region vector does not have ``width`` values.
    """
    if inner_width(array.type) == width:
        return array
    target = pa.list_(pa.list_(array.type.value_type.value_type, width))
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(f"column {name} ({array.type}) cannot be read as {width}-wide region vectors: {err}") from None


def region_arrays(column: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Region counts and the regions of all rows laid end to end.

    Args:
        column: a list<fixed_size_list<float, W>> column (list<list<float>> is cast; null rows count 0).
        width: W.

    Returns:
        counts (B,) int64 and values (sum R, W), in the column's float type.

    Example:
        >>> col = pa.array([[[1.0, 2.0]], None, [[3.0, 4.0], [5.0, 6.0]]])
        >>> counts, values = region_arrays(col, 2)
        >>> counts.tolist(), values.tolist()
        ([1, 0, 2], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    """
    array = fixed_regions(as_array(column), width)
    counts = pc.list_value_length(array).fill_null(0).to_numpy().astype(np.int64)
    # flatten() honours slicing and skips null rows, unlike .values
    values = array.flatten().flatten().to_numpy(zero_copy_only=False)
    return counts, values.reshape(-1, width) if width else values.reshape(0, 0)  # width 0: a batch without any region
