"""Splits (train/dev/test): ordered image ids and captions in small files under ``splits/``.

The order of a split is its evaluation order: the reference's 1K folds of a 5K test set are images
[0:1000], [1000:2000], ... of ``splits/test-images.parquet``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.errors import DataError
from teran_core.data.manifest import DatasetManifest, SplitInfo, as_location
from teran_core.data.readers import read_parquet
from teran_core.data.writer import write_parquet
from teran_core.storage import Location, StorageConfig

__all__ = ["SPLIT_IMAGES_SCHEMA", "SPLIT_CAPTIONS_SCHEMA", "FOLD_SIZE", "split_folds", "write_split", "load_split"]

SPLIT_IMAGES_SCHEMA = pa.schema([("image_id", pa.string())])
SPLIT_CAPTIONS_SCHEMA = pa.schema([("caption_id", pa.string()), ("image_id", pa.string())])
FOLD_SIZE = 1000  # the reference's "1K" test protocol


def split_folds(n_images: int, fold_size: int = FOLD_SIZE) -> list[list[int]]:
    """[start, stop) image ranges of the consecutive full folds; one fold of everything when smaller.

    Example:
        >>> split_folds(5000)
        [[0, 1000], [1000, 2000], [2000, 3000], [3000, 4000], [4000, 5000]]
        >>> split_folds(12)
        [[0, 12]]
    """
    if n_images < fold_size:
        return [[0, n_images]] if n_images else []
    return [[start, start + fold_size] for start in range(0, n_images - fold_size + 1, fold_size)]


def write_split(root: Location, name: str, images: Iterable[pa.Table], captions: Iterable[pa.Table]) -> SplitInfo:
    """Writes ``splits/<name>-images.parquet`` and ``splits/<name>-captions.parquet`` from streams of tables.

    Args:
        root: the dataset folder.
        name: "train", "dev", "test", ...
        images: tables with an image_id column, in split order.
        captions: tables with caption_id and image_id columns, in split order.
    """
    image_info = write_parquet(root.join("splits", f"{name}-images.parquet"), images, SPLIT_IMAGES_SCHEMA)
    caption_info = write_parquet(root.join("splits", f"{name}-captions.parquet"), captions, SPLIT_CAPTIONS_SCHEMA)
    return SplitInfo(images=image_info, captions=caption_info, folds=split_folds(image_info.rows))


def load_split(
    location: Location | str, split: str, storage: StorageConfig | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """A split's images and captions in evaluation order.

    Args:
        location: the dataset (a Location or a URI).
        split: "train", "dev", "test", ...
        storage: endpoint settings when ``location`` is an S3 URI.

    Returns:
        (image_ids, caption_ids, caption_image_index) where ``caption_image_index[j]`` is the index in
        ``image_ids`` of caption j's image (int64).

    Raises:
        FileNotFoundError: no dataset.json at ``location``.
        DataError: an unknown split, a missing or corrupt split file, or a caption whose image is not in the split.

    Example:
        >>> import tempfile
        >>> from teran_core.data.synth import SynthConfig, generate_dataset
        >>> root = tempfile.mkdtemp()
        >>> _ = generate_dataset(SynthConfig(images=8, feature_dim=4, group_size=2, test_images=4, dev_images=2), root)
        >>> images, captions, index = load_split(root, "test")
        >>> len(images), len(captions), index[:7].tolist()
        (4, 20, [0, 0, 0, 0, 0, 1, 1])
    """
    manifest = DatasetManifest.load(as_location(location, storage))
    if split not in manifest.splits:
        raise DataError(f"{manifest.location} has no split {split!r}; its splits are {sorted(manifest.splits)}")
    info = manifest.splits[split]
    images = read_parquet(manifest.split_location(split, "images"), f"split file {info.images.name}", rows=info.images.rows)
    captions = read_parquet(manifest.split_location(split, "captions"), f"split file {info.captions.name}", rows=info.captions.rows)
    image_ids = images.column("image_id")
    index = pc.index_in(captions.column("image_id"), value_set=image_ids)
    if index.null_count:
        row = int(np.flatnonzero(index.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"split file {info.captions.name} row {row}: caption {captions.column('caption_id')[row]} belongs to image "
            f"{captions.column('image_id')[row]}, which is not in {info.images.name}; write the dataset again"
        )
    return image_ids.to_pylist(), captions.column("caption_id").to_pylist(), index.to_numpy().astype(np.int64)
