"""Shared k-means centroids over both sides' token vectors (ColBERTv2/PLAID; docs/engine.md).

One set of centroids serves images and captions alike: a query token from one side is matched
against centroids that the other side's tokens were assigned to, so a quantizer trained on one
modality alone would place the other's queries in badly fitting cells (docs/engine.md, "Centroids").
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIN_POINTS_PER_CENTROID", "centroid_count", "train_centroids"]

MIN_POINTS_PER_CENTROID = 39  # FAISS warns below this many k-means points per centroid


def centroid_count(n_tokens: int, n_train: int | None = None) -> int:
    """PLAID's rule 2^floor(log2(16 * sqrt(N_tokens))), capped so each centroid has 39 training points.

    Args:
        n_tokens: content tokens of both sides together.
        n_train: k-means training points available (default ``n_tokens``).

    Example:
        >>> centroid_count(9_900_000), centroid_count(1_000), centroid_count(1_000, n_train=100)
        (32768, 16, 2)
    """
    n_train = n_tokens if n_train is None else n_train
    rule = 2 ** int(math.floor(math.log2(16 * math.sqrt(max(n_tokens, 1)))))
    cap = 2 ** int(math.floor(math.log2(max(n_train // MIN_POINTS_PER_CENTROID, 1))))
    return max(1, min(rule, cap))


def train_centroids(sample: np.ndarray, k: int, seed: int = 0, niter: int = 20) -> np.ndarray:
    """(k, D) float32 unit-norm centroids from spherical k-means (FAISS) on ``sample`` (n, D).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
        >>> c = train_centroids(x / np.linalg.norm(x, axis=1, keepdims=True), 4)
        >>> c.shape, bool(np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5))
        ((4, 8), True)
    """
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < k:
        raise ValueError(f"{len(sample)} training tokens for {k} centroids; need at least {k}")
    kmeans = faiss.Kmeans(sample.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=1 << 30)
    kmeans.train(sample)
    centroids = kmeans.centroids.astype(np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
