"""Recall metrics of image-text retrieval, following the reference ``evaluation.py`` (i2t, t2i, evalrank).

Ranks are 0-based internally and printed 1-based, as the reference prints them. One rule decides
every rank, from a full score matrix or from a candidate list alike:

    rank = #{items scored above the best ground-truth item}
         + #{non-ground-truth items scored exactly equal to it}

Ties are thus broken *against* the ground truth (pessimistic). The reference sorts with
``np.argsort(d)[::-1]``, which leaves the order of tied scores to numpy's unstable sort; the
pessimistic rule is reproducible, and a constant scorer gets no credit. A query whose ground
truth is not in its list (a candidate list that missed it) gets rank ``inf``: a miss at every K.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "PROTOCOLS",
    "METRIC_KEYS",
    "ranks_in_lists",
    "i2t_ranks",
    "t2i_ranks",
    "metrics_from_ranks",
    "retrieval_metrics",
    "five_fold_1k",
    "protocol_metrics",
]

RECALL_KS = (1, 5, 10)
METRIC_KEYS = tuple(
    f"{d}_{m}" for d in ("i2t", "t2i") for m in (*(f"r{k}" for k in RECALL_KS), "medr", "meanr")
) + ("rsum",)
# protocol -> (images expected, folds); "all" evaluates whatever collection it is given
PROTOCOLS = {"coco-1k": (5000, 5), "coco-5k": (5000, 1), "f30k-1k": (1000, 1), "all": (None, 1)}
_BLOCK_ELEMENTS = 2**24  # score cells compared per step: bounds the temporaries to ~100 MB


def ranks_in_lists(scores: np.ndarray, is_ground_truth: np.ndarray) -> np.ndarray:
    """The 0-based rank of the best ground-truth item in each query's scored list.

    Args:
        scores: (Q, K) scores of K listed items per query; ``-inf`` marks an empty slot.
        is_ground_truth: (Q, K) bool, True where the listed item is a correct answer.

    Returns:
        (Q,) float ranks (pessimistic ties, see the module docstring); ``inf`` where no listed
        item is correct.

    Raises:
        ValueError: shapes disagree, or a score is NaN.

    Example:
        >>> ranks_in_lists(np.array([[0.9, 0.5, 0.5], [0.1, 0.2, 0.3]]),
        ...                np.array([[False, True, False], [False, False, False]]))
        array([ 2., inf])
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != np.shape(is_ground_truth):
        raise ValueError(f"scores {scores.shape} and is_ground_truth {np.shape(is_ground_truth)} must be the same (Q, K) shape")
    if np.isnan(scores).any():
        row = int(np.isnan(scores).any(axis=1).argmax())
        raise ValueError(f"scores of query {row} contain NaN; a NaN has no rank (check the embeddings of that query)")
    best = np.where(is_ground_truth, scores, -np.inf).max(axis=1, initial=-np.inf)  # (Q,)
    above = (scores > best[:, None]).sum(axis=1)
    tied_others = ((scores == best[:, None]) & ~is_ground_truth).sum(axis=1)
    return np.where(is_ground_truth.any(axis=1), above + tied_others, np.inf)


def _as_matrix(scores) -> np.ndarray:
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (n_images, n_captions) matrix, got shape {scores.shape}")
    return scores


def _check_caption_images(caption_image_ids, n_images: int, n_captions: int) -> np.ndarray:
    ids = np.asarray(caption_image_ids)
    if ids.shape != (n_captions,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"caption_image_ids must be ({n_captions},) integers (one image index per score column), "
            f"got shape {ids.shape} dtype {ids.dtype}"
        )
    bad = np.flatnonzero((ids < 0) | (ids >= n_images))
    if bad.size:
        raise ValueError(
            f"caption {int(bad[0])} points at image index {int(ids[bad[0]])}, outside the {n_images} score rows; "
            f"caption_image_ids are row indices into scores, not dataset image ids"
        )
    return ids


