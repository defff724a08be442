"""What each region of a synthetic image shows, stored beside its images shard (docs/formats.md, "Scenes").

``scenes/scenes-<shard>.parquet`` holds, per image of ``images/images-<shard>.parquet``, one label per
stored region in region order: ``"red car"`` for an object, ``"sky"`` for background. Reports draw
the scene from these labels and the shard's boxes. Datasets written before the scenes existed, and
converted datasets, have none: :func:`read_scene_labels` returns an empty dict for them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from teran_core.data.manifest import DatasetManifest
from teran_core.data.readers import read_parquet
from teran_core.data.schema import IMAGES
from teran_core.data.synth.scene import make_scene
from teran_core.data.synth.spec import SynthConfig, image_id

__all__ = ["SCENES", "SCENE_SCHEMA", "scene_labels_table", "read_scene_labels"]

SCENES = "scenes"
SCENE_SCHEMA = pa.schema([("image_id", pa.string()), ("labels", pa.list_(pa.string()))])


def scene_labels_table(cfg: SynthConfig, start: int, stop: int) -> pa.Table:
    """The region labels of images ``start``..``stop - 1``.

    Example:
        >>> t = scene_labels_table(SynthConfig(images=4, test_images=4, dev_images=0), 0, 2)
        >>> t.column("image_id").to_pylist(), len(t.column("labels")[0].as_py()) == make_scene(SynthConfig(images=4), 0).n_regions
        (['000000000', '000000001'], True)
    """
    scenes = [make_scene(cfg, i) for i in range(start, stop)]
    return pa.table({"image_id": [image_id(s.index) for s in scenes], "labels": [s.labels() for s in scenes]}, schema=SCENE_SCHEMA)


def read_scene_labels(manifest: DatasetManifest, image_ids: Iterable[str]) -> dict[str, list[str]]:
    """Region labels of the given images, for a synthetic dataset that stores them; {} otherwise.

    Example:
        >>> import tempfile
        >>> from teran_core.data.synth.generate import generate_dataset
        >>> m = generate_dataset(SynthConfig(images=8, feature_dim=4, test_images=4, dev_images=0), tempfile.mkdtemp())
        >>> labels = read_scene_labels(m, ["000000005"])
        >>> list(labels), all(isinstance(label, str) for label in labels["000000005"])
        (['000000005'], True)
    """
    folder = manifest.source.get(SCENES)
    if not folder:
        return {}
    wanted, out = set(image_ids), {}
    for info in manifest.shards[IMAGES]:
        name = info.name.replace(IMAGES, SCENES, 1)
        table = read_parquet(manifest.location.join(folder, name), f"scenes file {name}", rows=info.rows)
        for image, labels in zip(table.column("image_id").to_pylist(), table.column("labels").to_pylist()):
            if image in wanted:
                out[image] = labels
    return out
