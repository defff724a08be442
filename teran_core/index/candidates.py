"""Stage one of two-stage retrieval: candidate items from global kNN, token-level kNN, centroid interaction, or unions.

Token-level candidates are ColBERT-style: every content token of a query searches the other
side's token index; an item's approximate score is TERAN's MrSw restricted to the hits found,
sum over words of the best (word, region) hit, and the best-scoring items become candidates.
For text->image the words are the query's tokens; for image->text the words are the hit tokens.

Centroid candidates are PLAID's (docs/engine.md): each query token probes its ``ncells`` nearest
shared centroids among those holding tokens of the other side (across modalities a query token's
nearest centroids are often ones only its own side occupies), the items in their inverted lists are the pool, and each is scored by an
approximate MrSw computed from centroid scores alone (each item token replaced by its centroid;
centroids whose best query score is below ``centroid_score_threshold`` count 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from teran_core.index.idmap import SLOT_BITS, token_owners
from teran_core.index.search import ShardedIndex

__all__ = ["global_candidates", "token_candidates", "aggregate_token_hits", "union_candidates", "plaid_defaults",
           "centroid_candidates", "approximate_scores"]

# PLAID's settings by k (Santhanam et al., CIKM 2022): k -> (ncells, centroid_score_threshold, ndocs)
PLAID_DEFAULTS = ((10, (1, 0.5, 256)), (100, (2, 0.45, 1024)), (None, (4, 0.4, 4096)))


def global_candidates(index: ShardedIndex, queries: np.ndarray, k: int) -> list[np.ndarray]:
    """Per query, the item indexes of its top-k global neighbours (fewer if the index is smaller).

    Args:
        index: a global part (ids are item indexes).
        queries: (Q, D) global query vectors.
        k: candidates per query.
    """
    _, ids = index.search(queries, k)
    return [row[row >= 0] for row in ids]


def aggregate_token_hits(scores: np.ndarray, ids: np.ndarray, words: np.ndarray, k: int) -> np.ndarray:
    """The k best items by sum over words of their best hit (MrSw over the hits found).

    Args:
        scores: (H,) hit scores.
        ids: (H,) packed token ids of the hits (-1 = no hit).
        words: (H,) the word each hit counts for.
        k: items to keep.

    Returns:
        Up to k item indexes, best first (ties: lower item first).

    Example:
        >>> from teran_core.index.idmap import pack_token_ids
        >>> ids = pack_token_ids(np.array([3, 3, 5, 5]), np.array([1, 2, 1, 1]))
        >>> # word 0 hits item 3 twice (best 0.9) and item 5 (0.5); word 1 hits item 5 (0.6)
        >>> aggregate_token_hits(np.array([0.9, 0.2, 0.5, 0.6]), ids, np.array([0, 0, 0, 1]), 2).tolist()
        [5, 3]
    """
    valid = ids >= 0
    owners, words, scores = token_owners(ids[valid]), words[valid], scores[valid]
    if owners.size == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((-scores, words, owners))  # per (owner, word): best hit first
    owners, words, scores = owners[order], words[order], scores[order]
    first = np.ones(len(owners), bool)
    first[1:] = (owners[1:] != owners[:-1]) | (words[1:] != words[:-1])
    items, inverse = np.unique(owners[first], return_inverse=True)
    approx = np.bincount(inverse, weights=scores[first])  # (n_items,) sum over words of the best hit
    best = np.lexsort((items, -approx))[:k]
    return items[best]


def token_candidates(index: ShardedIndex, query_tokens: Sequence[np.ndarray], k: int, hits_per_token: int,
                     words_from: str) -> list[np.ndarray]:
    """Per query, up to k candidate items from a token index.

    Args:
        index: a token part (``images-regions`` or ``captions-words``).
        query_tokens: per query, its (W_q, D) content tokens.
        k: candidates per query.
        hits_per_token: neighbours searched per query token.
        words_from: "query" when the query's tokens are the words (text->image), "hits" when the
            hit tokens are (image->text: a caption word is a slot of the hit caption).
    """
    if words_from not in ("query", "hits"):
        raise ValueError(f"words_from {words_from!r}: expected 'query' or 'hits'")
    counts = np.array([len(t) for t in query_tokens])
    if counts.sum() == 0:
        return [np.zeros(0, np.int64) for _ in query_tokens]
    scores, ids = index.search(np.concatenate([t for t in query_tokens if len(t)]), hits_per_token)  # (sum W, h)
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for q in range(len(query_tokens)):
        s, i = scores[starts[q]:starts[q + 1]], ids[starts[q]:starts[q + 1]]  # (W_q, h)
        if words_from == "query":
            words = np.repeat(np.arange(len(s)), s.shape[1])
        else:
            words = (i & (2**SLOT_BITS - 1)).reshape(-1)
        out.append(aggregate_token_hits(s.reshape(-1), i.reshape(-1), words, k))
    return out


def union_candidates(*lists: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per query, the sorted union of its candidates from several sources.

    Example:
        >>> union_candidates([np.array([4, 1])], [np.array([1, 7])])[0].tolist()
        [1, 4, 7]
    """
    return [np.unique(np.concatenate(parts)) for parts in zip(*lists)]


