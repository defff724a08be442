"""Recall metrics: hand-computed cases, the tie rule, any number of captions per image, the 1K folds,
and agreement with a loop-by-loop port of the reference's i2t/t2i (its ``evaluation.py``)."""

import math

import numpy as np
import pytest
import torch

from teran_core.recall.evaluation import (
    METRIC_KEYS,
    five_fold_1k,
    i2t_ranks,
    metrics_from_ranks,
    protocol_metrics,
    ranks_in_lists,
    retrieval_metrics,
    t2i_ranks,
)


def reference_metrics(sims: np.ndarray) -> dict:
    """The reference's i2t/t2i written as its loops: 5 consecutive captions per image, argsort descending."""
    n = sims.shape[0]
    i2t = np.array([min(np.where(np.argsort(sims[i])[::-1] == c)[0][0] for c in range(5 * i, 5 * i + 5)) for i in range(n)])
    t2i = np.array([np.where(np.argsort(sims[:, c])[::-1] == c // 5)[0][0] for c in range(5 * n)])
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * len(np.where(ranks < k)[0]) / len(ranks)
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
        out[f"{name}_meanr"] = ranks.mean() + 1
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def test_matches_the_reference_loops_without_ties():
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(40, 200))
    sims[np.arange(40), np.arange(0, 200, 5)] += 2.0  # make some of them right
    got, want = retrieval_metrics(sims, np.repeat(np.arange(40), 5)), reference_metrics(sims)
    assert set(got) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(want[key]), key


def test_hand_computed_ranks_and_metrics():
    # 3 images x 4 captions; captions 0,1 -> image 0, caption 2 -> image 1, caption 3 -> image 2
    scores = np.array([
        [0.9, 0.1, 0.8, 0.2],   # image 0: best own caption 0.9 is first -> rank 0
        [0.5, 0.6, 0.3, 0.4],   # image 1: own caption 2 (0.3) is last -> rank 3
        [0.1, 0.2, 0.95, 0.7],  # image 2: own caption 3 (0.7) behind 0.95 -> rank 1
    ])
    ids = np.array([0, 0, 1, 2])
    assert i2t_ranks(scores, ids).tolist() == [0, 3, 1]
    # caption 0: image 0 has 0.9, top -> 0; caption 1: image 0 has 0.1, behind 0.6, 0.2 -> 2;
    # caption 2: image 1 has 0.3 behind 0.95, 0.8 -> 2; caption 3: image 2 has 0.7, top -> 0
    assert t2i_ranks(scores, ids).tolist() == [0, 2, 2, 0]
    m = retrieval_metrics(scores, ids)
    assert m["i2t_r1"] == pytest.approx(100 / 3) and m["i2t_r5"] == 100.0
    assert m["i2t_medr"] == 2.0 and m["i2t_meanr"] == pytest.approx(1 + 4 / 3)
    assert m["t2i_r1"] == 50.0 and m["t2i_r5"] == 100.0
    assert m["t2i_medr"] == 2.0 and m["t2i_meanr"] == 2.0  # ranks [0,0,2,2]: median 1 -> floor(1)+1
    assert m["rsum"] == pytest.approx(100 / 3 + 100 + 100 + 50 + 100 + 100)


def test_ties_count_against_the_ground_truth():
    # every score equal: the ground truth ranks behind every other item (pessimistic rule)
    scores = np.zeros((4, 8))
    ids = np.repeat(np.arange(4), 2)
    assert i2t_ranks(scores, ids).tolist() == [6, 6, 6, 6]  # 8 captions, 2 are correct: 6 wrong ones ahead
    assert t2i_ranks(scores, ids).tolist() == [3] * 8
    assert retrieval_metrics(scores, ids)["rsum"] == 300.0  # i2t R@10 (6 < 10), t2i R@5 and R@10 (3 < 5)
    # one tie between a correct caption and a wrong one, one item strictly above
    assert ranks_in_lists(np.array([[0.9, 0.5, 0.5, 0.1]]), np.array([[False, True, False, False]])).tolist() == [2]
    # two correct items tied with each other are not counted against each other
    assert ranks_in_lists(np.array([[0.5, 0.5, 0.4]]), np.array([[True, True, False]])).tolist() == [0]


def test_any_number_of_captions_per_image_and_images_without_captions():
    rng = np.random.default_rng(1)
    ids = np.array([0] * 7 + [1] * 3 + [3] * 5)  # image 0 has 7 captions, image 2 none
    scores = rng.normal(size=(4, len(ids)))
    m = retrieval_metrics(scores, ids)
    full = i2t_ranks(scores, ids)
    assert math.isinf(full[2])  # no correct answer for image 2 ...
    expected_i2t = metrics_from_ranks(full[[0, 1, 3]], t2i_ranks(scores, ids))
    assert m == expected_i2t  # ... so it is left out of image->text, and stays a distractor for text->image
    # image 0's rank is the best of its 7 captions, computed independently
    order = np.argsort(-scores[0])
    assert full[0] == min(np.flatnonzero(order == c)[0] for c in range(7))


def test_five_fold_1k_is_the_mean_of_the_folds():
    rng = np.random.default_rng(2)
    ids = np.repeat(np.arange(6), 5)
    scores = rng.normal(size=(6, 30)) + 1.5 * (ids[None, :] == np.arange(6)[:, None])
    got = five_fold_1k(scores, ids, n_folds=3, fold_images=2)
    folds = [retrieval_metrics(scores[2 * f:2 * f + 2, 10 * f:10 * f + 10], ids[10 * f:10 * f + 10] - 2 * f) for f in range(3)]
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(np.mean([f[key] for f in folds])), key
    with pytest.raises(ValueError, match="needs 3 x 3 = 9 images"):
        five_fold_1k(scores, ids, n_folds=3, fold_images=3)


def test_protocols_check_the_collection_size():
    scores, ids = np.eye(3), np.arange(3)
    assert protocol_metrics(scores, ids, "all")["rsum"] == 600.0
    with pytest.raises(ValueError, match="expects 5000 test images, got 3"):
        protocol_metrics(scores, ids, "coco-5k")
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_metrics(scores, ids, "coco-2k")


def test_misses_are_infinite_ranks():
    m = metrics_from_ranks(np.array([0.0, np.inf, np.inf]), np.array([1.0, 2.0, np.inf]))
    assert m["i2t_r10"] == pytest.approx(100 / 3)
    assert math.isinf(m["i2t_medr"]) and math.isinf(m["i2t_meanr"])
    assert m["t2i_medr"] == 3.0  # median of [1, 2, inf] is 2 -> 3, still exact


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="caption 1 points at image index 5"):
        retrieval_metrics(np.zeros((2, 2)), [0, 5])
    with pytest.raises(ValueError, match="must be \\(3,\\) integers"):
        retrieval_metrics(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="query 1 contain NaN"):
        retrieval_metrics(np.array([[1.0, 0.0], [np.nan, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(3), [0, 1, 2])


def test_accepts_torch_scores_and_blocks_large_matrices(monkeypatch):
    import teran_core.recall.evaluation as evaluation

    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(30), 5)
    scores = rng.normal(size=(30, 150)).astype(np.float32)
    whole = retrieval_metrics(torch.from_numpy(scores), ids)
    monkeypatch.setattr(evaluation, "_BLOCK_ELEMENTS", 100)  # forces many row and column blocks
    assert retrieval_metrics(scores, ids) == whole
