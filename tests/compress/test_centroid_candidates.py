"""The centroids stage-one source over a compressed embedding set and its centroid -> items lists (no Ray)."""

import numpy as np
import pytest

from teran_core.compress.run import CompressSection, compress
from teran_core.config import ConfigError, from_dict
from teran_core.embedding_set import EmbeddingSet
from teran_core.index.catalog import TeranIndex
from teran_core.index.config import IndexSection
from teran_core.index.run import build_index
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever
from teran_core.storage import resolve

SPEC = GroundedSpec(images=60, dim=32, regions=8, words=(3, 6), concepts=20, images_per_shard=25)
N_IMAGES, N_CAPTIONS = 60, 300
PARTS = ["images-global", "captions-global", "images-centroids", "captions-centroids"]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = resolve(str(tmp_path_factory.mktemp("centroids")))
    write_grounded_embeddings(root.join("fp16"), SPEC)
    compress(root.join("fp16"), root.join("res"), CompressSection(nbits=2))
    build_index(root.join("res"), root.join("index"), IndexSection(parts=PARTS))
    return TeranIndex.open(root.join("index"))


def queries(index, side, n):
    return index.embeddings(side).fetch(np.arange(n))


@pytest.mark.parametrize("query_side,n_items", [("captions", N_IMAGES), ("images", N_CAPTIONS)])
def test_probing_every_centroid_without_pruning_returns_every_item(index, query_side, n_items):
    lists = index.part(f"{'images' if query_side == 'captions' else 'captions'}-centroids")
    config = TwoStageConfig(k_candidates=n_items, i2t_k_factor=1.0, t2i_candidates="centroids", i2t_candidates="centroids",
                            ncells=lists.n_centroids, centroid_score_threshold=-1, ndocs=n_items)
    retriever = TwoStageRetriever.over(index, config)
    batch = queries(index, query_side, 4)
    for cands in retriever.candidates(query_side, batch.tokens, batch.lengths):
        assert sorted(cands.tolist()) == list(range(n_items))


def test_centroid_candidates_rank_the_true_image_near_the_top(index):
    retriever = TwoStageRetriever.over(index, TwoStageConfig(k_candidates=10, t2i_candidates="centroids"))
    assert retriever.centroid_settings("captions") == (1, 0.5, 256)  # PLAID's defaults for K' <= 10
    batch = queries(index, "captions", 50)
    cands = retriever.candidates("captions", batch.tokens, batch.lengths)
    assert all(len(c) <= 10 for c in cands)
    owner = np.arange(50) // SPEC.captions_per_image
    found = np.mean([o in c for o, c in zip(owner, cands)])
    assert found >= 0.6, found  # 10 of 60 images by chance would find 1 in 6


def test_union_with_centroids_joins_the_global_candidates(index):
    config = TwoStageConfig(k_candidates=5, t2i_candidates="union", union_with="centroids")
    batch = queries(index, "captions", 8)
    union = TwoStageRetriever.over(index, config).candidates("captions", batch.tokens, batch.lengths)
    alone = {source: TwoStageRetriever.over(index, TwoStageConfig(k_candidates=5, t2i_candidates=source)).candidates("captions", batch.tokens, batch.lengths)
             for source in ("global", "centroids")}
    for q in range(8):
        assert set(union[q]) == set(alone["global"][q]) | set(alone["centroids"][q])


def test_two_stage_search_runs_on_the_compressed_store(index):
    ranked = TwoStageRetriever.over(index, TwoStageConfig(k_candidates=20, t2i_candidates="centroids")).search("captions", queries(index, "captions", 10), k=5)
    assert ranked.items.shape == (10, 5) and np.all(ranked.items >= 0) and np.all(np.isfinite(ranked.scores))
    assert np.all(np.diff(ranked.scores, axis=1) <= 0)


def test_a_centroids_part_over_an_fp16_set_is_refused(tmp_path):
    root = resolve(str(tmp_path))
    write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=4, dim=8, regions=3))
    with pytest.raises(ValueError, match="needs a compressed embedding set"):
        build_index(root.join("fp16"), root.join("index"), IndexSection(parts=["images-centroids"]))
    assert not EmbeddingSet.open(root.join("fp16", "images")).compressed


@pytest.mark.parametrize("bad", [{"t2i_candidates": "centroid"}, {"union_with": "global"}, {"centroid_score_threshold": 1.5},
                                 {"ncells": -1}])
def test_enumerated_and_ranged_centroid_settings_are_validated(bad):
    with pytest.raises(ConfigError):
        from_dict(TwoStageConfig, bad, source="x.yaml")


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.3, 0.9])
def test_pruned_approximate_scores_equal_scoring_every_token_with_pruned_centroids_at_zero(threshold):
    from teran_core.index.candidates import approximate_scores

    rng = np.random.default_rng(7)
    scores = rng.uniform(-0.5, 1.0, size=(5, 40))  # (W, K)
    counts = rng.integers(1, 9, size=30)  # (n,)
    codes = rng.integers(0, 40, size=int(counts.sum()))
    pruned = np.where(scores.max(axis=0) >= threshold, scores, 0.0) if threshold > -1 else scores  # the definition
    starts = np.cumsum(counts) - counts
    by_word = np.maximum.reduceat(pruned[:, codes], starts, axis=1).sum(axis=0)  # every token of every item gathered
    by_item = np.add.reduceat(pruned.max(axis=0)[codes], starts)
    np.testing.assert_allclose(approximate_scores(scores, codes, counts, "query", threshold), by_word, rtol=1e-12)
    np.testing.assert_allclose(approximate_scores(scores, codes, counts, "items", threshold), by_item, rtol=1e-12)
