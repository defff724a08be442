"""Caption-indexed training pairs: every caption of the split exactly once, with its own image."""

import numpy as np
import pyarrow as pa

from teran_core.data import CaptionCollator, DatasetManifest, load_split, read_shard
from teran_core.train.pairs import CaptionIndex, PairBuilder, collate_pairs, select_rows


def test_every_train_caption_is_paired_once_with_its_image(tiny_dataset):
    manifest = DatasetManifest.load(tiny_dataset)
    index = CaptionIndex.build(manifest, "train", CaptionCollator())
    image_ids, caption_ids, caption_image = load_split(tiny_dataset, "train")
    builder = PairBuilder(index)
    pairs = pa.concat_tables([builder(read_shard(manifest, "images", i)) for i in range(len(manifest.shards["images"]))])
    assert sorted(pairs.column("caption_id").to_pylist()) == sorted(caption_ids)
    expected_image = {c: image_ids[k] for c, k in zip(caption_ids, caption_image)}
    assert all(expected_image[c] == i for c, i in zip(pairs.column("caption_id").to_pylist(),
                                                      pairs.column("image_id").to_pylist()))
    captions = select_rows(manifest, "captions", caption_ids[:3], ["caption_id", "text"])
    direct = CaptionCollator()(captions.append_column("image_id", pa.array(["x"] * 3)))
    paired = {c: ids for c, ids in zip(pairs.column("caption_id").to_pylist(), pairs.column("input_ids").to_pylist())}
    for c, ids, n in zip(direct["caption_id"], direct["input_ids"], direct["lengths"]):
        assert paired[c] == ids[:n].tolist()


def test_collate_pairs_pads_both_sides(tiny_dataset):
    manifest = DatasetManifest.load(tiny_dataset)
    index = CaptionIndex.build(manifest, "train", CaptionCollator())
    batch = collate_pairs(PairBuilder(index)(read_shard(manifest, "images", 0)).slice(0, 7))
    b, r, f = batch["features"].shape
    assert (b, f) == (7, 16) and batch["boxes"].shape == (7, r, 4)
    assert batch["input_ids"].shape == (7, batch["lengths"].max())
    assert (batch["input_ids"][:, 0] == 101).all()
    assert all(batch["input_ids"][i, n - 1] == 102 and (batch["input_ids"][i, n:] == 0).all()
               for i, n in enumerate(batch["lengths"]))
    assert np.array_equal(batch["n_regions"], (np.abs(batch["features"]).sum(2) > 0).sum(1))
