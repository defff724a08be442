"""The whole job without Ray: the same stages run in-process, finalisation in a thread pool.

Exactly-once, equality with the model's direct output, resume, refusal of a foreign output,
--overwrite, bad rows and a corrupt shard; on a local folder and on the S3 store.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from encode_helpers import (
    FP16_TOLERANCE,
    TINY,
    assert_exactly_once,
    assert_matches_model,
    direct_sets,
    direct_tokens,
    job_config,
    make_dataset,
    rewrite_shard,
)

from teran_core import TERAN, save_checkpoint
from teran_core.compress.codec import ResidualCodec
from teran_core.data import DataError, read_shard
from teran_core.data.regions import region_arrays
from teran_core.data.schema import images_table
from teran_core.embedding_set import from_table, open_embedding_pair
from teran_core.encode import OutputConflict, run_encode
from teran_core.storage import resolve


@pytest.fixture
def pool():
    with ThreadPoolExecutor(2) as executor:
        yield executor


def encode(cfg, pool):
    return run_encode(cfg, lambda stages: stages.iter_local(), pool.submit)


def modified_times(output, kind):
    side = output.join(kind)
    side.fs.invalidate_cache()
    return {e["name"].rsplit("/", 1)[-1]: e.get("mtime") or e.get("LastModified")
            for e in side.fs.ls(side.path, detail=True) if e["type"] == "file"}


@pytest.mark.integration
def test_output_is_exactly_once_and_equals_the_model(storage_root, tiny_checkpoint, tiny_model, pool):
    dataset = make_dataset(storage_root.join("data"))
    output = storage_root.join("emb")
    summary = encode(job_config(dataset.location, tiny_checkpoint, output), pool)

    assert summary["complete"] and summary["items"] == 24 + 120 and summary["rejected"] == 0
    for kind in ("images", "captions"):
        embedded, rejects = assert_exactly_once(dataset, output, kind)
        assert rejects.num_rows == 0
        assert_matches_model(embedded, direct_tokens(tiny_model, dataset, kind))
        manifest = json.loads(output.join(kind, "manifest.json").read_text())
        assert [s["source"] for s in manifest["shards"]] == [s.name for s in dataset.shards[kind]]
        assert manifest["dim"] == TINY.embed_size and manifest["dtype"] == "float16" and manifest["global_kind"] == "slot0"
    assert summary == json.loads(output.join("summary.json").read_text())
    assert set(summary["encoders"]["images"]) == set(summary["encoders"]["captions"])  # one model served both
    images, captions = open_embedding_pair(output)  # what the index job reads
    assert (len(images), len(captions)) == (24, 120)


@pytest.mark.integration
def test_rerun_skips_finished_shards_and_redoes_the_rest(tmp_path, tiny_checkpoint, pool):
    root = resolve(str(tmp_path))
    dataset = make_dataset(root.join("data"))
    output = root.join("emb")
    cfg = job_config(dataset.location, tiny_checkpoint, output, prepare_batch_size=3)
    encode(cfg, pool)
    before = modified_times(output, "images")
    output.join("images", "_done", "images-00001.json").remove()  # as if killed before that marker

    again = encode(cfg, pool)

    assert again["sides"]["images"]["skipped"] == 2 and again["sides"]["images"]["finished"] == 1
    assert again["sides"]["captions"]["skipped"] == 3 and again["sides"]["captions"]["finished"] == 0
    after = modified_times(output, "images")
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"images-00001.parquet", "manifest.json"}
    assert_exactly_once(dataset, output, "images")


@pytest.mark.integration
def test_another_model_is_refused_until_overwrite(tmp_path, tiny_checkpoint, pool):
    root = resolve(str(tmp_path))
    dataset = make_dataset(root.join("data"), images=8)
    output = root.join("emb")
    encode(job_config(dataset.location, tiny_checkpoint, output), pool)
    other = str(tmp_path / "other-model")
    save_checkpoint(TERAN(TINY), other)

    with pytest.raises(OutputConflict, match="model.checkpoint: was .*, now .*other-model.*output.overwrite=true"):
        encode(job_config(dataset.location, other, output), pool)
    as_float32 = job_config(dataset.location, tiny_checkpoint, output)
    as_float32.output.dtype = "float32"
    with pytest.raises(OutputConflict, match="dtype: was 'float16', now 'float32'"):
        encode(as_float32, pool)

    cfg = job_config(dataset.location, other, output)
    cfg.output.overwrite = True
    redone = encode(cfg, pool)
    assert redone["sides"]["images"]["finished"] == 1 and redone["sides"]["images"]["skipped"] == 0
    assert json.loads(output.join("images", "manifest.json").read_text())["model"]["checkpoint"].endswith("other-model")


def _nan_features(table):
    """Row 2 gets a NaN feature (a bad value, same schema)."""
    counts, features = region_arrays(table.column("features"), 8)
    _, boxes = region_arrays(table.column("boxes"), 4)
    features = features.copy()
    features[counts[:2].sum(), 3] = np.nan
    return images_table(table.column("image_id").to_pylist(), counts, features, boxes, table.column("width").to_pylist(),
                        table.column("height").to_pylist(), feature_dtype="float16")


def _blank_caption(table):
    """Row 4's text becomes whitespace."""
    texts = table.column("text").to_pylist()
    texts[4] = "   "
    return table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))


