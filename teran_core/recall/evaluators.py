"""The three evaluators of a query chunk against the indexed collection; what one Ray actor holds.

- exhaustive: exact TERAN alignment of every query with every collection item (streamed in
  blocks; the rank of a query is the number of wrong items scoring at least its best answer);
- global: the global-vector kNN list alone, ranked by global similarity;
- two-stage: candidates from the index, re-ranked by exact TERAN alignment (teran_core.retrieval).

Each returns 0-based ranks (``inf`` = answer not in the list), the TERAN pairs it scored and timings.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.index.catalog import TeranIndex
from teran_core.recall.evaluation import ranks_in_lists
from teran_core.recall.truth import gt_mask
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever, torch_threads
from teran_core.storage import StorageConfig

__all__ = ["CollectionEvaluator", "other_side"]


def other_side(side: str) -> str:
    return "captions" if side == "images" else "images"


def _token_set(batch) -> TokenSet:
    return TokenSet(torch.from_numpy(batch.tokens), torch.from_numpy(batch.lengths))


class CollectionEvaluator:
    """Evaluates query chunks on one index and its embedding set.

    Args:
        index: the index folder (a :class:`TeranIndex` or its URI).
        two_stage: candidate and scoring settings (mode and padding also apply to exhaustive).
        storage: object-store settings for a URI.
        in_memory: load both embedding sides into RAM (else fetch from the shards, batched by shard).
        block_items: collection items per exhaustive scoring block.
        parts: the index parts to search, by name (e.g. :class:`~teran_core.index.groups.FanOutIndex`
            over searcher actors); None opens every part in this process.
    """

    def __init__(self, index: TeranIndex | str, two_stage: TwoStageConfig, storage: StorageConfig | None = None,
                 in_memory: bool = False, block_items: int = 4096, parts: dict | None = None):
        self.index = TeranIndex.open(index, storage) if isinstance(index, str) else index
        sides = {side: self.index.embeddings(side) for side in ("images", "captions")}
        self.stores = {side: emb.load() if in_memory else emb for side, emb in sides.items()}
        self.sizes = {side: len(emb) for side, emb in sides.items()}
        self.config = two_stage
        self.block_items = block_items
        self.parts = self.index.parts() if parts is None else parts

    def _score(self, query_side: str, queries: TokenSet, others: TokenSet) -> np.ndarray:
        """(Q, n) exact scores of queries against other-side items."""
        pair = (queries, others) if query_side == "images" else (others, queries)
        with torch_threads(self.config.score_threads):
            scores = alignment_scores(*pair, mode=self.config.mode, padding=self.config.padding).numpy()
        return scores if query_side == "images" else scores.T

    def exhaustive(self, query_side: str, items: np.ndarray, answers: np.ndarray) -> dict:
        """Ranks against every item of the other side; pairs = Q x N."""
        start = time.perf_counter()
        queries = _token_set(self.stores[query_side].fetch(items))
        target = self.stores[other_side(query_side)]
        best = np.full(len(items), -np.inf)
        for q in range(len(items)):  # pass 1: each query's best answer score
            valid = answers[q][answers[q] >= 0]
            if valid.size:
                best[q] = self._score(query_side, queries[q:q + 1], _token_set(target.fetch(valid))).max()
        wrong_at_least = np.zeros(len(items), np.int64)
        n = self.sizes[other_side(query_side)]
        for first in range(0, n, self.block_items):  # pass 2: wrong items scoring >= the best answer
            block = np.arange(first, min(first + self.block_items, n))
            scores = self._score(query_side, queries, _token_set(target.fetch(block)))  # (Q, B)
            wrong = ~gt_mask(np.broadcast_to(block, scores.shape), answers)
            wrong_at_least += ((scores >= best[:, None]) & wrong).sum(1)
        ranks = np.where(np.isfinite(best), wrong_at_least, np.inf)
        return {"ranks": ranks, "pairs": len(items) * n, "seconds": time.perf_counter() - start}

    def global_ann(self, query_side: str, items: np.ndarray, answers: np.ndarray, k: int) -> dict:
        """Ranks in the global-vector kNN list of length k (global similarity decides the order)."""
        start = time.perf_counter()
        queries = self.stores[query_side].fetch(items).global_vectors  # (Q, G)
        scores, found = self.parts[f"{other_side(query_side)}-global"].search(queries, k)
        scores = np.where(found >= 0, scores, -np.inf)
        return {"ranks": ranks_in_lists(scores, gt_mask(found, answers)), "pairs": 0, "seconds": time.perf_counter() - start}

    def two_stage(self, query_side: str, items: np.ndarray, answers: np.ndarray, k_candidates: int,
                  query_batch: int | None = None) -> dict:
        """Ranks among the re-ranked candidates (K' = ``k_candidates``, x i2t_k_factor for image queries); pairs = candidates scored."""
        config = dataclasses.replace(self.config, k_candidates=k_candidates, query_batch=query_batch or self.config.query_batch)
        retriever = TwoStageRetriever(config, images=self.stores["images"], captions=self.stores["captions"], parts=self.parts)
        start = time.perf_counter()
        ranked = retriever.search(query_side, self.stores[query_side].fetch(items), k=retriever.max_candidates(query_side))
        return {
            "ranks": ranks_in_lists(ranked.scores, gt_mask(ranked.items, answers)),
            "pairs": int(ranked.n_scored.sum()), "seconds": time.perf_counter() - start,
            "batch_seconds": ranked.batch_seconds,
        }

    def score_block(self, image_items: np.ndarray, caption_items: np.ndarray) -> np.ndarray:
        """(len(image_items), len(caption_items)) exact scores: one block of a protocol's full matrix."""
        images = _token_set(self.stores["images"].fetch(image_items))
        return self._score("images", images, _token_set(self.stores["captions"].fetch(caption_items)))
