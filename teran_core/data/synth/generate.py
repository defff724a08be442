"""Writing a synthetic dataset: one pure function per shard, then the splits and the manifest.

Shape notation: B images in a chunk, R an image's regions, F the feature dimension. A shard is built
and written one row group (a chunk of images) at a time, so memory stays at about one chunk whatever
the dataset size. :func:`generate_dataset` runs :func:`write_synthetic_shard` once per shard on an
executor (``teran synth``: one Ray task per shard).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from teran_core.config import to_dict
from teran_core.data.manifest import DatasetManifest, ShardInfo, as_location
from teran_core.data.schema import CAPTION_SCHEMA, CAPTIONS, IMAGES, captions_table, image_row_bytes, image_schema, images_table, shard_name
from teran_core.data.splits import write_split
from teran_core.data.synth.captions import describe
from teran_core.data.synth.labels import SCENE_SCHEMA, SCENES, scene_labels_table
from teran_core.data.synth.scene import make_scene
from teran_core.data.synth.spec import CAPTIONS_PER_IMAGE, SynthConfig, caption_id, image_id
from teran_core.data.synth.vocabulary import SyntheticWorld
from teran_core.data.writer import prepare_output, write_parquet
from teran_core.executor import Executor, LocalExecutor
from teran_core.progress import Progress
from teran_core.storage import Location, StorageConfig

__all__ = ["generate_chunk", "generate_shard", "write_synthetic_shard", "finish_synthetic", "generate_dataset"]

NOISE_STREAM = 4
ROW_GROUP_BYTES = 8 * 2**20  # one chunk of images per parquet row group; a task holds a few times this (measured: benchmarks/synth_memory.py)
SPLIT_CHUNK = 100_000  # ids per table when streaming split files


def generate_chunk(cfg: SynthConfig, world: SyntheticWorld, start: int, stop: int) -> tuple[pa.Table, pa.Table]:
    """Images ``start``..``stop - 1`` and their captions as (images table, captions table)."""
    scenes = [make_scene(cfg, i) for i in range(start, stop)]
    counts = np.array([s.n_regions for s in scenes], np.int64)
    features = np.empty((int(counts.sum()), cfg.feature_dim), cfg.feature_dtype)  # (sum R, F), already in the storage type
    boxes = np.empty((int(counts.sum()), 4), np.float32)
    captions: list[tuple[str, str, str]] = []
    offset = 0
    for scene in scenes:
        kinds, classes, attributes, scene_boxes = scene.regions()
        noise = np.random.default_rng([cfg.seed, NOISE_STREAM, scene.index]).standard_normal((scene.n_regions, cfg.feature_dim), np.float32)
        noise *= cfg.noise
        noise += world.region_prototypes(kinds, classes, attributes)
        features[offset:offset + scene.n_regions] = noise
        boxes[offset:offset + scene.n_regions] = scene_boxes
        offset += scene.n_regions
        captions += [(caption_id(scene.index, k), image_id(scene.index), c.text) for k, c in enumerate(describe(scene, cfg.seed))]
    images = images_table([image_id(s.index) for s in scenes], counts, features, boxes,
                          [s.width for s in scenes], [s.height for s in scenes], cfg.feature_dtype)
    return images, captions_table(*zip(*captions)) if captions else CAPTION_SCHEMA.empty_table()


def _chunk_images(cfg: SynthConfig) -> int:
    return max(1, ROW_GROUP_BYTES // image_row_bytes(cfg.feature_dim, cfg.feature_dtype, cfg.max_regions))


def generate_shard(cfg: SynthConfig, shard: int, shard_mb: int = 128) -> Iterator[tuple[pa.Table, pa.Table]]:
    """The chunks (images table, captions table) of shard ``shard``: a pure function of ``cfg`` and ``shard``.

    Example:
        >>> cfg = SynthConfig(images=6, feature_dim=8, images_per_shard=4, test_images=4, dev_images=0)
        >>> [(i.num_rows, c.num_rows) for i, c in generate_shard(cfg, 1)]
        [(2, 10)]
    """
    start, stop = cfg.shard_ranges(shard_mb)[shard]
    world = SyntheticWorld(cfg.seed, cfg.feature_dim)
    step = _chunk_images(cfg)
    for a in range(start, stop, step):
        yield generate_chunk(cfg, world, a, min(a + step, stop))


def write_synthetic_shard(cfg: SynthConfig, root: Location, shard: int, shard_mb: int = 128) -> tuple[ShardInfo, ShardInfo]:
    """Writes ``images/images-<shard>.parquet``, ``captions/captions-<shard>.parquet`` and the region labels
    ``scenes/scenes-<shard>.parquet`` (teran_core/data/synth/labels.py); returns the images and captions infos."""
    captions: list[pa.Table] = []

    def images() -> Iterator[pa.Table]:
        for image_chunk, caption_chunk in generate_shard(cfg, shard, shard_mb):
            captions.append(caption_chunk)
            yield image_chunk

    schema = image_schema(cfg.feature_dim, cfg.feature_dtype)
    image_info = write_parquet(root.join(IMAGES, shard_name(IMAGES, shard)), images(), schema, _chunk_images(cfg))
    caption_info = write_parquet(root.join(CAPTIONS, shard_name(CAPTIONS, shard)), captions, CAPTION_SCHEMA)
    write_parquet(root.join(SCENES, shard_name(SCENES, shard)), scene_labels_table(cfg, *cfg.shard_ranges(shard_mb)[shard]), SCENE_SCHEMA)
    return image_info, caption_info


def _split_images(start: int, stop: int) -> Iterator[pa.Table]:
    for a in range(start, stop, SPLIT_CHUNK):
        yield pa.table({"image_id": [image_id(i) for i in range(a, min(a + SPLIT_CHUNK, stop))]})


def _split_captions(start: int, stop: int) -> Iterator[pa.Table]:
    for a in range(start, stop, SPLIT_CHUNK):
        indices = range(a, min(a + SPLIT_CHUNK, stop))
        yield pa.table({
            "caption_id": [caption_id(i, k) for i in indices for k in range(CAPTIONS_PER_IMAGE)],
            "image_id": [image_id(i) for i in indices for _ in range(CAPTIONS_PER_IMAGE)],
        })


def finish_synthetic(cfg: SynthConfig, root: Location, shards: list[tuple[ShardInfo, ShardInfo]], shard_mb: int = 128) -> DatasetManifest:
    """Writes the split files, then ``dataset.json`` (last), from the shard infos in shard order."""
    splits = {name: write_split(root, name, _split_images(a, b), _split_captions(a, b)) for name, (a, b) in cfg.split_ranges().items()}
    manifest = DatasetManifest(
        feature_dim=cfg.feature_dim, feature_dtype=cfg.feature_dtype, max_regions=cfg.max_regions, has_boxes=True,
        shards={IMAGES: [s[0] for s in shards], CAPTIONS: [s[1] for s in shards]}, splits=splits,
        source={"format": "synthetic", "config": to_dict(cfg), "shard_mb": shard_mb, SCENES: SCENES},
    )
    manifest.save(root)
    return manifest


def generate_dataset(
    cfg: SynthConfig, location: Location | str, shard_mb: int = 128, overwrite: bool = False, storage: StorageConfig | None = None,
    executor: Executor | None = None,
) -> DatasetManifest:
    """Generates a whole synthetic dataset: one task per shard on ``executor`` (None: here, one after the
    other; ``teran synth`` passes Ray's), then the splits and, last, ``dataset.json``.

    Example:
        >>> import tempfile
        >>> m = generate_dataset(SynthConfig(images=8, feature_dim=4, group_size=2, test_images=2, dev_images=2), tempfile.mkdtemp())
        >>> m.counts, sorted(m.splits), m.splits["train"].images.rows
        ({'images': 8, 'captions': 40}, ['dev', 'test', 'train'], 4)
    """
    executor = executor or LocalExecutor()
    root = as_location(location, storage)
    prepare_output(root, overwrite)
    count = len(cfg.shard_ranges(shard_mb))
    # retries are safe: a shard is a function of (config, index) alone, written atomically
    handles = [executor.submit(write_synthetic_shard, cfg, root, k, shard_mb) for k in range(count)]
    shards = executor.gather(handles, Progress(logging.getLogger("teran.synth"), "synth", count, "shards", interval_s=10.0))
    return finish_synthetic(cfg, root, shards, shard_mb)
