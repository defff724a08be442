"""Sharded indexes return the same top-k as one unsharded index over the same vectors."""

import faiss
import numpy as np
import pytest

from teran_core.index.build import build_part, training_sample
from teran_core.index.factory import choose_index
from teran_core.index.idmap import pack_token_ids, token_owners
from teran_core.index.layout import PartSpec, read_faiss
from teran_core.index.search import ShardedIndex, merge_topk
from teran_core.storage import resolve

BUDGET = 2**30


def flat_top_k(vectors, ids, queries, k):
    flat = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
    flat.add_with_ids(vectors, ids)
    return flat.search(queries, k)


def region_vectors(tokens, lengths):
    valid = (np.arange(tokens.shape[1])[None, :] >= 1) & (np.arange(tokens.shape[1])[None, :] < lengths[:, None])
    items, slots = np.nonzero(valid)
    return tokens[items, slots], pack_token_ids(items, slots)


@pytest.fixture
def images(tmp_path, make_side):
    return make_side(resolve(str(tmp_path)).join("emb", "images"), "images", [9, 14, 5], dim=8, max_len=6)


def test_sharded_flat_global_index_equals_one_flat_index(images, tmp_path):
    emb, tokens, _ = images
    part = build_part(emb, PartSpec("images", "global"), choose_index(len(emb), 8, BUDGET), resolve(str(tmp_path / "idx")))
    assert part["factory"] == "Flat" and [s["ntotal"] for s in part["shards"]] == [9, 14, 5]
    index = ShardedIndex.open(resolve(str(tmp_path / "idx")))
    queries = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    for k in (1, 7, 40):  # 40 > 28 items: padded with -1 like FAISS
        got_scores, got_ids = index.search(queries, k)
        want_scores, want_ids = flat_top_k(tokens[:, 0], np.arange(28), queries, k)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores[got_ids >= 0], want_scores[want_ids >= 0], rtol=1e-6)


def test_sharded_region_index_equals_one_flat_index_and_names_owners(images, tmp_path):
    emb, tokens, lengths = images
    root = resolve(str(tmp_path / "regions"))
    build_part(emb, PartSpec("images", "tokens"), choose_index(int((lengths - 1).sum()), 8, BUDGET), root)
    vectors, ids = region_vectors(tokens, lengths)
    queries = vectors[[0, 17, 40]] + 0.01
    got_scores, got_ids = ShardedIndex.open(root).search(queries, 5)
    want_scores, want_ids = flat_top_k(vectors, ids, queries, 5)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    assert token_owners(got_ids[:, 0]).tolist() == token_owners(ids[[0, 17, 40]]).tolist()


def test_ivf_shards_share_the_trained_quantizer(tmp_path, make_side):
    emb, tokens, _ = make_side(resolve(str(tmp_path)).join("images"), "images", [150, 120, 130], dim=8)
    root = resolve(str(tmp_path / "ivf"))
    choice = choose_index(len(emb), 8, BUDGET, factory="IVF8,Flat")
    part = build_part(emb, PartSpec("images", "global"), choice, root)
    assert part["nprobe"] == 8 and part["train"]["points"] == 400
    queries = tokens[:20, 0] + 0.05
    sharded = ShardedIndex.open(root)
    # all lists probed: exactly the flat result
    np.testing.assert_array_equal(sharded.search(queries, 10)[1], flat_top_k(tokens[:, 0], np.arange(400), queries, 10)[1])
    # one list probed: exactly one unsharded index cloned from the same trained quantizer
    sharded.nprobe = 1
    single = faiss.clone_index(read_faiss(root.join("trained.faiss")))
    single.add_with_ids(tokens[:, 0], np.arange(400))
    single.nprobe = 1
    np.testing.assert_array_equal(sharded.search(queries, 10)[1], single.search(queries, 10)[1])


