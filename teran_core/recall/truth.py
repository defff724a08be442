"""Ground truth of a split in item space: which indexed items answer which query.

Items are numbered as in the embedding set (and the index). An item the encode job rejected is
not in the embedding set: queries it would answer, or that it would ask, are left out and counted
(``missing``), never silently dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from teran_core.index.idmap import IdMap

__all__ = ["GroundTruth", "split_ground_truth", "load_ground_truth", "gt_mask"]

NO_ITEM = -2  # padding of ground-truth rows: never equal to an item index, nor to FAISS's -1


@dataclasses.dataclass
class GroundTruth:
    """A split's images and captions as item indexes, and which caption belongs to which image."""

    image_items: np.ndarray  # (n_images,) item index of each split image, in split order
    caption_items: np.ndarray  # (n_captions,) item index of each split caption, in split order
    caption_image: np.ndarray  # (n_captions,) split row (into image_items) of each caption's image
    missing: dict = dataclasses.field(default_factory=dict)  # side -> ids of split items absent from the embeddings

    def answers(self, query_side: str, rows: np.ndarray) -> np.ndarray:
        """(Q, G) item indexes answering each query (split rows of ``query_side``), padded with NO_ITEM.

        Example:
            >>> gt = GroundTruth(np.array([10, 11]), np.array([20, 21, 22]), np.array([0, 0, 1]))
            >>> gt.answers("images", np.array([0, 1])).tolist(), gt.answers("captions", np.array([2])).tolist()
            ([[20, 21], [22, -2]], [[11]])
        """
        rows = np.asarray(rows, dtype=np.int64)
        if query_side == "captions":
            return self.image_items[self.caption_image[rows]][:, None]
        per_image = [self.caption_items[self.caption_image == r] for r in rows]
        width = max((len(a) for a in per_image), default=0)
        out = np.full((len(rows), max(width, 1)), NO_ITEM, np.int64)
        for q, answer in enumerate(per_image):
            out[q, : len(answer)] = answer
        return out


def gt_mask(items: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """(Q, K) True where a listed item answers its query; ``answers`` from :meth:`GroundTruth.answers`."""
    return (items[:, :, None] == answers[:, None, :]).any(axis=2)


def split_ground_truth(image_ids: list[str], caption_ids: list[str], caption_image: np.ndarray,
                       images: IdMap, captions: IdMap) -> GroundTruth:
    """Maps a split (``teran_core.data.load_split`` output) onto the embedded items.

    Split images and captions missing from the embedding set are removed (captions of a missing
    image with them) and listed in ``missing``; row numbers are renumbered densely.

    Example:
        >>> gt = split_ground_truth(["a", "b"], ["a1", "b1", "b2"], np.array([0, 1, 1]),
        ...                         IdMap(["b", "a"]), IdMap(["b2", "a1"]))
        >>> gt.image_items.tolist(), gt.caption_items.tolist(), gt.caption_image.tolist(), gt.missing
        ([1, 0], [1, 0], [0, 1], {'images': [], 'captions': ['b1']})
    """
    image_known = np.array([i in images for i in image_ids], bool)
    caption_known = np.array([c in captions for c in caption_ids], bool) & image_known[caption_image]
    new_row = np.cumsum(image_known) - 1  # split row -> row among the kept images
    kept_images = [i for i, ok in zip(image_ids, image_known) if ok]
    kept_captions = [c for c, ok in zip(caption_ids, caption_known) if ok]
    return GroundTruth(
        image_items=images.index_of(kept_images),
        caption_items=captions.index_of(kept_captions),
        caption_image=new_row[caption_image[caption_known]],
        missing={"images": [i for i, ok in zip(image_ids, image_known) if not ok],
                 "captions": [c for c, ok in zip(caption_ids, caption_known) if not ok]},
    )


def load_ground_truth(dataset: str, split: str, index, storage=None) -> GroundTruth:
    """The ground truth of ``split`` of a teran dataset, mapped onto the items of an opened ``TeranIndex``."""
    from teran_core.data import load_split

    image_ids, caption_ids, caption_image = load_split(dataset, split, storage)
    return split_ground_truth(image_ids, caption_ids, caption_image, index.id_map("images"), index.id_map("captions"))
