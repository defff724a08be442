"""Two-stage retrieval: index candidates (stage one), then exact TERAN alignment on them (stage two).

Stage two scores each query against its K' candidates with :func:`teran_core.alignment_scores`
on the stored token embeddings, fetched once per query batch and shard. With K' covering the
whole collection the result is the exhaustive ranking. Ranking order: score descending, then
item index ascending (so equal scores order the same way everywhere).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Literal

import numpy as np

from teran_core.config import knob
from teran_core.index.candidates import centroid_candidates, global_candidates, plaid_defaults, token_candidates, union_candidates
from teran_core.index.catalog import TeranIndex
from teran_core.index.search import ShardedIndex
from teran_core.index.vectors import content_slots
from teran_core.model.config import AlignmentMode
from teran_core.storage import StorageConfig

__all__ = ["TwoStageConfig", "SearchConfig", "Ranked", "TwoStageRetriever", "query_groups", "rank_candidates", "torch_threads"]


@dataclasses.dataclass
class TwoStageConfig:
    """How candidates are found and scored."""

    k_candidates: int = knob(1000, ge=1)  # K': text->image candidates per query from each source, all scored exactly
    i2t_k_factor: float = knob(5.0, gt=0)  # image->text K' = k_candidates x this: with ~5 captions per image both directions score the same share of their side
    t2i_candidates: Literal["global", "tokens", "centroids", "union"] = "union"  # text->image: global kNN, region-level kNN (images-regions), centroid interaction (images-centroids), or global with union_with (up to 2K' scored)
    i2t_candidates: Literal["global", "tokens", "centroids", "union"] = "union"  # image->text: global kNN, word-level kNN (captions-words), centroid interaction (captions-centroids), or global with union_with
    union_with: Literal["tokens", "centroids"] = "tokens"  # the token-level source "union" joins to global: token kNN, or centroid interaction over a compressed set (docs/engine.md)
    ncells: int = knob(0, ge=0)  # centroids: centroids probed per query token; 0 = PLAID's default by K' (1 / 2 / 4 for K' <= 10 / <= 100 / more)
    centroid_score_threshold: float | None = knob(None, ge=-1, le=1)  # centroids: centroids whose best query score is below this count 0 in the approximate score; -1 prunes none; None = PLAID's default by K' (0.5 / 0.45 / 0.4)
    ndocs: int = knob(0, ge=0)  # centroids: the most items kept by approximate score (K' is then the top min(K', ndocs)); 0 = PLAID's default by K' (256 / 1024 / 4096)
    hits_per_token: int = knob(1024, ge=1)  # token kNN: neighbours per query token; on the 100K grounded benchmark 64 lost 3 points of t2i R@10 (one concept's near-duplicate tokens crowd a word's neighbours)
    mode: AlignmentMode = "MrSw"  # alignment_scores mode (stage two's exact score)
    padding: Literal["reference", "masked"] = "reference"  # alignment_scores padding semantics
    query_batch: int = knob(64, ge=1)  # queries whose candidates are searched together
    fetch_items: int = knob(16384, ge=1)  # the most candidates fetched and decoded at once: a batch's queries are scored in groups up to this many (50 image queries x 2,000 candidates fetched together peaked 3.2 GB higher at 100K images)
    score_threads: int = knob(1, ge=0)  # torch threads while scoring (two-stage and exhaustive evaluation): per-query grids are small, and 2 threads ran them ~15x slower than 1 on a busy 2-core machine; 0 = leave torch's setting


@dataclasses.dataclass
class Ranked:
    """Re-ranked results of Q queries."""

    items: np.ndarray  # (Q, K) item indexes, best first; -1 = empty
    scores: np.ndarray  # (Q, K) exact TERAN scores; -inf = empty
    n_scored: np.ndarray  # (Q,) pairs scored exactly
    batch_seconds: list[float]  # wall time of each query batch (both stages)


def rank_candidates(items: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top k of one query's scored candidates, score descending then item ascending, padded to k.

    Example:
        >>> rank_candidates(np.array([7, 2, 5]), np.array([0.5, 0.5, 0.9]), 4)
        (array([ 5,  2,  7, -1]), array([ 0.9,  0.5,  0.5, -inf]))
    """
    order = np.lexsort((items, -scores))[:k]
    out_items, out_scores = np.full(k, -1, np.int64), np.full(k, -np.inf)
    out_items[: len(order)], out_scores[: len(order)] = items[order], scores[order]
    return out_items, out_scores


