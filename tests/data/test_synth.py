"""The synthetic world: real single-WordPiece words, deterministic shards, grounded captions, true hard negatives."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pytest

from teran_core.data import collate_images
from teran_core.data.synth import SynthConfig, SyntheticWorld, describe, generate_shard, make_scene
from teran_core.data.synth.scene import GRID_COLUMNS, GRID_ROWS
from teran_core.data.synth.vocabulary import ATTRIBUTE_FAMILIES, ATTRIBUTES, BACKGROUNDS, OBJECTS
from teran_core.data.tokenizer import load_tokenizer

CFG = SynthConfig(images=400, feature_dim=32, test_images=200, dev_images=0, images_per_shard=150, feature_dtype="float32")


def test_vocabulary_is_real_single_wordpiece_english():
    assert len(set(OBJECTS)) == len(OBJECTS) >= 60
    assert len(set(ATTRIBUTES)) == len(ATTRIBUTES) >= 12 and set(ATTRIBUTE_FAMILIES) == {"colour", "size", "material"}
    assert not set(OBJECTS) & set(ATTRIBUTES) and not set(OBJECTS) & set(BACKGROUNDS)
    tokenizer = load_tokenizer()
    for word in OBJECTS + ATTRIBUTES + BACKGROUNDS:
        assert tokenizer.tokenize(word) == [word], word


def shard_tables(cfg, shard):
    images, captions = zip(*generate_shard(cfg, shard))
    return pa.concat_tables(images), pa.concat_tables(captions)


def test_shards_are_a_pure_function_of_seed_and_index():
    first = shard_tables(CFG, 1)
    assert all(a.equals(b) for a, b in zip(first, shard_tables(CFG, 1)))
    regrouped = dataclasses.replace(CFG, images_per_shard=100)  # image 150..299 now sit in shards 1 and 2
    images = pa.concat_tables([shard_tables(regrouped, 1)[0], shard_tables(regrouped, 2)[0]]).slice(50, 150)
    assert images.equals(first[0])
    other = shard_tables(dataclasses.replace(CFG, seed=1), 1)
    assert not other[0].column("features").equals(first[0].column("features"))
    assert other[1].column("text") != first[1].column("text")


def test_features_are_prototypes_plus_noise():
    world = SyntheticWorld(CFG.seed, CFG.feature_dim)
    images, _ = shard_tables(CFG, 0)
    batch = collate_images(images.slice(0, 20))
    residuals = []
    for i in range(20):
        kinds, classes, attributes, boxes = make_scene(CFG, i).regions()
        n = len(kinds)
        residuals.append(batch["features"][i, :n] - world.region_prototypes(kinds, classes, attributes))
        np.testing.assert_allclose(batch["boxes"][i, :n], boxes, rtol=1e-6)
    assert abs(np.concatenate(residuals).std() - CFG.noise) < 0.03


def test_scenes_respect_the_layout_rules():
    scenes = [make_scene(CFG, i) for i in range(CFG.images)]
    objects = [len(s.objects) for s in scenes]
    regions = [s.n_regions for s in scenes]
    assert min(objects) >= max(CFG.min_objects, CFG.group_size) and max(objects) <= CFG.max_objects
    assert max(regions) == 36 and min(regions) < 36 and all(r > o for r, o in zip(regions, objects))
    for s in scenes:
        assert len(set(s.cells)) == len(s.cells) and len(set(s.attributes)) == len(s.attributes)
        rows, cols = np.divmod(s.cells, GRID_COLUMNS)
        b = s.object_boxes
        assert (b[:, 0] >= cols / GRID_COLUMNS - 1e-9).all() and (b[:, 2] <= (cols + 1) / GRID_COLUMNS + 1e-9).all()
        assert (b[:, 1] >= rows / GRID_ROWS - 1e-9).all() and (b[:, 3] <= (rows + 1) / GRID_ROWS + 1e-9).all()
        assert ((s.background_boxes >= 0) & (s.background_boxes <= 1)).all()


def holds(relation: str, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether box a lies <relation> box b, from the geometry alone."""
    return {
        "to the left of": a[2] <= b[0], "to the right of": a[0] >= b[2], "above": a[3] <= b[1], "below": a[1] >= b[3],
        "next to": (a[2] <= b[0] or a[0] >= b[2]) and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 < 1 / GRID_ROWS,
    }[relation]


def test_captions_describe_their_image():
    mention_counts, templates = set(), set()
    for i in range(CFG.images):
        scene = make_scene(CFG, i)
        in_image = {OBJECTS[o]: ATTRIBUTES[a] for o, a in zip(scene.objects, scene.attributes)}
        for caption in describe(scene, CFG.seed):
            words = re.findall(r"[a-z]+", caption.text.lower())
            named = [w for w in words if w in OBJECTS]
            assert set(named) <= set(in_image), caption.text  # only objects the image has
            for k in caption.mentions:
                attribute, noun = scene.describe_object(k)
                assert f"{attribute} {noun}" in caption.text.lower()
            for j, w in enumerate(words):  # an attribute word always belongs to the object it precedes
                if w in ATTRIBUTES and j + 1 < len(words) and words[j + 1] in OBJECTS:
                    assert in_image[words[j + 1]] == w, caption.text
            for a, relation, b in caption.relations:
                assert relation in caption.text and holds(relation, scene.object_boxes[a], scene.object_boxes[b]), caption.text
            mention_counts.add(len(caption.mentions))
            templates.add(re.sub("|".join(OBJECTS + ATTRIBUTES), "_", caption.text.lower()).split(" _")[0])
    assert mention_counts == {1, 2, 3} and len(templates) >= 8


@pytest.mark.parametrize("group_size", [2, 4, 7])
def test_groups_share_objects_but_bind_attributes_differently(group_size):
    cfg = dataclasses.replace(CFG, group_size=group_size, test_images=0, images=70)
    for group in range(3):
        members = [make_scene(cfg, group * group_size + m) for m in range(group_size)]
        first = members[0]
        for other in members[1:]:
            assert (other.objects == first.objects).all() and other.n_regions == first.n_regions
            assert sorted(other.attributes) == sorted(first.attributes) and sorted(other.backgrounds) == sorted(first.backgrounds)
        bindings = np.stack([m.attributes for m in members])  # (group, objects)
        assert all(len(set(bindings[:, k])) == group_size for k in range(bindings.shape[1]))  # no object keeps its attribute


def test_config_checks():
    from teran_core.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as err:
        from_dict(SynthConfig, {"images": 10, "test_images": 6, "dev_images": 6, "group_size": 4, "max_objects": 3})
    text = str(err.value)
    assert "group_size: got 4, expected at most max_objects (3)" in text
    assert "test_images + dev_images: got 6 + 6, expected at most images (10)" in text
    assert "test_images: got 6, expected a multiple of group_size (4)" in text
