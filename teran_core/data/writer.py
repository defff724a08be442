"""Writing a dataset's files: parquet streamed through an atomic write while its SHA-256 is taken."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.data.errors import REJECT_SCHEMA, DataError, Reject, rejects_table
from teran_core.data.manifest import MANIFEST_NAME, ShardInfo
from teran_core.storage import Location

__all__ = ["write_parquet", "write_rejects", "prepare_output", "DATASET_FOLDERS"]

DATASET_FOLDERS = ("images", "captions", "splits", "rejects", "scenes")  # scenes: synthetic datasets only


class _HashingSink(io.RawIOBase):
    """A write-only file that passes bytes on to ``raw`` and hashes them on the way."""

    def __init__(self, raw):
        super().__init__()
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.raw.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def write_parquet(
    location: Location, tables: pa.Table | Iterable[pa.Table], schema: pa.Schema, row_group_rows: int | None = None
) -> ShardInfo:
    """Writes one parquet file from a table or a stream of tables, atomically.

    A stream is written table by table, so a file far larger than memory can be produced while only
    one table is held at a time.

    Args:
        location: the file to write.
        tables: one table, or an iterable of tables, each with ``schema``.
        schema: the file's schema.
        row_group_rows: rows per parquet row group (None: pyarrow's default).

    Returns:
        The file's :class:`ShardInfo` (name, rows, sha256 of its bytes, size).

    Example:
        >>> import tempfile
        >>> from teran_core.storage import resolve
        >>> loc = resolve(tempfile.mkdtemp()).join("x.parquet")
        >>> write_parquet(loc, pa.table({"a": [1, 2]}), pa.schema([("a", pa.int64())])).rows
        2
    """
    rows = 0
    with location.atomic_write() as raw:
        sink = _HashingSink(raw)
        # dictionaries and min/max statistics cost most of the write time on float lists and help no reader here
        with pq.ParquetWriter(sink, schema, use_dictionary=False, write_statistics=False) as writer:
            for table in [tables] if isinstance(tables, pa.Table) else tables:
                writer.write_table(table.cast(schema), row_group_size=row_group_rows)
                rows += table.num_rows
    return ShardInfo(name=location.name, rows=rows, sha256=sink.sha256.hexdigest(), bytes=sink.size)


def write_rejects(root: Location, kind: str, rejects: list[Reject]) -> ShardInfo | None:
    """Writes ``rejects/<kind>.parquet`` when there is any reject; returns its info (None when none)."""
    if not rejects:
        return None
    return write_parquet(root.join("rejects", f"{kind}.parquet"), rejects_table(rejects), REJECT_SCHEMA)


def prepare_output(root: Location, overwrite: bool) -> None:
    """Makes ``root`` ready for a new dataset.

    A finished dataset (one with a manifest) is kept unless ``overwrite``. Otherwise the manifest goes
    first (so no reader sees a manifest over changing shards), then the dataset folders, which also
    clears what an unfinished run left behind.

    Raises:
        DataError: ``root`` already holds a finished dataset and ``overwrite`` is False.
    """
    manifest = root.join(MANIFEST_NAME)
    if manifest.exists():
        if not overwrite:
            raise DataError(
                f"{root.uri} already holds a dataset ({manifest.uri} exists); choose another output or set "
                "output.overwrite=true to replace it"
            )
        manifest.remove()
    for folder in DATASET_FOLDERS:
        root.join(folder).remove()
    root.makedirs()