def _content_tokens(tokens: np.ndarray, lengths: np.ndarray, kind: str) -> list[np.ndarray]:
    first, trailing = content_slots(kind)
    return [tokens[q, first : max(first, int(n) - trailing)] for q, n in enumerate(lengths)]


def _numpy(x, dtype) -> np.ndarray:
    """A numpy or torch array (on any device) as numpy ``dtype``."""
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype)


@contextlib.contextmanager
def torch_threads(n: int):
    """Sets torch's intra-op threads to ``n`` (0: unchanged) inside the block, then restores them."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TwoStageRetriever:
    """Text->image and image->text retrieval over stored embeddings.

    Args:
        config: the :class:`TwoStageConfig`.
        images, captions: token stores with ``fetch(indices) -> EmbeddingBatch``
            (:class:`~teran_core.embedding_set.EmbeddingSet` or ``InMemoryTokens``).
        parts: opened index parts by name ("images-global", "captions-global", "images-regions",
            "captions-words"); the ones the candidate settings need must be there.

    Example (an index from ``teran build-index``; tests/test_retrieval.py runs this on a small one)::

        index = TeranIndex.open("s3://bucket/index/coco")
        retriever = TwoStageRetriever.over(index, TwoStageConfig(k_candidates=500))
        ranked = retriever.search("captions", model.encode_texts(["a red dog next to a blue car"]), k=10)
        [index.id_map("images").item_id(i) for i in ranked.items[0]]
    """

    def __init__(self, config: TwoStageConfig, *, images, captions, parts: dict[str, ShardedIndex]):
        self.config = config
        self.stores = {"images": images, "captions": captions}
        self.parts = parts

    @classmethod
    def over(cls, index: TeranIndex, config: TwoStageConfig, *, in_memory: bool = False) -> TwoStageRetriever:
        """A retriever over every part of ``index`` and its embedding set (loaded into memory with ``in_memory``)."""
        stores = {side: index.embeddings(side) for side in ("images", "captions")}
        if in_memory:
            stores = {side: emb.load() for side, emb in stores.items()}
        return cls(config, images=stores["images"], captions=stores["captions"], parts=index.parts())

    def _part(self, name: str, setting: str) -> ShardedIndex:
        if name not in self.parts:
            raise ValueError(
                f"{setting} needs the index part {name!r}, which was not built "
                f"(have {sorted(self.parts)}); add it to build.parts or choose another candidates source"
            )
        return self.parts[name]

    def k_candidates(self, query_side: str) -> int:
        """K' for queries from ``query_side`` (per candidate source)."""
        k = self.config.k_candidates
        return max(1, round(k * self.config.i2t_k_factor)) if query_side == "images" else k

    def centroid_settings(self, query_side: str) -> tuple[int, float, int]:
        """(ncells, centroid_score_threshold, ndocs) for queries from ``query_side``: the config's, or PLAID's by K'.

        Example:
            >>> TwoStageRetriever(TwoStageConfig(k_candidates=100, ndocs=300), images=None, captions=None, parts={}).centroid_settings("captions")
            (2, 0.45, 300)
        """
        ncells, threshold, ndocs = plaid_defaults(self.k_candidates(query_side))
        c = self.config
        return (c.ncells or ncells, threshold if c.centroid_score_threshold is None else c.centroid_score_threshold, c.ndocs or ndocs)

    def max_candidates(self, query_side: str) -> int:
        """The most candidates a query can get: K', twice that for a union of two sources."""
        source = self.config.i2t_candidates if query_side == "images" else self.config.t2i_candidates
        return self.k_candidates(query_side) * (2 if source == "union" else 1)

    def candidates(self, query_side: str, tokens: np.ndarray, lengths: np.ndarray,
                   global_vectors: np.ndarray | None = None) -> list[np.ndarray]:
        """Stage one for a batch of queries from ``query_side``: per query, candidate item indexes.

        ``global_vectors`` (Q, G) are the queries' ``global_vectors`` (default: slot 0 of ``tokens``, which
        they are unless a prototype head wrote them)."""
        target = "captions" if query_side == "images" else "images"
        field = "i2t_candidates" if query_side == "images" else "t2i_candidates"
        k, source = self.k_candidates(query_side), getattr(self.config, field)
        setting = f"two_stage.{field}={source!r}"
        lists = []
        if source in ("global", "union"):
            lists.append(global_candidates(self._part(f"{target}-global", setting), tokens[:, 0] if global_vectors is None else global_vectors, k))
        if source == "union":
            source = self.config.union_with
            setting += f" with two_stage.union_with={source!r}"
        if source == "centroids":
            ncells, threshold, ndocs = self.centroid_settings(query_side)
            lists.append(centroid_candidates(
                self._part(f"{target}-centroids", setting), _content_tokens(tokens, lengths, query_side), k,
                ncells=ncells, threshold=threshold, ndocs=ndocs, words_from="query" if query_side == "captions" else "items",
            ))
        if source == "tokens":
            token_part = "images-regions" if target == "images" else "captions-words"
            lists.append(token_candidates(
                self._part(token_part, setting), _content_tokens(tokens, lengths, query_side), k, self.config.hits_per_token,
                words_from="query" if query_side == "captions" else "hits",
            ))
        return lists[0] if len(lists) == 1 else union_candidates(*lists)

    def search(self, query_side: str, queries, k: int) -> Ranked:
        """Retrieves the top k of the other side for every query.

        Args:
            query_side: "captions" (text->image) or "images" (image->text).
            queries: token sets with ``tokens`` (Q, L, D) and ``lengths`` (Q,), numpy or torch
                (an EmbeddingBatch, or a TokenSet from the model's encoders).
            k: results per query (at most the candidates found).

        Returns:
            :class:`Ranked` results.
        """
        tokens, lengths = _numpy(queries.tokens, np.float32), _numpy(queries.lengths, np.int64)
        global_vectors = _numpy(queries.global_vectors, np.float32)  # (Q, G): slot 0, or a prototype head's vectors
        target = self.stores["captions" if query_side == "images" else "images"]
        items, scores, n_scored, seconds = [], [], [], []
        with torch_threads(self.config.score_threads):
            for start in range(0, len(tokens), self.config.query_batch):
                began = time.perf_counter()
                batch = slice(start, start + self.config.query_batch)
                self._search_batch(query_side, tokens[batch], lengths[batch], global_vectors[batch], target, k, (items, scores, n_scored))
                seconds.append(time.perf_counter() - began)
        return Ranked(np.array(items).reshape(-1, k), np.array(scores).reshape(-1, k), np.array(n_scored), seconds)

    def _search_batch(self, query_side: str, tokens: np.ndarray, lengths: np.ndarray, global_vectors: np.ndarray, target,
                      k: int, out: tuple) -> None:
        """Both stages for one query batch; appends each query's items, scores and pair count to ``out``."""
        from teran_core.alignment import TokenSet, alignment_scores

        cands = self.candidates(query_side, tokens, lengths, global_vectors)
        for group in query_groups([len(c) for c in cands], self.config.fetch_items):
            unique = np.unique(np.concatenate([cands[q] for q in group]).astype(np.int64))
            fetched = target.fetch(unique)  # one read per shard for the group
            for q in group:
                rows = np.searchsorted(unique, cands[q])
                others = TokenSet(fetched.tokens[rows], fetched.lengths[rows])
                query = TokenSet(tokens[q : q + 1], lengths[q : q + 1])
                pair = (query, others) if query_side == "images" else (others, query)
                exact = alignment_scores(*pair, mode=self.config.mode, padding=self.config.padding).numpy().reshape(-1)
                top_items, top_scores = rank_candidates(cands[q], exact.astype(np.float64), k)
                for store, value in zip(out, (top_items, top_scores, len(cands[q]))):
                    store.append(value)


def query_groups(counts: list[int], limit: int) -> list[range]:
    """Consecutive query groups holding at most ``limit`` candidates together (a query with more is a group alone).

    Example:
        >>> query_groups([400, 400, 400, 3000, 10], 1000)
        [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    """
    groups, start, total = [], 0, 0
    for q, count in enumerate(counts):
        if q > start and total + count > limit:
            groups.append(range(start, q))
            start, total = q, 0
        total += count
    if counts:
        groups.append(range(start, len(counts)))
    return groups


@dataclasses.dataclass
class SearchConfig:
    """``teran search``: the retrieval settings and the store the index lives in."""

    two_stage: TwoStageConfig = dataclasses.field(default_factory=TwoStageConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
