"""Two-stage retrieval: exhaustive ranking when K' covers the collection, graceful loss as K' shrinks."""

import numpy as np
import pytest
import torch

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.embedding_set import EmbeddingSet
from teran_core.index.build import build_part
from teran_core.index.factory import choose_index
from teran_core.index.layout import PartSpec
from teran_core.index.search import ShardedIndex
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever
from teran_core.storage import resolve

SPEC = GroundedSpec(images=48, captions_per_image=5, dim=16, regions=6, words=(2, 5), salient=2, concepts=10,
                    word_noise=1.5, global_noise=1.0, images_per_shard=20)
N_IMAGES, N_CAPTIONS = 48, 240


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = resolve(str(tmp_path_factory.mktemp("two_stage")))
    owner = write_grounded_embeddings(root.join("emb"), SPEC)
    sides = {side: EmbeddingSet.open(root.join("emb", side)) for side in ("images", "captions")}
    parts = {}
    for spec in (PartSpec(s, v) for s in ("images", "captions") for v in ("global", "tokens")):
        build_part(sides[spec.side], spec, choose_index(10_000, SPEC.dim, 2**30), root.join("index", spec.name))
        parts[spec.name] = ShardedIndex.open(root.join("index", spec.name))
    memory = {side: emb.load() for side, emb in sides.items()}
    batches = {side: store.fetch(np.arange(len(store))) for side, store in memory.items()}
    exact = alignment_scores(*(TokenSet(torch.from_numpy(batches[s].tokens), torch.from_numpy(batches[s].lengths))
                               for s in ("images", "captions"))).numpy()  # (N_IMAGES, N_CAPTIONS)
    return sides, memory, parts, batches, exact, owner


def retriever(collection, stores="memory", **config):
    sides, memory, parts, _, _, _ = collection
    chosen = memory if stores == "memory" else sides
    return TwoStageRetriever(TwoStageConfig(**config), images=chosen["images"], captions=chosen["captions"], parts=parts)


def exhaustive_order(scores: np.ndarray) -> np.ndarray:
    """Per row, every column by score descending then index ascending (the two-stage tie rule)."""
    return np.stack([np.lexsort((np.arange(len(row)), -row)) for row in scores])


@pytest.mark.parametrize("source", ["global", "tokens", "union"])
def test_full_candidate_lists_give_the_exhaustive_ranking(collection, source):
    _, _, _, batches, exact, _ = collection
    hits = 6 * N_CAPTIONS  # every token of the other side: token candidates cover everything too
    t2i = retriever(collection, k_candidates=N_CAPTIONS, t2i_candidates=source, i2t_candidates=source,
                    hits_per_token=hits, query_batch=50)
    got = t2i.search("captions", batches["captions"], k=N_IMAGES)
    np.testing.assert_array_equal(got.items, exhaustive_order(exact.T))
    np.testing.assert_allclose(got.scores, np.take_along_axis(exact.T, got.items, 1), rtol=1e-5, atol=1e-6)
    assert (got.n_scored == N_IMAGES).all()
    i2t = t2i.search("images", batches["images"], k=N_CAPTIONS)
    np.testing.assert_array_equal(i2t.items, exhaustive_order(exact))


def test_storage_reads_give_the_same_results_as_memory(collection):
    _, _, _, batches, _, _ = collection
    queries = batches["captions"]
    on_storage = retriever(collection, stores="storage", k_candidates=7, query_batch=16).search("captions", queries, k=5)
    in_memory = retriever(collection, k_candidates=7, query_batch=16).search("captions", queries, k=5)
    np.testing.assert_array_equal(on_storage.items, in_memory.items)
    np.testing.assert_array_equal(on_storage.scores, in_memory.scores)


@pytest.mark.parametrize("fetch_items", [1, 20])  # every query fetched alone; groups of a few queries (7 to 14 candidates each)
def test_fetching_candidates_in_query_groups_gives_the_same_results(collection, fetch_items):
    _, _, _, batches, _, _ = collection
    whole = retriever(collection, k_candidates=7, query_batch=16).search("captions", batches["captions"], k=5)
    grouped = retriever(collection, k_candidates=7, query_batch=16, fetch_items=fetch_items).search("captions", batches["captions"], k=5)
    np.testing.assert_array_equal(grouped.items, whole.items)
    np.testing.assert_array_equal(grouped.scores, whole.scores)
    np.testing.assert_array_equal(grouped.n_scored, whole.n_scored)


def test_recall_loss_is_bounded_by_candidate_misses_as_k_shrinks(collection):
    _, _, _, batches, exact, owner = collection
    exhaustive_rank = (exact.T > exact.T[np.arange(N_CAPTIONS), owner][:, None]).sum(1)  # no ties in this data
    candidate_recall = []
    for k_candidates in (48, 24, 12, 6, 3):
        got = retriever(collection, k_candidates=k_candidates, t2i_candidates="global").search("captions", batches["captions"], k=k_candidates)
        found = got.items == owner[:, None]
        rank = np.where(found.any(1), found.argmax(1), np.inf)
        candidate_recall.append(found.any(1).mean())
        # with the right image among the candidates, fewer competitors can only lift it
        assert (rank[found.any(1)] <= exhaustive_rank[found.any(1)]).all()
        for k in (1, 5, 10):
            loss = (exhaustive_rank < k).mean() - (rank < k).mean()
            assert loss <= 1.0 - candidate_recall[-1] + 1e-9
    assert candidate_recall == sorted(candidate_recall, reverse=True)
    assert candidate_recall[0] == 1.0 and candidate_recall[-1] < 1.0


def test_missing_index_part_is_named(collection):
    _, memory, parts, batches, _, _ = collection
    without_regions = {k: v for k, v in parts.items() if k != "images-regions"}
    two_stage = TwoStageRetriever(TwoStageConfig(t2i_candidates="tokens"), images=memory["images"],
                                  captions=memory["captions"], parts=without_regions)
    with pytest.raises(ValueError, match="two_stage.t2i_candidates='tokens' needs the index part 'images-regions'"):
        two_stage.search("captions", batches["captions"], k=5)
