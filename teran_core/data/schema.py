"""The parquet schemas of a teran dataset's shards (documented in docs/formats.md).

Shape notation: B images in a table, R a given image's regions, F the feature dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from teran_core.data.errors import DataError
from teran_core.data.regions import inner_width, is_region_list

__all__ = [
    "FORMAT_VERSION", "IMAGES", "CAPTIONS", "FEATURE_DTYPES", "image_schema", "CAPTION_SCHEMA",
    "shard_name", "images_table", "captions_table", "image_row_bytes", "check_image_columns", "check_caption_columns",
]

FORMAT_VERSION = 1  # dataset.json's format_version; readers refuse a newer one
IMAGES, CAPTIONS = "images", "captions"
FEATURE_DTYPES = {"float16": pa.float16(), "float32": pa.float32()}
BOX_TYPE = pa.list_(pa.list_(pa.float32(), 4))  # (R, 4) normalised x1, y1, x2, y2

CAPTION_SCHEMA = pa.schema([("caption_id", pa.string()), ("image_id", pa.string()), ("text", pa.string())])


def image_schema(feature_dim: int, feature_dtype: str = "float32") -> pa.Schema:
    """The schema of an images shard whose region features are ``feature_dim`` wide.

    Example:
        >>> image_schema(4, "float16").field("features").type
        ListType(list<item: fixed_size_list<item: halffloat>[4]>)
    """
    if feature_dtype not in FEATURE_DTYPES:
        raise ValueError(f"feature dtype {feature_dtype!r} is not supported; expected one of {sorted(FEATURE_DTYPES)}")
    return pa.schema([
        ("image_id", pa.string()),
        ("n_regions", pa.int32()),
        ("features", pa.list_(pa.list_(FEATURE_DTYPES[feature_dtype], feature_dim))),  # (R, F)
        ("boxes", BOX_TYPE),  # (R, 4); null when the source has no boxes (precomp)
        ("width", pa.int32()),  # pixels; null when unknown
        ("height", pa.int32()),
    ])


def shard_name(kind: str, index: int) -> str:
    """The deterministic file name of shard ``index`` of ``kind`` ("images" or "captions").

    Example:
        >>> shard_name("images", 3)
        'images-00003.parquet'
    """
    return f"{kind}-{index:05d}.parquet"


def _nested(values: np.ndarray, counts: np.ndarray, value_type: pa.DataType, width: int) -> pa.ListArray:
    """(sum R, width) values and (B,) counts -> a list<fixed_size_list<width>> array of B rows."""
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=value_type)
    vectors = pa.FixedSizeListArray.from_arrays(flat, width)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, vectors, type=pa.list_(pa.list_(value_type, width)))


def images_table(
    image_ids: Sequence[str],
    n_regions: np.ndarray,
    features: np.ndarray,
    boxes: np.ndarray | None,
    widths: Sequence[int | None],
    heights: Sequence[int | None],
    feature_dtype: str = "float32",
) -> pa.Table:
    """Builds an images table from the regions of B images laid end to end.

    Args:
        image_ids: B ids.
        n_regions: (B,) regions per image.
        features: (sum R, F) region features, image after image.
        boxes: (sum R, 4) normalised boxes, or None when the source has none.
        widths, heights: B image sizes in pixels (None where unknown).
        feature_dtype: "float32" or "float16" (storage type of the features).

    Example:
        >>> t = images_table(["a", "b"], np.array([1, 2]), np.arange(6.0).reshape(3, 2), None, [640, 640], [480, 480])
        >>> t.column("features").to_pylist()
        [[[0.0, 1.0]], [[2.0, 3.0], [4.0, 5.0]]]
    """
    counts = np.asarray(n_regions, np.int32)
    dim = features.shape[1]
    value_type = FEATURE_DTYPES[feature_dtype]
    columns = [
        pa.array(list(image_ids), pa.string()),
        pa.array(counts),
        _nested(features.astype(feature_dtype, copy=False), counts, value_type, dim),
        pa.nulls(len(counts), BOX_TYPE) if boxes is None else _nested(boxes.astype(np.float32, copy=False), counts, pa.float32(), 4),
        pa.array(list(widths), pa.int32()),
        pa.array(list(heights), pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=image_schema(dim, feature_dtype))


def captions_table(caption_ids: Sequence[str], image_ids: Sequence[str], texts: Sequence[str]) -> pa.Table:
    """Builds a captions table.

    Example:
        >>> captions_table(["c1"], ["a"], ["a red car."]).num_rows
        1
    """
    return pa.table({"caption_id": list(caption_ids), "image_id": list(image_ids), "text": list(texts)}, schema=CAPTION_SCHEMA)


def image_row_bytes(feature_dim: int, feature_dtype: str, regions: float) -> int:
    """Approximate stored bytes of one image with ``regions`` regions (what shard sizes are planned from).

    Example:
        >>> image_row_bytes(2048, "float16", 36)
        148096
    """
    return int(regions * (feature_dim * np.dtype(feature_dtype).itemsize + 4 * 4) + 64)


def _is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def check_image_columns(schema: pa.Schema, *, shard: str, feature_dim: int) -> None:
    """Raises a :class:`DataError` naming ``shard`` when an images batch cannot be read as one."""
    expected = {
        "image_id": (_is_text, "string"),
        "n_regions": (pa.types.is_integer, "an integer"),
        "features": (is_region_list, f"list<fixed_size_list<float, {feature_dim}>>"),
        "boxes": (lambda t: pa.types.is_null(t) or is_region_list(t), "list<fixed_size_list<float32, 4>>"),
        "width": (lambda t: pa.types.is_null(t) or pa.types.is_integer(t), "int32"),
        "height": (lambda t: pa.types.is_null(t) or pa.types.is_integer(t), "int32"),
    }
    missing = [name for name in expected if name not in schema.names]
    if missing:
        raise DataError(f"shard {shard}: missing column(s) {missing}; found {schema.names}, expected the images schema of docs/formats.md")
    for name, (ok, what) in expected.items():
        if not ok(schema.field(name).type):
            raise DataError(f"shard {shard}: column {name} has type {schema.field(name).type}, expected {what}")
    width = inner_width(schema.field("features").type)
    if width is not None and width != feature_dim:
        raise DataError(
            f"shard {shard}: every region has {width} features, the dataset's feature_dim is {feature_dim}; "
            "convert the source again with convert.feature_dim matching its features"
        )


def check_caption_columns(schema: pa.Schema, *, shard: str) -> None:
    """Raises a :class:`DataError` naming ``shard`` when a captions batch lacks a string column of the schema."""
    for field in CAPTION_SCHEMA:
        if field.name not in schema.names or not _is_text(schema.field(field.name).type):
            raise DataError(f"shard {shard}: column {field.name} is missing or not a string; found {schema}, expected {CAPTION_SCHEMA}")