@pytest.mark.integration
def test_bad_rows_and_a_corrupt_shard_lose_nothing_else(storage_root, tiny_checkpoint, tiny_model, pool):
    dataset = make_dataset(storage_root.join("data"))
    rewrite_shard(dataset, "images", 0, _nan_features)
    rewrite_shard(dataset, "captions", 1, _blank_caption)
    corrupt = dataset.location.join("images", "images-00002.parquet")
    original = corrupt.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF  # same size, footer intact: only the sha256 can tell
    corrupt.write_bytes(bytes(flipped))
    output = storage_root.join("emb")

    summary = encode(job_config(dataset.location, tiny_checkpoint, output), pool)

    assert not summary["complete"]
    assert list(summary["sides"]["images"]["failed"]) == ["images-00002.parquet"]
    assert "sha256" in summary["sides"]["images"]["failed"]["images-00002.parquet"]
    assert summary["sides"]["images"]["finished"] == 2 and summary["sides"]["captions"]["finished"] == 3
    reasons = summary["rejects_by_reason"]
    assert sorted(reasons.values()) == [1, 1]
    assert {"NaN" in r or "empty" in r for r in reasons} == {True}
    assert not output.join("images", "manifest.json").exists()  # the side is unfinished
    captions, caption_rejects = assert_exactly_once(dataset, output, "captions")
    assert caption_rejects.select(["id", "shard", "row"]).to_pylist() == [
        {"id": caption_id(dataset, 1, 4), "shard": "captions-00001.parquet", "row": 4}]
    assert_matches_model(captions, direct_tokens(tiny_model, dataset, "captions"))

    corrupt.write_bytes(original)  # the shard is repaired; the rerun encodes it alone
    fixed = encode(job_config(dataset.location, tiny_checkpoint, output), pool)
    assert fixed["complete"] and fixed["sides"]["images"]["finished"] == 1 and fixed["sides"]["images"]["skipped"] == 2
    images, image_rejects = assert_exactly_once(dataset, output, "images")
    assert image_rejects.select(["shard", "row"]).to_pylist() == [{"shard": "images-00000.parquet", "row": 2}]
    assert images.num_rows == 23
    assert_matches_model(images, direct_tokens(tiny_model, dataset, "images"))


def caption_id(dataset, shard, row):
    return read_shard(dataset, "captions", shard, ["caption_id"]).column(0)[row].as_py()


@pytest.mark.integration
def test_an_unreadable_shard_stops_the_job_before_it_starts(tmp_path, tiny_checkpoint, pool):
    root = resolve(str(tmp_path))
    dataset = make_dataset(root.join("data"), images=16)
    truncated = dataset.location.join("captions", "captions-00001.parquet")
    truncated.write_bytes(truncated.read_bytes()[:100])
    output = root.join("emb")
    with pytest.raises(DataError, match="captions-00001.parquet"):
        encode(job_config(dataset.location, tiny_checkpoint, output), pool)
    assert not output.exists()


