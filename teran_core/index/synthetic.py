"""Grounded synthetic embeddings: token sets with TERAN's structure, for index benchmarks and tests.

No model is involved. The procedure (all vectors L2-normalised, D dims, one seed):

- a world of ``concepts`` random unit vectors, ``function_words`` shared "stop word" vectors and a
  modality direction u: image tokens get + ``modality_gap`` * u, caption tokens - ``modality_gap`` * u
  (before normalising), so unrelated regions and words have negative cosine, as in trained
  cross-modal models (the "modality gap"); without it, every extra word of a caption would add
  the positive best-of-36-regions noise to its MrSw score and long captions would win image->text;
- image i: ``regions`` regions, region r = concept c_r + ``region_noise`` * N(0, I/D), with the
  concepts c_r drawn at random; its first ``salient`` regions are its main objects; slot 0
  (global) = mean of the salient regions + ``global_noise`` * N(0, I/D);
- caption k of image i: W words (W uniform in ``words``); with probability ``grounded`` a word is
  a region of the image (a salient one with probability ``salient_share``, else any) plus
  ``word_noise`` * N(0, I/D), else a function word; slots are [CLS] w_1..w_W "." [SEP];
  slot 0 = mean of the grounded words + ``global_noise`` * N(0, I/D).

So word-region alignment (MrSw) finds a caption's image from its grounded words, while the global
vectors, blurred by the mean and the noise, rank it less sharply: the gap two-stage retrieval closes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from teran_core.config import knob
from teran_core.embedding_set import EmbeddingSideWriter
from teran_core.storage import Location

__all__ = ["GroundedSpec", "grounded_shard", "write_grounded_embeddings"]


@dataclasses.dataclass
class GroundedSpec:
    """Size and difficulty of a grounded synthetic collection."""

    images: int = knob(1000, ge=1)
    captions_per_image: int = knob(5, ge=1)
    dim: int = knob(64, ge=2)  # D
    regions: int = knob(36, ge=1)  # regions per image (as bottom-up features_36)
    words: tuple[int, int] = (8, 14)  # words per caption, inclusive range
    concepts: int = knob(300, ge=1)  # distinct region concepts: few enough that images share them (hard negatives)
    function_words: int = knob(20, ge=2)  # shared ungrounded word vectors (the first two also serve as "." and [SEP])
    grounded: float = knob(0.7, ge=0, le=1)  # share of words that describe a region of the image
    salient: int = knob(6, ge=1)  # main regions of an image: what its global vector and most words describe
    salient_share: float = knob(0.8, ge=0, le=1)  # share of grounded words about a salient region
    region_noise: float = knob(0.3, ge=0)  # what tells two regions of one concept apart
    word_noise: float = knob(1.0, ge=0)  # how loosely a word describes its region
    global_noise: float = knob(0.3, ge=0)
    modality_gap: float = knob(0.3, ge=0)  # image tokens + gap * u, caption tokens - gap * u
    images_per_shard: int = knob(10_000, ge=1)
    seed: int = knob(0, ge=0)

    def check(self) -> list[str]:
        if not 1 <= self.words[0] <= self.words[1]:
            return [f"words: got {self.words}, expected (min, max) with 1 <= min <= max"]
        return []


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _noise(rng: np.random.Generator, shape: tuple, scale: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * (scale / np.sqrt(shape[-1]))


def grounded_shard(spec: GroundedSpec, shard: int):
    """Images and captions of one shard: ((ids, tokens, lengths), (ids, tokens, lengths), caption image index)."""
    world = np.random.default_rng([spec.seed, 0])
    concepts = _unit(world.standard_normal((spec.concepts, spec.dim), dtype=np.float32))
    function_words = _unit(world.standard_normal((spec.function_words, spec.dim), dtype=np.float32))
    gap = spec.modality_gap * _unit(world.standard_normal(spec.dim, dtype=np.float32))  # (D,)
    rng = np.random.default_rng([spec.seed, 1, shard])
    first = shard * spec.images_per_shard
    n = min(spec.images_per_shard, spec.images - first)
    regions = _unit(concepts[rng.integers(0, spec.concepts, (n, spec.regions))] + _noise(rng, (n, spec.regions, spec.dim), spec.region_noise))
    images = np.empty((n, spec.regions + 1, spec.dim), np.float32)  # (B, R+1, D)
    images[:, 1:] = _unit(regions + gap)
    images[:, 0] = _unit(images[:, 1:spec.salient + 1].mean(1) + _noise(rng, (n, spec.dim), spec.global_noise))

    m, lo, hi = n * spec.captions_per_image, spec.words[0], spec.words[1]
    owner = np.repeat(np.arange(n), spec.captions_per_image)  # (M,) image row of each caption
    n_words = rng.integers(lo, hi + 1, m)
    is_grounded = rng.random((m, hi)) < spec.grounded  # (M, W)
    about = np.where(rng.random((m, hi)) < spec.salient_share, rng.integers(0, min(spec.salient, spec.regions), (m, hi)),
                     rng.integers(0, spec.regions, (m, hi)))  # (M, W) region each word would describe
    region_words = regions[owner[:, None], about]  # (M, W, D)
    text_function_words = _unit(function_words - gap)
    words = np.where(is_grounded[..., None], _unit(_unit(region_words + _noise(rng, (m, hi, spec.dim), spec.word_noise)) - gap),
                     text_function_words[rng.integers(0, spec.function_words, (m, hi))])
    valid = np.arange(hi)[None, :] < n_words[:, None]  # (M, W)
    weight = (is_grounded & valid)[..., None]
    captions = np.zeros((m, hi + 3, spec.dim), np.float32)  # (M, [CLS] + W + "." + [SEP], D)
    captions[:, 1:hi + 1] = np.where(valid[..., None], words, 0.0)
    rows = np.arange(m)
    captions[rows, n_words + 1] = text_function_words[0]  # the final "." piece
    captions[rows, n_words + 2] = text_function_words[1]  # [SEP]
    pooled = (words * weight).sum(1) + (weight.sum(1) == 0) * words[:, 0]  # a caption with no grounded word pools its first
    captions[:, 0] = _unit(pooled + _noise(rng, (m, spec.dim), spec.global_noise))
    image_ids = [f"img{first + i:08d}" for i in range(n)]
    caption_ids = [f"cap{first + i:08d}-{k}" for i in range(n) for k in range(spec.captions_per_image)]
    return (image_ids, images, np.full(n, spec.regions + 1)), (caption_ids, captions, n_words + 3), first + owner


def write_grounded_embeddings(root: Location, spec: GroundedSpec, dtype: str = "float16") -> np.ndarray:
    """Writes ``<root>/images`` and ``<root>/captions`` shard by shard; returns (M,) caption -> image index.

    Example:
        >>> import tempfile
        >>> from teran_core.embedding_set import EmbeddingSet
        >>> from teran_core.storage import resolve
        >>> root = resolve(tempfile.mkdtemp())
        >>> owner = write_grounded_embeddings(root, GroundedSpec(images=3, captions_per_image=2, dim=8, regions=4))
        >>> owner.tolist(), len(EmbeddingSet.open(root.join("captions")))
        ([0, 0, 1, 1, 2, 2], 6)
    """
    model = {"name": "grounded-synthetic", "spec": dataclasses.asdict(spec)}
    writers = [EmbeddingSideWriter(root.join(side), side, dtype=dtype, model=model) for side in ("images", "captions")]
    owners = []
    for shard in range(-(-spec.images // spec.images_per_shard)):
        images, captions, owner = grounded_shard(spec, shard)
        writers[0].add(*images)
        writers[1].add(*captions)
        owners.append(owner)
    for writer in writers:
        writer.finish()
    return np.concatenate(owners)
