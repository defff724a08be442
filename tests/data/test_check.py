"""The dataset as a whole: manifest first, duplicate ids, orphan captions, corrupt shards and missing split files."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from teran_core.data import DataError, DatasetManifest, check_dataset, iter_shard_batches, load_split, read_shard
from teran_core.data.schema import CAPTION_SCHEMA, captions_table, image_schema
from teran_core.data.synth import SynthConfig, generate_dataset
from teran_core.data.writer import write_parquet

TINY = SynthConfig(images=8, feature_dim=4, group_size=2, test_images=2, dev_images=2, images_per_shard=4)


@pytest.fixture
def dataset(storage_root):
    root = storage_root.join("ds")
    generate_dataset(TINY, root)
    return root


def add_shard(root, kind, table, schema):
    """Appends a shard to the dataset and its manifest (what a buggy writer could have produced)."""
    manifest = DatasetManifest.load(root)
    name = f"{kind}-{len(manifest.shards[kind]):05d}.parquet"
    manifest.shards[kind].append(write_parquet(root.join(kind, name), table, schema))
    manifest.save(root)
    return name


def test_a_clean_dataset_has_no_rejects_and_streams_every_row(dataset):
    check = check_dataset(dataset, verify_checksums=True)
    assert check.rejects.num_rows == 0 and check.manifest.counts == {"images": 8, "captions": 40}
    batches = list(iter_shard_batches(check.manifest, "images", batch_size=3, columns=["image_id"]))
    assert [(b.shard, b.first_row, b.table.num_rows) for b in batches] == [
        ("images-00000.parquet", 0, 3), ("images-00000.parquet", 3, 1), ("images-00001.parquet", 0, 3), ("images-00001.parquet", 3, 1)]


def test_duplicates_and_orphans_are_rejected_at_their_later_row(tmp_path):
    root = tmp_path / "ds"
    manifest = generate_dataset(TINY, str(root))
    copied = read_shard(manifest, "images", 0).slice(1, 2)
    name = add_shard(manifest.location, "images", copied, image_schema(4, "float16"))
    extra = captions_table(["000000000-0", "lonely-0"], ["000000000", "no-such-image"], ["A red car.", "A blue cup."])
    caption_shard = add_shard(manifest.location, "captions", extra, CAPTION_SCHEMA)
    check = check_dataset(str(root))
    assert check.rejects.to_pylist() == [
        {"id": "000000000-0", "shard": caption_shard, "row": 0, "reason": "duplicate caption_id '000000000-0'; first seen in captions-00000.parquet row 0"},
        {"id": "lonely-0", "shard": caption_shard, "row": 1, "reason": "caption of image 'no-such-image', which is in no images shard"},
        {"id": "000000001", "shard": name, "row": 0, "reason": "duplicate image_id '000000001'; first seen in images-00000.parquet row 1"},
        {"id": "000000002", "shard": name, "row": 1, "reason": "duplicate image_id '000000002'; first seen in images-00000.parquet row 2"},
    ]
    assert check.known(name) == {0: "duplicate image_id '000000001'; first seen in images-00000.parquet row 1",
                                 1: "duplicate image_id '000000002'; first seen in images-00000.parquet row 2"}


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_corrupt_or_truncated_shard_stops_naming_it(dataset, damage):
    shard = dataset.join("images", "images-00001.parquet")
    data = shard.read_bytes()
    shard.write_bytes(b"not parquet at all" * 10 if damage == "corrupt" else data[: len(data) // 2])
    manifest = DatasetManifest.load(dataset)
    pattern = r"images shard images-00001.parquet \(.*images-00001.parquet\) is corrupt or truncated"
    with pytest.raises(DataError, match=pattern):
        check_dataset(dataset)
    with pytest.raises(DataError, match=pattern):
        read_shard(manifest, "images", "images-00001.parquet")
    with pytest.raises(DataError, match=pattern):
        list(iter_shard_batches(manifest, "images"))


def test_shard_that_differs_from_the_manifest_stops(tmp_path):
    root = tmp_path / "ds"
    manifest = generate_dataset(TINY, str(root))
    generate_dataset(dataclasses.replace(TINY, seed=9), str(tmp_path / "other"))
    (root / "images" / "images-00000.parquet").write_bytes((tmp_path / "other" / "images" / "images-00000.parquet").read_bytes())
    assert check_dataset(str(root)).rejects.num_rows == 0  # same ids: only the checksum can tell
    with pytest.raises(DataError, match=r"images shard images-00000.parquet .* does not match the sha256 in dataset.json"):
        check_dataset(str(root), verify_checksums=True)
    manifest.shards["images"][0] = dataclasses.replace(manifest.shards["images"][0], rows=3)
    manifest.save(str(root))
    with pytest.raises(DataError, match=r"images-00000.parquet .* has 4 rows, dataset.json says 3"):
        read_shard(DatasetManifest.load(str(root)), "images", 0)


def test_missing_split_file_or_split_id_stops(dataset):
    dataset.join("splits", "dev-images.parquet").remove()
    with pytest.raises(DataError, match=r"split file dev-images.parquet \(.*\) is listed in dataset.json but does not exist"):
        check_dataset(dataset)
    with pytest.raises(DataError, match=r"split file dev-images.parquet"):
        load_split(dataset, "dev")
    with pytest.raises(DataError, match=r"has no split 'val'; its splits are \['dev', 'test', 'train'\]"):
        load_split(dataset, "val")
    manifest = DatasetManifest.load(dataset)
    ghost = write_parquet(dataset.join("splits", "dev-images.parquet"), pa.table({"image_id": ["ghost"]}), pa.schema([("image_id", pa.string())]))
    manifest.splits["dev"] = dataclasses.replace(manifest.splits["dev"], images=ghost)
    manifest.save(dataset)
    with pytest.raises(DataError, match=r"split file dev-images.parquet row 0: image_id ghost is not in any images shard"):
        check_dataset(dataset)
    with pytest.raises(DataError, match=r"caption 000000002-0 belongs to image 000000002, which is not in dev-images.parquet"):
        load_split(dataset, "dev")


def test_manifest_is_read_first(storage_root):
    with pytest.raises(FileNotFoundError) as err:
        DatasetManifest.load(storage_root)
    message = str(err.value)
    assert f"{storage_root.join('dataset.json').uri} does not exist" in message
    assert f"the synth or convert job with output.uri={storage_root.uri}" in message
    generate_dataset(TINY, storage_root)
    data = json.loads(storage_root.join("dataset.json").read_text())
    storage_root.join("dataset.json").write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(DataError, match=r"has format_version 99, this teran reads version 1"):
        DatasetManifest.load(storage_root)
    storage_root.join("dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"is not a valid teran dataset manifest \(JSONDecodeError"):
        DatasetManifest.load(storage_root)


def test_folds_are_consecutive_blocks_of_the_test_order(tmp_path):
    manifest = generate_dataset(SynthConfig(images=2000, feature_dim=4, test_images=2000, dev_images=0, max_regions=12,
                                            max_objects=4, min_objects=3), str(tmp_path / "ds"))
    assert manifest.splits["test"].folds == [[0, 1000], [1000, 2000]]
    images, captions, index = load_split(str(tmp_path / "ds"), "test")
    assert images[1000] == "000001000" and index[5000] == 1000 and captions[5000] == "000001000-0"
