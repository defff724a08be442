"""Reading embedding sets: manifest first, shards in order, fetch batched by shard, on disk and on S3."""

import json

import numpy as np
import pytest

from teran_core.embedding_set import EmbeddingSet, to_table
from teran_core.index.vectors import token_vectors


@pytest.mark.integration
def test_fetch_returns_the_asked_items_in_order_across_shards_and_row_groups(storage_root, make_side):
    emb, tokens, lengths = make_side(storage_root.join("emb", "images"), "images", [5, 7, 3])
    assert len(emb) == 15 and [s.offset for s in emb.shards] == [0, 5, 12]
    ask = [14, 0, 6, 11, 5, 6, 2]  # out of order, a duplicate, every shard, several row groups
    got = emb.fetch(ask)
    assert got.ids == [f"i{i}" for i in ask]
    assert got.lengths.tolist() == lengths[ask].tolist()
    width = int(lengths[ask].max())
    np.testing.assert_array_equal(got.tokens, tokens[ask, :width])
    assert emb.read_ids() == [f"i{i}" for i in range(15)]
    np.testing.assert_allclose(emb.read_globals(), tokens[:, 0])
    memory = emb.load()
    np.testing.assert_array_equal(memory.fetch(ask).tokens, got.tokens)


def test_fetch_reads_each_shard_once(tmp_path, make_side, monkeypatch):
    from teran_core.storage import resolve

    emb, _, _ = make_side(resolve(str(tmp_path)).join("images"), "images", [6, 6])
    reads = []
    original = EmbeddingSet._take_rows
    monkeypatch.setattr(EmbeddingSet, "_take_rows", lambda self, shard, rows: reads.append(shard.name) or original(self, shard, rows))
    emb.fetch([0, 7, 1, 8, 2, 11])
    assert sorted(reads) == ["images-00000.parquet", "images-00001.parquet"]


def test_open_checks_the_manifest_first(tmp_path, make_side):
    from teran_core.storage import resolve

    side = resolve(str(tmp_path)).join("captions")
    emb, _, _ = make_side(side, "captions", [4])
    with pytest.raises(ValueError, match="kind: got 'captions', expected 'images'"):
        EmbeddingSet.open(side, kind="images")
    manifest = json.loads(side.join("manifest.json").read_text())
    side.join("manifest.json").remove()
    with pytest.raises(FileNotFoundError, match="writes the manifest last, so the embedding set is unfinished"):
        EmbeddingSet.open(side)
    manifest["shards"].append({"name": "captions-00009.parquet", "rows": 2})
    side.join("manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="captions-00009.parquet"):
        EmbeddingSet.open(side)
    manifest["shards"] = manifest["shards"][:1]
    manifest["shards"][0]["rows"] = 3
    side.join("manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="has 4 rows but manifest.json says 3"):
        EmbeddingSet.open(side).read_ids()
    with pytest.raises(IndexError, match="out of range"):
        emb.fetch([4])


def test_token_vectors_take_the_slots_alignment_scores():
    table = to_table(["a", "b"], np.arange(2 * 6 * 2, dtype=np.float32).reshape(2, 6, 2), np.array([6, 5]))
    vectors, rows, slots = token_vectors(table, 1, 2)  # captions: drop [CLS], the last piece and [SEP]
    assert rows.tolist() == [0, 0, 0, 1, 1] and slots.tolist() == [1, 2, 3, 1, 2]
    assert vectors[0].tolist() == [2.0, 3.0]