def plaid_defaults(k: int) -> tuple[int, float, int]:
    """PLAID's (ncells, centroid_score_threshold, ndocs) for k results.

    Example:
        >>> plaid_defaults(10), plaid_defaults(100), plaid_defaults(1000)
        ((1, 0.5, 256), (2, 0.45, 1024), (4, 0.4, 4096))
    """
    return next(settings for bound, settings in PLAID_DEFAULTS if bound is None or k <= bound)


def approximate_scores(centroid_scores: np.ndarray, codes: np.ndarray, counts: np.ndarray, words_from: str,
                       threshold: float = -1.0) -> np.ndarray:
    """Approximate MrSw of n items from centroid scores alone.

    Args:
        centroid_scores: (W, K) query tokens x centroids.
        codes: (T,) centroid ids of the items' content tokens, item after item.
        counts: (n,) tokens per item, each >= 1.
        words_from: "query" (text->image: sum over query words of the max over the item's centroids)
            or "items" (image->text: sum over the item's word centroids of the max over query regions).
        threshold: centroids whose best score over the query tokens is below it count 0 (PLAID's
            pruning); -1 or less prunes none.

    Example:
        >>> s = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.3]])  # 2 query tokens, 3 centroids
        >>> approximate_scores(s, np.array([0, 2, 1]), np.array([2, 1]), "query").round(2).tolist()
        [1.2, 0.9]
        >>> approximate_scores(s, np.array([0, 2, 1]), np.array([2, 1]), "items").round(2).tolist()
        [1.2, 0.8]
        >>> approximate_scores(s, np.array([0, 2, 1]), np.array([2, 1]), "query", threshold=0.5).round(2).tolist()
        [1.1, 0.9]
    """
    best_of_centroid = centroid_scores.max(axis=0)  # (K,)
    kept = best_of_centroid >= threshold if threshold > -1 else np.ones(len(best_of_centroid), bool)
    starts = np.cumsum(counts) - counts
    if words_from == "items":
        return np.add.reduceat(np.where(kept, best_of_centroid, 0.0)[codes], starts)  # (n,)
    if words_from != "query":
        raise ValueError(f"words_from {words_from!r}: expected 'query' or 'items'")
    # a pruned token scores 0 for every word, so only kept tokens are gathered (most are pruned: this is
    # PLAID's saving); an item's best per word is its best kept token, floored at 0 where it has a pruned one
    keep = kept[codes]
    n_kept = np.add.reduceat(keep.astype(np.int64), starts)  # (n,)
    best = np.zeros((len(counts), centroid_scores.shape[0]), centroid_scores.dtype)  # (n, W)
    has = n_kept > 0
    if has.any():
        by_centroid = np.ascontiguousarray(centroid_scores.T)  # (K, W): a gathered token is one row
        best[has] = np.maximum.reduceat(by_centroid[codes[keep]], (np.cumsum(n_kept) - n_kept)[has], axis=0)
    np.maximum(best, 0.0, where=(n_kept < counts)[:, None], out=best)
    return best.sum(axis=1)


def centroid_candidates(lists, query_tokens: Sequence[np.ndarray], k: int, *, ncells: int, threshold: float, ndocs: int,
                        words_from: str) -> list[np.ndarray]:
    """Per query, up to min(k, ndocs) candidate items by centroid interaction (best approximate score first).

    Args:
        lists: the other side's :class:`~teran_core.index.centroid_lists.CentroidLists`.
        query_tokens: per query, its (W_q, D) content tokens.
        k: candidates per query.
        ncells: centroids probed per query token.
        threshold: centroids whose best score over the query's tokens is below it count 0 in the
            approximate score; -1 or less prunes none.
        ndocs: the most items kept by approximate score.
        words_from: "query" for text->image, "items" for image->text (see :func:`approximate_scores`).
    """
    keep_n = min(k, ndocs)
    ncells = min(ncells, len(lists.occupied_ids))  # only centroids with items of the other side are scored and probed
    if ncells == 0:
        return [np.zeros(0, np.int64) for _ in query_tokens]
    out = []
    for tokens in query_tokens:
        if len(tokens) == 0:
            out.append(np.zeros(0, np.int64))
            continue
        scores = np.asarray(tokens, np.float32) @ lists.occupied_centroids.T  # (W, K_o)
        top = torch.from_numpy(scores).topk(ncells, dim=1).indices.numpy()  # torch's top-k: ~20x numpy's argpartition here
        cells = lists.occupied_ids[np.unique(top)]
        items = lists.items_in(cells)
        codes, counts = lists.forward(items)
        items = items[counts > 0]  # an item with no content token cannot be scored (it is in no list either)
        if items.size == 0:
            out.append(items)
            continue
        approx = approximate_scores(scores, codes, counts[counts > 0], words_from, threshold)
        best = np.lexsort((items, -approx))[:keep_n]
        out.append(items[best])
    return out
