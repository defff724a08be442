"""Reference-layout folders (COCO, Flickr30K, precomp) round-trip through ``teran convert`` on both stores."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from job_output import printed_json

from jobs import convert as convert_job
from teran_core.data import DatasetManifest, check_dataset, collate_images, load_split, read_shard
from teran_core.data.splits import split_folds
from teran_core.storage import resolve


def read_all(manifest: DatasetManifest, kind: str) -> pa.Table:
    return pa.concat_tables([read_shard(manifest, kind, k) for k in range(len(manifest.shards[kind]))])


def assert_round_trip(out, expected, has_boxes: bool) -> None:
    """Every feature, normalised box, size, caption, id order and fold is what the source holds."""
    manifest = DatasetManifest.load(out)
    assert (manifest.feature_dim, manifest.has_boxes) == (2048, has_boxes)
    images = read_all(manifest, "images")
    batch = collate_images(images)
    assert sorted(batch["image_id"]) == sorted(expected.images)
    for i, image_id in enumerate(batch["image_id"]):
        source = expected.images[image_id]
        n = len(source.features)
        assert batch["n_regions"][i] == n
        np.testing.assert_array_equal(batch["features"][i, :n], source.features)  # float32 storage is exact
        assert not batch["features"][i, n:].any()
        if has_boxes:
            reference = source.boxes / np.tile([source.width, source.height], 2)  # data.py: boxes / tile(img_size, 2)
            np.testing.assert_array_equal(batch["boxes"][i, :n], reference.astype(np.float32))
            assert (images.column("width")[i].as_py(), images.column("height")[i].as_py()) == (source.width, source.height)
        else:
            assert not batch["boxes"].any() and images.column("boxes").null_count == images.num_rows
    captions = read_all(manifest, "captions").to_pylist()
    assert {c["caption_id"]: (c["image_id"], c["text"]) for c in captions} == expected.captions
    for split, (image_ids, caption_ids) in expected.splits.items():
        got_images, got_captions, index = load_split(out, split)
        assert (got_images, got_captions) == (image_ids, caption_ids)
        assert [got_images[k] for k in index] == [expected.captions[c][0] for c in caption_ids]
        assert manifest.splits[split].folds == split_folds(len(image_ids))
    assert check_dataset(out, verify_checksums=True).rejects.num_rows == 0
    assert manifest.rejects == {}


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["coco", "f30k", "precomp"])
def test_convert_job_round_trips_every_value(kind, source_layout, storage_root, ray_session, capsys):
    root, expected = source_layout(kind)
    out = storage_root.join(f"{kind}-dataset")
    argv = [kind, "--root", str(root), "--out", out.uri, "output.shard_mb=1", "ray.num_cpus=2"]  # 1 MB: several shards
    if not out.is_local:
        argv.append(f"storage.endpoint_override={out.storage.endpoint_override}")
    assert convert_job.main(argv) == 0
    summary = printed_json(capsys.readouterr().out)
    assert summary["counts"] == {"images": len(expected.images), "captions": len(expected.captions)}
    assert summary["unreferenced_captions"] == (len(expected.images) if kind == "coco" else 0)  # COCO's 6th captions
    assert len(DatasetManifest.load(out).shards["images"]) == len(expected.images) // 3 + (len(expected.images) % 3 > 0)
    assert_round_trip(out, expected, has_boxes=kind != "precomp")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_source_on_s3_gives_the_same_dataset_as_a_local_source(source_layout, s3_root, tmp_path):
    from teran_core.data.convert import ConvertConfig, convert_dataset

    root, expected = source_layout("precomp")
    s3_source = s3_root.join("precomp-source")
    s3_source.fs.put(str(root), s3_source.path, recursive=True)
    cfg = ConvertConfig(format="precomp", root="unused", images_per_shard=2)
    local, _ = convert_dataset(cfg, resolve(str(root)), resolve(str(tmp_path / "local")))
    remote, _ = convert_dataset(cfg, s3_source, s3_root.join("from-s3"))
    assert [s.sha256 for s in remote.shards["images"]] == [s.sha256 for s in local.shards["images"]]
    assert [s.sha256 for s in remote.shards["captions"]] == [s.sha256 for s in local.shards["captions"]]
    assert_round_trip(s3_root.join("from-s3"), expected, has_boxes=False)
