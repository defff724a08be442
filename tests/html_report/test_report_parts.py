"""The report's parts without a browser: scene labels in the synthetic dataset, the model header, the example picker."""

import base64
import io
import json
import os

import numpy as np
from PIL import Image

from teran_core.data.manifest import DatasetManifest
from teran_core.data.synth import SynthConfig, generate_dataset, make_scene
from teran_core.data.synth.labels import read_scene_labels
from teran_core.html_report.examples import pick_examples
from teran_core.html_report.identity import describe_model, model_identity
from teran_core.html_report.render import picture_loader
from teran_core.html_report.scenes import THUMBNAIL_PX, dataset_metadata, scene_shapes
from teran_core.storage import resolve


def test_scene_labels_match_the_stored_regions_and_old_datasets_stay_readable(tmp_path):
    cfg = SynthConfig(images=12, feature_dim=4, group_size=2, test_images=4, dev_images=2, images_per_shard=5)
    manifest = generate_dataset(cfg, str(tmp_path))
    ids = [f"{i:09d}" for i in (0, 7, 11)]  # three shards
    meta = dataset_metadata(manifest.location, ids, [])
    for i, image in zip((0, 7, 11), ids):
        scene = make_scene(cfg, i)
        kinds, _, _, boxes = scene.regions()
        labels = meta["images"][image]["labels"]
        assert labels == scene.labels() and len(labels) == len(meta["images"][image]["boxes"])
        np.testing.assert_allclose(meta["images"][image]["boxes"], boxes, atol=1e-4)
        assert [" " in label for label in labels] == (kinds == 0).tolist()  # "red car" objects, "sky" background
    # a dataset written before scenes existed: no labels, boxes drawn unfilled
    data = json.loads(manifest.location.join("dataset.json").read_text())
    del data["source"]["scenes"]
    manifest.location.join("dataset.json").write_text(json.dumps(data))
    old = DatasetManifest.load(str(tmp_path))
    assert read_scene_labels(old, ids) == {}
    image = dataset_metadata(old.location, ids[:1], [])["images"][ids[0]]
    assert image["labels"] is None and {r["fill"] for r in scene_shapes(image)["regions"]} == {"none"}


def test_the_model_is_named_by_uri_and_content_fingerprint(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights-a")
    record = {"checkpoint": str(folder), "format": "teran", "files": {"config.json": [2, "t1"], "model.safetensors": [9, "t1"]}}
    first = model_identity(record)
    assert first["checkpoint"] == resolve(str(folder)).uri and not first["changed"]
    os.utime(folder / "model.safetensors", (1, 1))  # a new modification time alone changes nothing
    assert model_identity(record)["fingerprint"] == first["fingerprint"]
    (folder / "model.safetensors").write_bytes(b"weights-b")  # same size, other bytes
    assert model_identity(record)["fingerprint"] != first["fingerprint"]
    (folder / "model.safetensors").write_bytes(b"weights-longer")
    assert "replaced since the embeddings were made" in describe_model(model_identity(record))
    assert describe_model(None).startswith("unknown")


def test_examples_are_half_failures_when_there_are_enough():
    ranks = np.array([0.0] * 30 + [4.0] * 3 + [np.inf] * 2)
    chosen = pick_examples(ranks, 12, seed=1)
    assert len(chosen) == len(set(chosen)) == 12 and (ranks[chosen] > 0).sum() == 5  # every failure there is
    chosen = pick_examples(np.array([3.0] * 20 + [0.0] * 20), 12, seed=1)
    assert (np.array([3.0] * 20 + [0.0] * 20)[chosen] > 0).sum() == 6
    successes = lambda seed: pick_examples(ranks, 12, seed)[ranks[pick_examples(ranks, 12, seed)] == 0].tolist()
    assert successes(1) == successes(1) and successes(1) != successes(2)  # seeded: the same page for the same seed


def test_converted_images_are_drawn_over_their_picture_thumbnail(tmp_path):
    (tmp_path / "val2014").mkdir()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    load = picture_loader(resolve(str(tmp_path)), "val2014/COCO_val2014_{image_id:0>12}.jpg")
    uri = load("42")
    assert uri.startswith("data:image/jpeg;base64,")
    thumbnail = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert thumbnail.size == (THUMBNAIL_PX, THUMBNAIL_PX * 3 // 4)
    assert picture_loader(None, "{image_id}.jpg") is None