def test_a_top_k_beyond_what_nprobe_lists_hold_probes_more_lists_and_comes_back_full(tmp_path, make_side):
    emb, tokens, _ = make_side(resolve(str(tmp_path)).join("images"), "images", [150, 120, 130], dim=8)
    root = resolve(str(tmp_path / "ivf"))
    build_part(emb, PartSpec("images", "global"), choose_index(len(emb), 8, BUDGET, factory="IVF8,Flat"), root)
    sharded = ShardedIndex.open(root)
    sharded.nprobe = 1  # 50 vectors a list on average: one list cannot hold a top 120
    queries = tokens[:20, 0] + 0.05
    _, ids = sharded.search(queries, 120)
    assert sharded.probes(120) == 5 and (ids >= 0).all()  # lists for 2 x 120 vectors
    single = faiss.clone_index(read_faiss(root.join("trained.faiss")))
    single.add_with_ids(tokens[:, 0], np.arange(400))
    single.nprobe = 5
    np.testing.assert_array_equal(ids, single.search(queries, 120)[1])


def test_opq_pq_shards_rank_as_one_unsharded_index(tmp_path, make_side):
    # the coarse lists must be chosen on the OPQ-rotated queries, as the unsharded index chooses them
    emb, tokens, _ = make_side(resolve(str(tmp_path)).join("images"), "images", [150, 120, 130], dim=8)
    root = resolve(str(tmp_path / "opq"))
    build_part(emb, PartSpec("images", "global"), choose_index(len(emb), 8, BUDGET, factory="OPQ4_8,IVF8,PQ4x4"), root)
    queries = tokens[:20, 0] + 0.05
    sharded = ShardedIndex.open(root)
    sharded.nprobe = 2
    single = faiss.clone_index(read_faiss(root.join("trained.faiss")))
    single.add_with_ids(tokens[:, 0], np.arange(400))
    faiss.extract_index_ivf(single).nprobe = 2
    got_scores, got_ids = sharded.search(queries, 10)
    want_scores, want_ids = single.search(queries, 10)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5)
    np.testing.assert_array_equal(got_ids[:, 0], want_ids[:, 0])


@pytest.mark.integration
def test_index_round_trips_through_storage(storage_root, make_side):
    emb, tokens, _ = make_side(storage_root.join("emb", "images"), "images", [10, 10], dim=8)
    build_part(emb, PartSpec("images", "global"), choose_index(20, 8, BUDGET, factory="HNSW8"), storage_root.join("idx"))
    ids = ShardedIndex.open(storage_root.join("idx")).search(tokens[:3, 0], 4)[1]
    assert ids[:, 0].tolist() == [0, 1, 2]
    if storage_root.is_local:  # memory-mapped and fully read indexes answer alike
        np.testing.assert_array_equal(ShardedIndex.open(storage_root.join("idx"), mmap=False).search(tokens[:3, 0], 4)[1], ids)


def test_unnormalised_embeddings_are_rejected_with_shard_and_row(tmp_path, make_side):
    import pyarrow.parquet as pq

    from teran_core.embedding_set import EmbeddingSet, to_table

    emb, tokens, lengths = make_side(resolve(str(tmp_path)).join("images"), "images", [4, 3], dim=8)
    tokens[5, 2] *= 2.0  # shard 1, row 1, region slot 2
    with resolve(str(tmp_path)).join("images", "images-00001.parquet").atomic_write() as f:
        pq.write_table(to_table(["i4", "i5", "i6"], tokens[4:], lengths[4:]), f)
    emb = EmbeddingSet.open(resolve(str(tmp_path)).join("images"))
    with pytest.raises(ValueError, match=r"images-00001.parquet: row 1 has norm 2\.00.* must be L2-normalised"):
        build_part(emb, PartSpec("images", "tokens"), choose_index(40, 8, BUDGET), resolve(str(tmp_path / "x")))
    with pytest.raises(ValueError, match="not a valid FAISS index_factory string"):
        build_part(emb, PartSpec("images", "global"), choose_index(4, 8, BUDGET, factory="IVF4,Nonsense"), resolve(str(tmp_path / "x")))


def test_training_sample_draws_whole_items(images):
    emb, _, lengths = images
    sample = training_sample(emb, PartSpec("images", "tokens"), 30, seed=3)
    assert sample.shape == (30, 8)
    assert np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-2)


def test_merge_topk_puts_empty_results_last():
    a = (np.array([[0.3, -3.4e38]], np.float32), np.array([[4, -1]]))
    b = (np.array([[0.7, 0.1]], np.float32), np.array([[9, 2]]))
    scores, ids = merge_topk([a, b], 4)
    assert ids.tolist() == [[9, 4, 2, -1]]
