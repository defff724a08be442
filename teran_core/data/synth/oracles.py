"""Reference scorers on a synthetic set, for proving it grounded and bounding what a model can reach.

Shape notation: N images, R regions (padded), F features, C captions, P distinct (object, attribute)
mentions. Each scorer returns an (N, C) score matrix; :func:`retrieval_figures` turns one into
text-to-image recall and the share of captions that beat every hard negative of their image.
"""

from __future__ import annotations

import re

import numpy as np

from teran_core.data.synth.vocabulary import SyntheticWorld

__all__ = ["parse_mentions", "word_region_scores", "bag_of_classes_scores", "bag_of_features_scores", "retrieval_figures"]


def parse_mentions(text: str, world: SyntheticWorld) -> list[tuple[int, int | None]]:
    """The (object id, attribute id or None) pairs a caption's words name ("a red car" -> (car, red)).

    Example:
        >>> world = SyntheticWorld(0, 4)
        >>> parse_mentions("A red car next to a table; the car is old.", world)
        [(0, 0), (3, None)]
    """
    words = re.findall(r"[a-z]+", text.lower())
    pairs: dict[int, int | None] = {}
    for i, word in enumerate(words):
        if word in world.object_index:
            attribute = world.attribute_index.get(words[i - 1]) if i else None
            obj = world.object_index[word]
            if pairs.get(obj) is None:
                pairs[obj] = attribute
    return list(pairs.items())


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _query(world: SyntheticWorld, obj: int, attribute: int | None) -> np.ndarray:
    vector = world.object_prototypes[obj] + (0 if attribute is None else world.attribute_prototypes[attribute])
    return _normalise(vector)


def word_region_scores(features: np.ndarray, n_regions: np.ndarray, texts: list[str], world: SyntheticWorld) -> np.ndarray:
    """Word-region alignment with perfect word embeddings: sum over mentions of the best region's cosine
    with that mention's object + attribute prototype (TERAN's MrSw with the noun contextualised by its adjective).

    Args:
        features: (N, R, F) padded region features; n_regions: (N,) true counts; texts: C captions.
    """
    mentions = [parse_mentions(t, world) for t in texts]
    keys = sorted({m for ms in mentions for m in ms}, key=lambda m: (m[0], -1 if m[1] is None else m[1]))
    column = {m: p for p, m in enumerate(keys)}
    queries = np.stack([_query(world, *m) for m in keys])  # (P, F)
    sims = np.einsum("nrf,pf->npr", _normalise(features), queries)  # (N, P, R)
    sims[np.broadcast_to(np.arange(features.shape[1]) >= n_regions[:, None, None], sims.shape)] = -np.inf
    best = sims.max(axis=2)  # (N, P)
    incidence = np.zeros((len(keys), len(texts)), np.float32)  # (P, C)
    for c, ms in enumerate(mentions):
        incidence[[column[m] for m in ms], c] = 1
    return best @ incidence


def bag_of_classes_scores(features: np.ndarray, n_regions: np.ndarray, texts: list[str], world: SyntheticWorld) -> np.ndarray:
    """Bag of objects: how many of a caption's objects the image contains, each region labelled with its
    nearest object or background prototype. Blind to attributes and layout by construction."""
    prototypes = _normalise(np.concatenate([world.object_prototypes, world.background_prototypes]))  # (C_obj + G, F)
    labels = np.einsum("nrf,kf->nrk", _normalise(features), prototypes).argmax(axis=2)  # (N, R)
    present = np.zeros((len(features), len(prototypes)), np.float32)
    valid = np.arange(features.shape[1])[None, :] < n_regions[:, None]
    present[np.nonzero(valid)[0], labels[valid]] = 1
    wanted = np.zeros((len(texts), len(prototypes)), np.float32)
    for c, text in enumerate(texts):
        wanted[c, [obj for obj, _ in parse_mentions(text, world)]] = 1
    return present @ wanted.T


def bag_of_features_scores(features: np.ndarray, n_regions: np.ndarray, texts: list[str], world: SyntheticWorld) -> np.ndarray:
    """A global embedding: cosine of the image's mean region with the sum of the caption's mention prototypes."""
    valid = (np.arange(features.shape[1])[None, :] < n_regions[:, None])[..., None]
    image = _normalise((features * valid).sum(axis=1) / n_regions[:, None])  # (N, F)
    captions = _normalise(np.stack([sum(_query(world, *m) for m in parse_mentions(t, world)) for t in texts]))  # (C, F)
    return image @ captions.T


def retrieval_figures(scores: np.ndarray, caption_image: np.ndarray, image_group: np.ndarray, ks=(1, 5, 10)) -> dict:
    """Text-to-image figures of an (N, C) score matrix, ties broken at random (in expectation).

    Args:
        scores: (N, C) image-caption scores.
        caption_image: (C,) index of each caption's image.
        image_group: (N,) hard-negative group of each image.

    Returns:
        {"R@1", "R@5", "R@10": percent, "hard_negatives_beaten": percent of captions whose image scores
        strictly above every other image of its group}.

    Example:
        >>> s = np.array([[1.0, 0.0], [1.0, 2.0]])
        >>> retrieval_figures(s, np.array([0, 1]), np.array([0, 0]), ks=(1,))
        {'R@1': 75.0, 'hard_negatives_beaten': 50.0}
    """
    true = scores[caption_image, np.arange(scores.shape[1])]  # (C,)
    above = (scores > true).sum(axis=0)
    ties = (scores == true).sum(axis=0) - 1
    figures = {f"R@{k}": float(100 * np.mean(np.clip(k - above, 0, ties + 1) / (ties + 1))) for k in ks}
    same_group = image_group[:, None] == image_group[caption_image][None, :]  # (N, C)
    same_group[caption_image, np.arange(scores.shape[1])] = False
    beaten = ~((scores >= true) & same_group).any(axis=0)
    figures["hard_negatives_beaten"] = float(100 * beaten.mean())
    return figures