def i2t_ranks(scores, caption_image_ids) -> np.ndarray:
    """Image→text ranks: per image, the rank of its best-ranked ground-truth caption.

    Args:
        scores: (n_images, n_captions) scores.
        caption_image_ids: (n_captions,) int, the score row of each caption's image.

    Returns:
        (n_images,) 0-based ranks; ``inf`` for an image without any caption (callers exclude those).

    Example:
        >>> i2t_ranks(np.array([[0.1, 0.9, 0.8], [0.7, 0.2, 0.3]]), np.array([0, 0, 1])).tolist()
        [0.0, 1.0]
    """
    scores = _as_matrix(scores)
    ids = _check_caption_images(caption_image_ids, *scores.shape)
    step = max(1, _BLOCK_ELEMENTS // max(1, scores.shape[1]))
    blocks = [
        ranks_in_lists(scores[i : i + step], ids[None, :] == np.arange(i, min(i + step, len(scores)))[:, None])
        for i in range(0, len(scores), step)
    ]
    return np.concatenate(blocks) if blocks else np.zeros(0)


def t2i_ranks(scores, caption_image_ids) -> np.ndarray:
    """Text→image ranks: per caption, the rank of its own image among all score rows.

    Example:
        >>> t2i_ranks(np.array([[0.1, 0.9, 0.8], [0.7, 0.2, 0.3]]), np.array([0, 0, 1])).tolist()
        [1.0, 0.0, 1.0]
    """
    scores = _as_matrix(scores)
    ids = _check_caption_images(caption_image_ids, *scores.shape)
    step = max(1, _BLOCK_ELEMENTS // max(1, scores.shape[0]))
    blocks = [
        ranks_in_lists(scores[:, j : j + step].T, np.arange(scores.shape[0])[None, :] == ids[j : j + step, None])
        for j in range(0, scores.shape[1], step)
    ]
    return np.concatenate(blocks) if blocks else np.zeros(0)


def _direction_metrics(prefix: str, ranks: np.ndarray) -> dict[str, float]:
    if ranks.size == 0:
        raise ValueError(f"no {prefix} queries to evaluate")
    out = {f"{prefix}_r{k}": float(100.0 * np.mean(ranks < k)) for k in RECALL_KS}
    out[f"{prefix}_medr"] = float(math.floor(np.median(ranks)) + 1) if np.isfinite(np.median(ranks)) else math.inf
    out[f"{prefix}_meanr"] = float(np.mean(ranks) + 1)
    return out


def metrics_from_ranks(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    """R@1/5/10 (percent), medr = floor(median)+1, meanr = mean+1 per direction, and rsum.

    ``inf`` ranks (misses) count as misses for every recall; they make meanr ``inf`` and medr
    ``inf`` only when at least half the queries missed.

    Example:
        >>> m = metrics_from_ranks(np.array([0.0, 3.0]), np.array([0.0, 20.0, 1.0, np.inf]))
        >>> m["i2t_r1"], m["i2t_r5"], m["i2t_medr"], m["t2i_r5"], m["t2i_medr"], m["rsum"]
        (50.0, 100.0, 2.0, 50.0, 11.0, 375.0)
    """
    out = {**_direction_metrics("i2t", np.asarray(i2t, float)), **_direction_metrics("t2i", np.asarray(t2i, float))}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_KS)
    return out


def retrieval_metrics(scores, caption_image_ids) -> dict[str, float]:
    """All reference metrics of one score matrix, in both directions.

    Images without any caption are left out of image→text (they have no correct answer) but
    stay in the collection as distractors for text→image. Any number of captions per image
    works; image→text counts the best-ranked of the image's captions.

    Args:
        scores: (n_images, n_captions) numpy array or torch tensor, higher = more similar.
        caption_image_ids: (n_captions,) int, ``caption_image_ids[j]`` = row of caption j's image.

    Returns:
        dict with i2t_r1, i2t_r5, i2t_r10, i2t_medr, i2t_meanr, the same five for t2i, and rsum.
        Recalls are percentages; ranks are 1-based.

    Raises:
        ValueError: a malformed matrix, an out-of-range image index, NaN scores, or no image
            having a caption.

    Example:
        >>> scores = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.7]])
        >>> m = retrieval_metrics(scores, [0, 1, 1])
        >>> m["i2t_r1"], m["t2i_r1"], m["rsum"]
        (100.0, 100.0, 600.0)
    """
    scores = _as_matrix(scores)
    ids = _check_caption_images(caption_image_ids, *scores.shape)
    i2t = i2t_ranks(scores, ids)
    has_caption = np.bincount(ids, minlength=scores.shape[0]) > 0
    return metrics_from_ranks(i2t[has_caption], t2i_ranks(scores, ids))


def mean_metrics(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """The mean of every metric over folds; rsum recomputed from the mean recalls."""
    out = {key: float(np.mean([fold[key] for fold in per_fold])) for key in METRIC_KEYS if key != "rsum"}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_KS)
    return out


def five_fold_1k(scores, caption_image_ids, *, n_folds: int = 5, fold_images: int = 1000) -> dict[str, float]:
    """The reference 1K protocol: the mean over folds of 1000 consecutive images and their captions.

    Fold f holds images ``[f*1000, (f+1)*1000)`` and every caption of those images (with the
    reference's 5 consecutive captions per image, that is captions ``[f*5000, (f+1)*5000)``).
    rsum is computed from the mean recalls (the reference prints 6x the mean rsum by mistake).

    Args:
        scores: (n_images, n_captions) with n_images == n_folds * fold_images.
        caption_image_ids: (n_captions,) int image row of each caption.
        n_folds: number of folds (5 in the reference).
        fold_images: images per fold (1000 in the reference).

    Returns:
        The metric dict of :func:`retrieval_metrics`, averaged over the folds.

    Raises:
        ValueError: the image count is not n_folds * fold_images.

    Example:
        >>> scores = np.eye(4)[:, [0, 0, 1, 2, 3]]  # 4 images, image 0 has two captions
        >>> five_fold_1k(scores, [0, 0, 1, 2, 3], n_folds=2, fold_images=2)["rsum"]
        600.0
    """
    scores = _as_matrix(scores)
    ids = _check_caption_images(caption_image_ids, *scores.shape)
    if scores.shape[0] != n_folds * fold_images:
        raise ValueError(
            f"the 1K protocol needs {n_folds} x {fold_images} = {n_folds * fold_images} images in test-split order, "
            f"got {scores.shape[0]}; use protocol 'all' for other collection sizes"
        )
    per_fold = []
    for fold in range(n_folds):
        first = fold * fold_images
        columns = np.flatnonzero((ids >= first) & (ids < first + fold_images))
        per_fold.append(retrieval_metrics(scores[first : first + fold_images][:, columns], ids[columns] - first))
    return mean_metrics(per_fold)


def protocol_metrics(scores, caption_image_ids, protocol: str) -> dict[str, float]:
    """Metrics under a named protocol of the reference's evaluation (its ``evaluation.py``, ``evalrank``).

    ``coco-1k``: five folds of 1000 of the 5000 COCO test images, averaged; ``coco-5k``: all 5000
    at once; ``f30k-1k``: the 1000 Flickr30K test images at once (the reference's fold5=False);
    ``all``: the whole given collection at once.

    Example:
        >>> protocol_metrics(np.eye(3), [0, 1, 2], "all")["i2t_r1"]
        100.0
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
    n_images, folds = PROTOCOLS[protocol]
    scores = _as_matrix(scores)
    if n_images is not None and scores.shape[0] != n_images:
        raise ValueError(f"protocol {protocol} expects {n_images} test images, got {scores.shape[0]}")
    if folds > 1:
        return five_fold_1k(scores, caption_image_ids, n_folds=folds, fold_images=n_images // folds)
    return retrieval_metrics(scores, caption_image_ids)
