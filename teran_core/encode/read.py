"""The CPU stage: read one input shard, check its bytes, validate its rows and prepare them for the encoders.

Each Ray task reads whole shards, so every row keeps its position in its shard (``row``): rejects
name it, the dataset check's known rejects apply to it, and the writers order shards by it. A shard
is fetched in one request and its sha256 compared with dataset.json before any row is used; a
shard that differs, cannot be parsed or has a wrong schema becomes one *shard error* row
(``row`` -1) that fails that shard alone while the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.data.collate import CaptionCollator
from teran_core.data.errors import DataError
from teran_core.data.regions import as_array, fixed_regions
from teran_core.data.schema import FEATURE_DTYPES
from teran_core.data.validate import validate_captions, validate_images
from teran_core.storage import Location

__all__ = ["ReadSpec", "prepared_schema", "read_shards", "SHARD_ERROR_ROW"]

log = logging.getLogger(__name__)

SHARD_ERROR_ROW = -1  # the ``row`` of a row that reports a whole shard as unusable
ID_COLUMNS = {"images": "image_id", "captions": "caption_id"}
BOXES = pa.list_(pa.list_(pa.float32(), 4))
HEAD = [("kind", pa.string()), ("shard", pa.string()), ("row", pa.int64()), ("id", pa.string()), ("reason", pa.string())]


def prepared_schema(feature_dim: int, feature_dtype: str) -> pa.Schema:
    """What the CPU stage yields, for both kinds: image rows have null input_ids, caption rows null
    regions, rejects (``reason`` set) null payload. One schema, so blocks of both kinds stream together.

    Example:
        >>> prepared_schema(4, "float16").names
        ['kind', 'shard', 'row', 'id', 'reason', 'n_regions', 'features', 'boxes', 'input_ids']
    """
    features = pa.list_(pa.list_(FEATURE_DTYPES[feature_dtype], feature_dim))  # (R, F)
    return pa.schema(HEAD + [
        ("n_regions", pa.int32()), ("features", features), ("boxes", BOXES),
        ("input_ids", pa.list_(pa.int32())),  # [CLS] w1 .. wn [SEP], unpadded
    ])


@dataclasses.dataclass
class ReadSpec:
    """How to read and prepare shards (picklable: Ray sends it to every read task)."""

    dataset: Location  # the dataset root (holding dataset.json)
    batch_rows: int  # rows per yielded block
    feature_dim: int
    feature_dtype: str
    max_regions: int
    has_boxes: bool
    collator: CaptionCollator  # tokenises captions

    @property
    def schema(self) -> pa.Schema:
        return prepared_schema(self.feature_dim, self.feature_dtype)


def read_shards(items: pa.Table, *, spec: ReadSpec) -> Iterator[pa.Table]:
    """Yields prepared blocks for each shard item (kind, name, sha256, known_rows, known_reasons).

    Raises:
        OSError: the store failed (pyarrow's S3 messages, which Ray Data's ``retried_io_errors`` match:
            the job lets Ray Data retry the task, which replays this deterministic generator).
    """
    for item in items.to_pylist():
        kind, name = item["kind"], item["name"]
        location = spec.dataset.join(kind, name)
        try:
            with location.pyarrow_filesystem().open_input_stream(location.path) as f:
                data = f.read_buffer()  # one request; a shard is small next to a worker's memory
        except FileNotFoundError:
            yield _shard_error(spec, kind, name, f"{location.uri} is listed in dataset.json but does not exist; write the dataset again")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != item["sha256"]:
            yield _shard_error(spec, kind, name, f"{location.uri} has sha256 {digest}, dataset.json says {item['sha256']}: "
                               "the file changed or is corrupt; write the dataset again, then rerun (finished shards are kept)")
            continue
        known = dict(zip(item["known_rows"], item["known_reasons"]))
        first = 0
        try:
            for batch in pq.ParquetFile(pa.BufferReader(data)).iter_batches(batch_size=spec.batch_rows):
                table = pa.Table.from_batches([batch])
                yield _prepare(table, kind, name, first, known, spec)
                first += table.num_rows
        except (DataError, pa.ArrowException) as err:
            yield _shard_error(spec, kind, name, f"{kind} shard {name} ({location.uri}) near row {first}: {err}")


def _shard_error(spec: ReadSpec, kind: str, shard: str, reason: str) -> pa.Table:
    row = {"kind": kind, "shard": shard, "row": SHARD_ERROR_ROW, "id": None, "reason": reason}
    return pa.Table.from_pylist([row], schema=spec.schema)


def _prepare(table: pa.Table, kind: str, shard: str, first: int, known: dict[int, str], spec: ReadSpec) -> pa.Table:
    """One batch of one shard -> valid rows with their payload, then the rejects (same schema)."""
    rows = pa.array(np.arange(first, first + table.num_rows), pa.int64())
    table = table.append_column("row", rows)  # validators keep extra columns through their filter
    if kind == "images":
        valid, rejects = validate_images(table, shard=shard, first_row=first, feature_dim=spec.feature_dim,
                                         max_regions=spec.max_regions, boxes_required=spec.has_boxes, known=known)
        payload = _image_payload(valid, spec)
    else:
        valid, rejects = validate_captions(table, shard=shard, first_row=first, known=known)
        payload = _caption_payload(valid, spec.collator, shard, first)
    head = {
        "kind": pa.array([kind] * valid.num_rows, pa.string()),
        "shard": pa.array([shard] * valid.num_rows, pa.string()),
        "row": valid.column("row"),
        "id": valid.column(ID_COLUMNS[kind]).cast(pa.string()),
        "reason": pa.nulls(valid.num_rows, pa.string()),
    }
    rejects = rejects.append_column("kind", pa.array([kind] * rejects.num_rows, pa.string()))
    return pa.concat_tables([_conform(pa.table({**head, **payload}), spec.schema), _conform(rejects, spec.schema)])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in order; the ones it lacks are null."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _image_payload(valid: pa.Table, spec: ReadSpec) -> dict:
    features = fixed_regions(as_array(valid.column("features")), spec.feature_dim)
    boxes = as_array(valid.column("boxes"))
    return {
        "n_regions": valid.column("n_regions").cast(pa.int32()),
        "features": features.cast(spec.schema.field("features").type),
        "boxes": pa.nulls(len(boxes), BOXES) if pa.types.is_null(boxes.type) else fixed_regions(boxes, 4, "boxes").cast(BOXES),
    }


def _caption_payload(valid: pa.Table, collator: CaptionCollator, shard: str, first: int) -> dict:
    if valid.num_rows == 0:
        return {"input_ids": pa.array([], pa.list_(pa.int32()))}
    batch = collator(valid)
    if batch["truncated"]:
        log.warning("%s rows %d..%d: %d caption(s) cut to the backbone's %d tokens",
                    shard, first, first + valid.num_rows - 1, batch["truncated"], collator.max_length)
    lengths = batch["lengths"]  # (B,) incl. [CLS]/[SEP]
    kept = np.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]  # (B, T) real tokens
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return {"input_ids": pa.ListArray.from_arrays(offsets, pa.array(batch["input_ids"][kept].astype(np.int32)))}