def test_a_distilled_checkpoint_writes_its_head_vector_as_global(tmp_path, tiny_checkpoint, tiny_model, pool):
    from teran_core import load_checkpoint
    from teran_core.model.global_head import GlobalHead, GlobalHeadConfig

    distilled = load_checkpoint(tiny_checkpoint).attach_global_head(GlobalHead(GlobalHeadConfig(layers=1, heads=2), TINY.embed_size).eval())
    save_checkpoint(distilled, str(tmp_path / "distilled"))
    dataset = make_dataset(resolve(str(tmp_path / "data")))
    output = resolve(str(tmp_path / "distilled-embeddings"))
    assert encode(job_config(dataset.location, str(tmp_path / "distilled"), output), pool)["complete"]
    for side in ("images", "captions"):
        assert json.loads(output.join(side, "manifest.json").read_text())["global_kind"] == "distilled"
        embedded, _ = assert_exactly_once(dataset, output, side)
        assert_matches_model(embedded, direct_tokens(distilled, dataset, side))  # global = slot 0 = the head's vector
        plain = direct_tokens(tiny_model, dataset, side)
        headed = direct_tokens(distilled, dataset, side)
        for item_id, tokens in plain.items():  # every other slot, which alignment reads, is TERAN's own
            np.testing.assert_array_equal(headed[item_id][1:], tokens[1:])
            assert not np.allclose(headed[item_id][0], tokens[0])


def test_a_prototype_head_writes_its_wider_vectors_as_global_and_they_index_and_compress(tmp_path, tiny_checkpoint, tiny_model, pool):
    from teran_core import load_checkpoint
    from teran_core.compress.store import compress_table, decompress_table
    from teran_core.embedding_set import EmbeddingSet
    from teran_core.index.build import build_part
    from teran_core.index.factory import choose_index
    from teran_core.index.layout import PartSpec
    from teran_core.index.search import ShardedIndex
    from teran_core.model.global_head import GlobalHeadConfig, build_global_head

    head = build_global_head(GlobalHeadConfig(kind="prototypes", prototypes=24), TINY.embed_size).eval()
    distilled = load_checkpoint(tiny_checkpoint).attach_global_head(head)
    save_checkpoint(distilled, str(tmp_path / "distilled"))
    dataset = make_dataset(resolve(str(tmp_path / "data")))
    output = resolve(str(tmp_path / "emb"))
    assert encode(job_config(dataset.location, str(tmp_path / "distilled"), output), pool)["complete"]
    side = EmbeddingSet.open(output.join("images"))
    assert (side.manifest["global_kind"], side.dim, side.global_dim) == ("distilled", TINY.embed_size, 24)
    embedded, _ = assert_exactly_once(dataset, output, "images")
    plain = direct_tokens(tiny_model, dataset, "images")
    stored = from_table(embedded)
    for i, item_id in enumerate(stored.ids):  # every slot, slot 0 included, is TERAN's own
        np.testing.assert_allclose(stored.tokens[i, : stored.lengths[i]], plain[item_id], atol=FP16_TOLERANCE)
    want = {i: g.numpy() for ids, items in direct_sets(distilled, dataset, "images") for i, g in zip(ids, items.globals)}
    np.testing.assert_allclose(stored.global_vectors, np.stack([want[i] for i in stored.ids]), atol=FP16_TOLERANCE)
    assert stored.global_vectors.shape == (len(stored), 24)

    part = build_part(side, PartSpec("images", "global"), choose_index(len(side), 24, 2**20), output.join("index", "images-global"))
    assert part["dim"] == 24
    first = side.fetch([3])
    _, found = ShardedIndex.open(output.join("index", "images-global")).search(first.global_vectors, k=1)
    assert found.tolist() == [[3]]

    codec = ResidualCodec(np.eye(TINY.embed_size, dtype=np.float32), 1, np.array([-0.1, 0.0, 0.1]))
    round_trip = from_table(decompress_table(compress_table(embedded, codec), codec))
    np.testing.assert_allclose(round_trip.global_vectors, stored.global_vectors, atol=FP16_TOLERANCE)
    assert not round_trip.tokens[:, 0].any()  # slot 0 is not stored compressed, and no alignment mode reads it
