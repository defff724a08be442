"""Reading a dataset's shards with their integrity checked: corrupt, truncated or missing files stop the job."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.data.errors import DataError
from teran_core.data.manifest import DatasetManifest, ShardInfo
from teran_core.storage import Location

__all__ = ["open_parquet", "read_parquet", "read_shard", "iter_shard_batches", "ShardBatch", "file_sha256"]


def open_parquet(location: Location, label: str) -> pq.ParquetFile:
    """Opens a parquet file through pyarrow's filesystem (range reads on S3).

    Raises:
        DataError: the file is missing, or its footer cannot be read (corrupt or truncated).
    """
    try:
        return pq.ParquetFile(location.pyarrow_filesystem().open_input_file(location.path))
    except FileNotFoundError:
        raise DataError(f"{label} ({location.uri}) is listed in dataset.json but does not exist; write the dataset again") from None
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{label} ({location.uri}) is corrupt or truncated ({err}); write the dataset again") from None


def read_parquet(location: Location, label: str, columns: Sequence[str] | None = None, rows: int | None = None) -> pa.Table:
    """Reads a whole parquet file (or some columns), checking its row count against ``rows`` when given."""
    parquet = open_parquet(location, label)
    if rows is not None and parquet.metadata.num_rows != rows:
        raise DataError(f"{label} ({location.uri}) has {parquet.metadata.num_rows} rows, dataset.json says {rows}; write the dataset again")
    try:
        return parquet.read(columns=list(columns) if columns else None)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{label} ({location.uri}) is corrupt or truncated ({err}); write the dataset again") from None


def _shard(manifest: DatasetManifest, kind: str, shard: int | str) -> tuple[ShardInfo, Location]:
    infos = manifest.shards[kind]
    info = infos[shard] if isinstance(shard, int) else next((s for s in infos if s.name == shard), None)
    if info is None:
        raise DataError(f"shard {shard!r} is not among the {len(infos)} {kind} shards of {manifest.location}")
    return info, manifest.location.join(kind, info.name)


def read_shard(manifest: DatasetManifest, kind: str, shard: int | str, columns: Sequence[str] | None = None) -> pa.Table:
    """One shard (by index or name) as a table; its row count is checked against the manifest.

    Example:
        >>> import tempfile
        >>> from teran_core.data.synth import SynthConfig, generate_dataset
        >>> m = generate_dataset(SynthConfig(images=8, feature_dim=4, test_images=4, dev_images=0), tempfile.mkdtemp())
        >>> read_shard(m, "captions", 0).num_rows
        40
    """
    info, location = _shard(manifest, kind, shard)
    return read_parquet(location, f"{kind} shard {info.name}", columns, info.rows)


@dataclasses.dataclass
class ShardBatch:
    """A batch of rows and where it came from (what the validators need to name bad rows)."""

    shard: str
    first_row: int  # row of table[0] within the shard
    table: pa.Table


def iter_shard_batches(
    manifest: DatasetManifest, kind: str, batch_size: int = 256, columns: Sequence[str] | None = None
) -> Iterator[ShardBatch]:
    """Streams every shard of ``kind`` in order, ``batch_size`` rows at a time, holding one batch in memory."""
    for index, info in enumerate(manifest.shards[kind]):
        _, location = _shard(manifest, kind, index)
        parquet = open_parquet(location, f"{kind} shard {info.name}")
        first = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
                yield ShardBatch(info.name, first, pa.Table.from_batches([batch]))
                first += batch.num_rows
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"{kind} shard {info.name} ({location.uri}) is corrupt or truncated near row {first} ({err})") from None
        if first != info.rows:
            raise DataError(f"{kind} shard {info.name} ({location.uri}) has {first} rows, dataset.json says {info.rows}")


def file_sha256(location: Location, block: int = 8 * 2**20) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with location.open("rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
