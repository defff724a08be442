"""Batches for the encoders: images padded per batch, captions tokenised with the backbone's WordPiece.

Shape notation: B rows, R the batch's largest region count, F features, T the longest caption in tokens.
Both collators take pyarrow tables (Ray Data's ``batch_format="pyarrow"``): nested list columns are
flattened and reshaped in one step, never walked row by row.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pyarrow as pa

from teran_core.data.regions import as_array, inner_width, region_arrays
from teran_core.data.tokenizer import default_backbone_path, load_tokenizer

__all__ = ["collate_images", "CaptionCollator", "backbone_max_length"]


def _pad(counts: np.ndarray, values: np.ndarray, width: int, slots: int) -> np.ndarray:
    """(sum R, W) values laid end to end -> (B, slots, W) float32, zeros past each row's count."""
    out = np.zeros((len(counts), slots, width), np.float32)
    out[np.arange(slots)[None, :] < counts[:, None]] = values  # row-major order matches the end-to-end layout
    return out


def collate_images(table: pa.Table, pad_to: int | None = None) -> dict:
    """Pads an images batch to its longest image.

    Args:
        table: validated rows of the images schema (features list<fixed_size_list<float, F>>).
        pad_to: pad to this many regions instead of the batch maximum (it must not be smaller).

    Returns:
        {"image_id": list of B str, "features": (B, R, F) float32, "boxes": (B, R, 4) float32 (zeros
        when the dataset has no boxes), "n_regions": (B,) int64}; slots past n_regions are zeros.

    Example:
        >>> from teran_core.data.schema import images_table
        >>> t = images_table(["a", "b"], np.array([1, 2]), np.ones((3, 2)), None, [None] * 2, [None] * 2)
        >>> batch = collate_images(t)
        >>> batch["features"].shape, batch["boxes"].shape, batch["n_regions"].tolist(), batch["features"][0, 1].tolist()
        ((2, 2, 2), (2, 2, 4), [1, 2], [0.0, 0.0])
    """
    features = as_array(table.column("features"))
    regions = features.flatten()
    width = inner_width(features.type) or (len(regions[0]) if len(regions) else 0)
    counts, values = region_arrays(features, width)  # (B,), (sum R, F)
    slots = int(counts.max(initial=0)) if pad_to is None else pad_to
    if slots < counts.max(initial=0):
        raise ValueError(f"collate_images: pad_to={pad_to} is smaller than an image's {counts.max()} regions")
    boxes = as_array(table.column("boxes"))
    if pa.types.is_null(boxes.type):
        padded_boxes = np.zeros((len(counts), slots, 4), np.float32)
    else:
        padded_boxes = _pad(*region_arrays(boxes, 4), 4, slots)  # null rows stay zeros
    return {
        "image_id": table.column("image_id").to_pylist(),
        "features": _pad(counts, values, width, slots),
        "boxes": padded_boxes,
        "n_regions": counts,
    }


def backbone_max_length(path: str | None = None) -> int:
    """The text backbone's maximum sequence length (``max_position_embeddings`` in its config.json).

    Example:
        >>> backbone_max_length()
        512
    """
    with open(os.path.join(path or default_backbone_path(), "config.json"), encoding="utf-8") as f:
        return int(json.load(f)["max_position_embeddings"])


class CaptionCollator:
    """Tokenises caption batches as the reference does: ``[CLS] wp_1 .. wp_n [SEP]``, right-padded with 0.

    A caption longer than ``max_length`` word pieces keeps its first ``max_length - 1`` and ends in
    ``[SEP]``; each batch says how many were cut, for the job summary.

    Args:
        tokenizer_path: a BERT-family model folder; None for the packaged all-MiniLM-L6-v2.
        max_length: the most tokens per caption incl. [CLS]/[SEP]; None for the backbone's maximum (512).

    Example:
        >>> from teran_core.data.schema import captions_table
        >>> batch = CaptionCollator(max_length=4)(captions_table(["c1", "c2"], ["a", "a"], ["a red dog", "a dog"]))
        >>> batch["input_ids"].tolist(), batch["lengths"].tolist(), batch["truncated"]
        ([[101, 1037, 2417, 102], [101, 1037, 3899, 102]], [4, 4], 1)
    """

    def __init__(self, tokenizer_path: str | None = None, max_length: int | None = None):
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.max_length = max_length or backbone_max_length(tokenizer_path)
        if self.max_length < 2:
            raise ValueError(f"CaptionCollator: max_length={self.max_length} leaves no room for [CLS] and [SEP]")
        if self.tokenizer.pad_token_id != 0:
            raise ValueError(f"the tokenizer pads with id {self.tokenizer.pad_token_id}; TERAN's masks expect [PAD] = 0")

    def __call__(self, table: pa.Table) -> dict:
        """{"caption_id": list of B str, "input_ids": (B, T) int64, "lengths": (B,) int64 incl. [CLS]/[SEP], "truncated": int}."""
        encoded = self.tokenizer(table.column("text").to_pylist(), add_special_tokens=True, verbose=False)["input_ids"]
        cut = [i for i, ids in enumerate(encoded) if len(ids) > self.max_length]
        for i in cut:
            encoded[i] = encoded[i][: self.max_length - 1] + [self.tokenizer.sep_token_id]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        input_ids = np.zeros((len(encoded), int(lengths.max(initial=0))), np.int64)  # (B, T), 0 = [PAD]
        input_ids[np.arange(input_ids.shape[1])[None, :] < lengths[:, None]] = np.fromiter(
            itertools.chain.from_iterable(encoded), np.int64, int(lengths.sum()))
        return {"caption_id": table.column("caption_id").to_pylist(), "input_ids": input_ids, "lengths": lengths, "truncated": len(cut)}
