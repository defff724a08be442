"""Per-batch validation of image and caption rows: structural problems raise, bad rows become rejects.

Shape notation: B rows in the batch, R a row's regions, F the feature dimension.
The rule (docs/formats.md): a shard whose schema or feature width is wrong stops the job with a
:class:`DataError`; a bad row is returned as a reject with its shard, row and reason. Nothing is
dropped silently: every input row is either in the valid table or in the rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.errors import REJECT_SCHEMA
from teran_core.data.regions import as_array, fixed_regions, inner_width, region_arrays
from teran_core.data.schema import check_caption_columns, check_image_columns

__all__ = ["image_row_problems", "caption_row_problems", "validate_images", "validate_captions"]

Problems = dict[int, str]  # row in the batch -> reason (the first problem found)


def _flag(problems: Problems, mask: np.ndarray, reason: Callable[[int], str], index: np.ndarray | None = None) -> None:
    for i in np.flatnonzero(mask):
        row = int(i if index is None else index[i])
        problems.setdefault(row, reason(int(i)))


def _empty(column) -> np.ndarray:
    column = as_array(column)
    return pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), True).to_numpy(zero_copy_only=False)


def _first_region(bad: np.ndarray, region_row: np.ndarray, starts: np.ndarray) -> dict[int, int]:
    """For each row with a bad region, the index (within the row) of its first bad region."""
    where = np.flatnonzero(bad)
    rows, first = np.unique(region_row[where], return_index=True)
    return {int(r): int(where[f] - starts[r]) for r, f in zip(rows, first)}


def _region_checks(table: pa.Table, problems: Problems, index: np.ndarray, feature_dim: int, boxes_required: bool) -> None:
    """Non-finite features and bad boxes, on rows whose features are F wide (``index``: batch rows)."""
    counts, values = region_arrays(table.column("features"), feature_dim)  # (B,), (sum R, F)
    starts = np.cumsum(counts) - counts
    region_row = np.repeat(np.arange(len(counts)), counts)
    finite = np.isfinite(values.sum(axis=1, dtype=np.float64))  # NaN or inf anywhere makes the sum non-finite
    firsts = _first_region(~finite, region_row, starts)
    hint = " (float16 storage turns values beyond +-65504 into inf)" if values.dtype == np.float16 else ""
    _flag(problems, np.isin(np.arange(len(counts)), list(firsts)), lambda i: f"region {firsts[i]} has NaN or inf features{hint}", index)
    boxes = as_array(table.column("boxes"))
    if pa.types.is_null(boxes.type):
        _flag(problems, np.full(len(counts), boxes_required), lambda i: "boxes are null but the dataset has boxes", index)
        return
    box_null = boxes.is_null().to_numpy(zero_copy_only=False)
    _flag(problems, box_null & boxes_required, lambda i: "boxes are null but the dataset has boxes", index)
    box_counts, coords = region_arrays(boxes, 4)  # (B,), (sum R, 4)
    _flag(problems, ~box_null & (box_counts != counts), lambda i: f"{box_counts[i]} boxes for {counts[i]} regions", index)
    box_row = np.repeat(np.arange(len(counts)), box_counts)
    box_starts = np.cumsum(box_counts) - box_counts
    outside = ~((coords >= 0) & (coords <= 1)).all(axis=1)
    inverted = (coords[:, 2] < coords[:, 0]) | (coords[:, 3] < coords[:, 1])
    for bad, what in ((outside, "is outside [0, 1]; boxes are x1, y1, x2, y2 divided by the image width/height"),
                      (inverted, "is inverted (x2 < x1 or y2 < y1)")):
        firsts = _first_region(bad, box_row, box_starts)
        _flag(problems, np.isin(np.arange(len(counts)), list(firsts)),
              lambda i, firsts=firsts, what=what: f"region {firsts[i]} box {coords[box_starts[i] + firsts[i]].tolist()} {what}", index)


def image_row_problems(table: pa.Table, *, feature_dim: int, max_regions: int, boxes_required: bool = True) -> Problems:
    """The bad rows of an images batch (the schema is assumed checked), each with its first problem."""
    features = as_array(table.column("features"))
    counts = pc.list_value_length(features).fill_null(0).to_numpy().astype(np.int64)
    n_regions = as_array(table.column("n_regions")).fill_null(-1).to_numpy()
    problems: Problems = {}
    _flag(problems, _empty(table.column("image_id")), lambda i: "image_id is empty")
    _flag(problems, features.is_null().to_numpy(zero_copy_only=False), lambda i: "features are null")
    _flag(problems, n_regions != counts, lambda i: f"n_regions is {n_regions[i]} but features has {counts[i]} regions")
    _flag(problems, counts == 0, lambda i: "zero regions; an image needs at least one region")
    _flag(problems, counts > max_regions,
          lambda i: f"{counts[i]} regions, more than max_regions {max_regions}; raise max_regions or keep fewer regions at the source")
    if inner_width(features.type) is None:  # list<list>: region widths may differ row by row
        widths = pc.list_value_length(features.flatten()).to_numpy()
        region_row = np.repeat(np.arange(len(counts)), counts)
        firsts = _first_region(widths != feature_dim, region_row, np.cumsum(counts) - counts)
        _flag(problems, np.isin(np.arange(len(counts)), list(firsts)),
              lambda i: f"region {firsts[i]} has {widths[np.cumsum(counts)[i] - counts[i] + firsts[i]]} features, expected {feature_dim}")
    rest = np.setdiff1d(np.arange(table.num_rows), list(problems))
    subset = table.take(rest)
    subset = subset.set_column(subset.schema.get_field_index("features"), "features",
                               fixed_regions(as_array(subset.column("features")), feature_dim))
    _region_checks(subset, problems, rest, feature_dim, boxes_required)
    return problems


def caption_row_problems(table: pa.Table) -> Problems:
    """The bad rows of a captions batch, each with its first problem."""
    problems: Problems = {}
    _flag(problems, _empty(table.column("caption_id")), lambda i: "caption_id is empty")
    _flag(problems, _empty(table.column("image_id")), lambda i: "image_id is empty")
    _flag(problems, _empty(table.column("text")), lambda i: "caption text is empty or whitespace only")
    return problems


def _split(table: pa.Table, problems: Problems, id_column: str, shard: str, first_row: int, known) -> tuple[pa.Table, pa.Table]:
    for row, reason in (known or {}).items():
        if first_row <= row < first_row + table.num_rows:
            problems.setdefault(row - first_row, reason)
    bad = np.zeros(table.num_rows, bool)
    bad[list(problems)] = True
    rows = sorted(problems)
    ids = as_array(table.column(id_column)).take(pa.array(rows, pa.int64())).fill_null("")
    rejects = pa.table({
        "id": ids.cast(pa.string()), "shard": pa.array([shard] * len(rows), pa.string()),
        "row": pa.array([first_row + r for r in rows], pa.int64()), "reason": pa.array([problems[r] for r in rows], pa.string()),
    }, schema=REJECT_SCHEMA)
    return table.filter(pa.array(~bad)), rejects


def validate_images(
    table: pa.Table, *, shard: str, first_row: int = 0, feature_dim: int, max_regions: int = 36,
    boxes_required: bool = True, known: Mapping[int, str] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Splits an images batch into valid rows and rejects.

    Args:
        table: rows of one images shard (the images schema of docs/formats.md).
        shard: the shard's name, for messages and rejects.
        first_row: the row index, within the shard, of the table's first row.
        feature_dim: F expected of every region.
        max_regions: the most regions an image may have.
        boxes_required: whether null boxes are a problem (the manifest's ``has_boxes``).
        known: rejects found by :func:`teran_core.data.check_dataset` for this shard (shard row -> reason).

    Returns:
        (valid rows, rejects with columns id, shard, row, reason).

    Raises:
        DataError: a missing column, a wrong column type, or features of the wrong width in the whole shard.

    Example:
        >>> from teran_core.data.schema import images_table
        >>> t = images_table(["a", "b"], np.array([1, 1]), np.array([[0.5, 1.0], [np.nan, 0.0]]),
        ...                  np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), [10, 10], [10, 10])
        >>> valid, rejects = validate_images(t, shard="images-00000.parquet", first_row=100, feature_dim=2)
        >>> valid.column("image_id").to_pylist(), rejects.to_pylist()[0]["row"], rejects.to_pylist()[0]["reason"]
        (['a'], 101, 'region 0 has NaN or inf features')
    """
    check_image_columns(table.schema, shard=shard, feature_dim=feature_dim)
    problems = image_row_problems(table, feature_dim=feature_dim, max_regions=max_regions, boxes_required=boxes_required)
    return _split(table, problems, "image_id", shard, first_row, known)


def validate_captions(
    table: pa.Table, *, shard: str, first_row: int = 0, known: Mapping[int, str] | None = None
) -> tuple[pa.Table, pa.Table]:
    """Splits a captions batch into valid rows and rejects (same contract as :func:`validate_images`).

    Example:
        >>> from teran_core.data.schema import captions_table
        >>> valid, rejects = validate_captions(captions_table(["c1", "c2"], ["a", "a"], ["a dog.", "  "]), shard="s")
        >>> valid.num_rows, rejects.column("reason").to_pylist()
        (1, ['caption text is empty or whitespace only'])
    """
    check_caption_columns(table.schema, shard=shard)
    return _split(table, caption_row_problems(table), "caption_id", shard, first_row, known)
