"""The dataset-level check: duplicate ids, captions without an image, and splits that point nowhere.

It reads only the id columns (pyarrow column projections), so it stays cheap for millions of rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.errors import DataError, Reject, rejects_table
from teran_core.data.manifest import DatasetManifest, as_location
from teran_core.data.readers import file_sha256, read_parquet
from teran_core.data.schema import CAPTIONS, IMAGES
from teran_core.storage import Location, StorageConfig

__all__ = ["DatasetCheck", "check_dataset"]


@dataclasses.dataclass
class DatasetCheck:
    """What :func:`check_dataset` found: the manifest and the rows to reject (id, shard, row, reason)."""

    manifest: DatasetManifest
    rejects: pa.Table

    def known(self, shard: str) -> dict[int, str]:
        """The rejects of one shard as {row: reason}, for the ``known`` argument of the validators."""
        mine = self.rejects.filter(pc.equal(self.rejects.column("shard"), shard))
        return dict(zip(mine.column("row").to_pylist(), mine.column("reason").to_pylist()))


class _Ids:
    """The ids of every shard of one kind, with a way back from a position to (shard, row)."""

    def __init__(self, manifest: DatasetManifest, kind: str, columns: list[str], verify_checksums: bool):
        self.names = [s.name for s in manifest.shards[kind]]
        tables = []
        for info, location in zip(manifest.shards[kind], manifest.shard_locations(kind)):
            tables.append(read_parquet(location, f"{kind} shard {info.name}", columns, info.rows))
            if verify_checksums and file_sha256(location) != info.sha256:
                raise DataError(f"{kind} shard {info.name} ({location.uri}) does not match the sha256 in dataset.json; write the dataset again")
        schema = pa.schema([(c, pa.string()) for c in columns])
        self.table = pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
        self.ends = np.cumsum([t.num_rows for t in tables])

    def where(self, position: int) -> tuple[str, int]:
        shard = int(np.searchsorted(self.ends, position, side="right"))
        return self.names[shard], position - int(self.ends[shard - 1] if shard else 0)


def _duplicates(ids: _Ids, column: str) -> list[Reject]:
    values = ids.table.column(column)
    counts = pc.value_counts(values)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return []
    first: dict[str, tuple[str, int]] = {}
    rejects = []
    for position in np.flatnonzero(pc.is_in(values, value_set=repeated).to_numpy(zero_copy_only=False)):
        key, (shard, row) = values[int(position)].as_py(), ids.where(int(position))
        if key in first:
            rejects.append(Reject(key, shard, row, f"duplicate {column} {key!r}; first seen in {first[key][0]} row {first[key][1]}"))
        else:
            first[key] = (shard, row)
    return rejects


def _check_split(manifest: DatasetManifest, name: str, images: pa.Array, captions: pa.Array) -> None:
    info = manifest.splits[name]
    for kind, known in (("images", images), ("captions", captions)):
        shard = getattr(info, kind)
        column = "image_id" if kind == "images" else "caption_id"
        ids = read_parquet(manifest.split_location(name, kind), f"split file {shard.name}", [column], shard.rows).column(column)
        missing = pc.invert(pc.is_in(ids, value_set=known)).to_numpy(zero_copy_only=False)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(f"split file {shard.name} row {row}: {column} {ids[row]} is not in any {kind} shard; write the dataset again")


def check_dataset(location: Location | str, storage: StorageConfig | None = None, verify_checksums: bool = False) -> DatasetCheck:
    """Checks a whole dataset from its id columns.

    Duplicate ids (every occurrence after the first) and captions whose image is in no images shard
    are row-level: they come back as rejects. Missing, corrupt or truncated shards and split files,
    row counts that differ from the manifest, a split id that is in no shard and (with
    ``verify_checksums``) a shard whose bytes differ from its sha256 stop with a :class:`DataError`.

    Args:
        location: the dataset (a Location or a URI).
        storage: endpoint settings when ``location`` is an S3 URI.
        verify_checksums: also read every shard in full to compare its sha256 (slow for big datasets).

    Example:
        >>> import tempfile
        >>> from teran_core.data.synth import SynthConfig, generate_dataset
        >>> root = tempfile.mkdtemp()
        >>> _ = generate_dataset(SynthConfig(images=4, feature_dim=4, group_size=2, test_images=2, dev_images=0), root)
        >>> check_dataset(root, verify_checksums=True).rejects.num_rows
        0
    """
    manifest = DatasetManifest.load(as_location(location, storage))
    images = _Ids(manifest, IMAGES, ["image_id"], verify_checksums)
    captions = _Ids(manifest, CAPTIONS, ["caption_id", "image_id"], verify_checksums)
    rejects = _duplicates(images, "image_id") + _duplicates(captions, "caption_id")
    image_ids = images.table.column("image_id")
    orphan = pc.invert(pc.is_in(captions.table.column("image_id"), value_set=image_ids)).to_numpy(zero_copy_only=False)
    for position in np.flatnonzero(orphan):
        image = captions.table.column("image_id")[int(position)].as_py()
        rejects.append(Reject(captions.table.column("caption_id")[int(position)].as_py(), *captions.where(int(position)),
                              f"caption of image {image!r}, which is in no images shard"))
    for name in manifest.splits:
        _check_split(manifest, name, image_ids, captions.table.column("caption_id"))
    return DatasetCheck(manifest, rejects_table(sorted(rejects, key=lambda r: (r.shard, r.row))))
