"""Batches for the encoders: padded region arrays from arrow without row loops, and WordPiece captions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from teran_core.data import CaptionCollator, collate_images
from teran_core.data.schema import captions_table, images_table
from teran_core.data.tokenizer import load_tokenizer


def make_images(counts, dim=3, dtype="float32", boxes=True):
    counts = np.array(counts)
    features = np.arange(counts.sum() * dim, dtype=np.float32).reshape(-1, dim)
    box = np.linspace(0, 1, counts.sum() * 4, dtype=np.float32).reshape(-1, 4) if boxes else None
    return images_table([f"i{k}" for k in range(len(counts))], counts, features, box, [10] * len(counts), [10] * len(counts), dtype), features, box


def expected_padded(counts, values, slots):
    out, start = np.zeros((len(counts), slots, values.shape[1]), np.float32), 0
    for i, n in enumerate(counts):
        out[i, :n] = values[start:start + n]
        start += n
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_images_are_padded_per_batch(dtype):
    table, features, boxes = make_images([2, 4, 1], dtype=dtype)
    batch = collate_images(table)
    assert batch["image_id"] == ["i0", "i1", "i2"] and batch["n_regions"].tolist() == [2, 4, 1]
    assert batch["features"].dtype == np.float32 and batch["features"].shape == (3, 4, 3)
    np.testing.assert_array_equal(batch["features"], expected_padded([2, 4, 1], features.astype(dtype), 4))
    np.testing.assert_array_equal(batch["boxes"], expected_padded([2, 4, 1], boxes, 4))


def test_slices_chunks_and_pad_to():
    table, features, boxes = make_images([2, 4, 1, 3])
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 3)])  # what Ray may hand over
    sliced = table.slice(1, 2)
    np.testing.assert_array_equal(collate_images(chunked)["features"], expected_padded([2, 4, 1, 3], features, 4))
    batch = collate_images(sliced, pad_to=6)
    assert batch["features"].shape == (2, 6, 3) and batch["image_id"] == ["i1", "i2"]
    np.testing.assert_array_equal(batch["boxes"], expected_padded([4, 1], boxes[2:7], 6))
    with pytest.raises(ValueError, match="pad_to=2 is smaller than an image's 4 regions"):
        collate_images(sliced, pad_to=2)


def test_no_boxes_and_list_of_lists():
    table, features, _ = make_images([2, 1], boxes=False)
    assert not collate_images(table)["boxes"].any()
    plain = table.set_column(2, "features", pa.array(table.column("features").to_pylist(), pa.list_(pa.list_(pa.float32()))))
    plain = plain.set_column(3, "boxes", pa.nulls(2))
    batch = collate_images(plain)
    np.testing.assert_array_equal(batch["features"], expected_padded([2, 1], features, 2))
    assert batch["boxes"].shape == (2, 2, 4) and not batch["boxes"].any()


def test_captions_match_the_tokenizer_and_pad_with_zero():
    texts = ["A red car to the left of a wooden table.", "A dog.", "Tiny"]
    batch = CaptionCollator()(captions_table(["c0", "c1", "c2"], ["a", "a", "b"], texts))
    tokenizer = load_tokenizer()
    for i, text in enumerate(texts):
        ids = tokenizer(text)["input_ids"]  # [CLS] ... [SEP]
        assert batch["lengths"][i] == len(ids)
        assert batch["input_ids"][i, :len(ids)].tolist() == ids and not batch["input_ids"][i, len(ids):].any()
    assert batch["input_ids"].dtype == np.int64 and batch["input_ids"].shape == (3, max(batch["lengths"]))
    assert batch["caption_id"] == ["c0", "c1", "c2"] and batch["truncated"] == 0


def test_long_captions_are_cut_to_the_backbone_maximum_and_counted():
    collator = CaptionCollator()
    assert collator.max_length == 512  # all-MiniLM-L6-v2's max_position_embeddings
    long_text = " ".join(["dog"] * 600)
    batch = collator(captions_table(["c0", "c1"], ["a", "a"], [long_text, "a cat"]))
    assert batch["truncated"] == 1 and batch["lengths"].tolist() == [512, 4]
    assert batch["input_ids"][0, 0] == 101 and batch["input_ids"][0, 511] == 102 and batch["input_ids"][0, 510] == 3899
