"""The synthetic set is grounded: word-region alignment finds the image, a bag of objects cannot tell the hard negatives apart."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from teran_core.data import DatasetManifest, collate_images, load_split, read_shard
from teran_core.data.synth import SynthConfig, SyntheticWorld, generate_dataset
from teran_core.data.synth.oracles import bag_of_classes_scores, bag_of_features_scores, retrieval_figures, word_region_scores

CFG = SynthConfig(images=1000, feature_dim=64, test_images=1000, dev_images=0)  # the demo's 1K test split, at a CPU width


def test_word_region_oracle_succeeds_where_bags_of_objects_fail(tmp_path):
    generate_dataset(CFG, str(tmp_path / "synth"))
    manifest = DatasetManifest.load(str(tmp_path / "synth"))
    images = pa.concat_tables([read_shard(manifest, "images", k) for k in range(len(manifest.shards["images"]))])
    captions = pa.concat_tables([read_shard(manifest, "captions", k) for k in range(len(manifest.shards["captions"]))])
    image_ids, caption_ids, caption_image = load_split(str(tmp_path / "synth"), "test")
    assert images.column("image_id").to_pylist() == image_ids and captions.column("caption_id").to_pylist() == caption_ids
    batch = collate_images(images)
    texts = captions.column("text").to_pylist()
    world = SyntheticWorld(CFG.seed, CFG.feature_dim)
    groups = np.array([int(i) // CFG.group_size for i in image_ids])
    figures = {
        scorer.__name__: retrieval_figures(scorer(batch["features"], batch["n_regions"], texts, world), caption_image, groups)
        for scorer in (word_region_scores, bag_of_classes_scores, bag_of_features_scores)
    }
    print("\ngroundedness figures (t2i, 1000 images, 5000 captions):", figures)
    word_region, bag_of_classes, bag_of_features = figures.values()
    assert word_region["R@1"] > 75 and word_region["R@10"] > 95 and word_region["hard_negatives_beaten"] > 99
    assert bag_of_classes["hard_negatives_beaten"] < 1  # identical object sets: it can only tie
    assert bag_of_classes["R@1"] < 100 / CFG.group_size  # at best a random pick among the group
    assert bag_of_features["hard_negatives_beaten"] < 100 / CFG.group_size + 5  # chance: one in group_size
