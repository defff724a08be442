"""Training pairs, caption-indexed as in the reference: every caption of the split once per epoch,
each with its image (so an image appears once per caption).

Images are the heavy side (R x F features) and are streamed from their shards; captions are light,
so a split's captions are tokenised once into a :class:`CaptionIndex` that every reader holds, and
:class:`PairBuilder` attaches them to each streamed batch of images. No shuffle-join is needed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from teran_core.data import CaptionCollator, DatasetManifest, collate_images, load_split

__all__ = ["select_rows", "CaptionIndex", "PairBuilder", "collate_pairs"]


def select_rows(manifest: DatasetManifest, kind: str, ids: list[str], columns: list[str] | None = None) -> pa.Table:
    """The rows of ``kind`` ("images" or "captions") whose id is in ``ids``, in ``ids`` order.

    Shards are scanned with the id filter pushed down, so only matching rows are materialised.

    Raises:
        ValueError: an id that no shard holds (named, with how many are missing).
    """
    key = "image_id" if kind == "images" else "caption_id"
    locations = manifest.shard_locations(kind)
    dataset = pads.dataset([loc.path for loc in locations], format="parquet",
                           filesystem=locations[0].pyarrow_filesystem())
    wanted = pa.array(ids, pa.string())
    table = dataset.to_table(columns=columns, filter=pc.field(key).isin(wanted))
    order = pc.index_in(wanted, value_set=table.column(key))
    if order.null_count:
        missing = [ids[i] for i in np.flatnonzero(order.is_null().to_numpy(zero_copy_only=False))]
        raise ValueError(f"{manifest.location}: {len(missing)} {kind} id(s) of the split are in no shard, e.g. {missing[0]!r}")
    return table.take(order)


class CaptionIndex:
    """A split's tokenised captions grouped by image.

    Example:
        >>> index = CaptionIndex(["c1", "c2", "c3"], ["b", "a", "b"], pa.array([[101, 7, 102], [101, 102], [101, 8, 9, 102]]))
        >>> rows, caps = index.pairs(pa.array(["b", "x", "a"]))
        >>> rows.tolist(), [index.caption_ids[c] for c in caps]
        ([0, 0, 2], ['c1', 'c3', 'c2'])
    """

    def __init__(self, caption_ids: list[str], image_ids: list[str], input_ids: pa.Array):
        order = np.argsort(np.asarray(image_ids, dtype=object), kind="stable")
        sorted_images = pa.array(image_ids, pa.string()).take(pa.array(order))
        self.caption_ids = [caption_ids[i] for i in order]
        self.input_ids = input_ids.take(pa.array(order))  # list<int> per caption, grouped by image
        self.image_ids = pc.unique(sorted_images)  # sorted, unique
        first = pc.index_in(self.image_ids, value_set=sorted_images).to_numpy()
        self.starts = first.astype(np.int64)
        self.counts = np.diff(np.append(self.starts, len(order)))

    @classmethod
    def build(cls, manifest: DatasetManifest, split: str, collator: CaptionCollator, chunk: int = 4096) -> "CaptionIndex":
        """Tokenises every caption of ``split`` (texts read from the caption shards)."""
        _, caption_ids, _ = load_split(manifest.location, split)
        table = select_rows(manifest, "captions", caption_ids, ["caption_id", "image_id", "text"])
        pieces = []
        for start in range(0, table.num_rows, chunk):
            batch = collator(table.slice(start, chunk))
            ids, lengths = batch["input_ids"], batch["lengths"]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            flat = ids[np.arange(ids.shape[1])[None, :] < lengths[:, None]].astype(np.int32)
            pieces.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)))
        input_ids = pa.concat_arrays(pieces) if pieces else pa.array([], pa.list_(pa.int32()))
        return cls(table.column("caption_id").to_pylist(), table.column("image_id").to_pylist(), input_ids)

    def __len__(self) -> int:
        return len(self.caption_ids)

    def pairs(self, image_ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(image row, caption index) for every caption of the given images; images not in the split get none."""
        position = pc.index_in(image_ids, value_set=self.image_ids)
        rows = np.flatnonzero(position.is_valid().to_numpy(zero_copy_only=False))
        found = position.to_numpy(zero_copy_only=False)[rows].astype(np.int64)
        counts = self.counts[found]
        pair_rows = np.repeat(rows, counts)
        # caption k of image i sits at starts[i] + k
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return pair_rows, np.repeat(self.starts[found], counts) + within


class PairBuilder:
    """Ray Data ``map_batches`` callable: a batch of image rows -> one row per (image, caption) pair.

    Example:
        >>> from teran_core.data.schema import images_table
        >>> images = images_table(["a", "b"], np.array([1, 2]), np.ones((3, 2)), None, [None] * 2, [None] * 2)
        >>> index = CaptionIndex(["c1", "c2", "c3"], ["b", "a", "b"], pa.array([[101, 7, 102], [101, 102], [101, 8, 102]]))
        >>> PairBuilder(index)(images).column("caption_id").to_pylist()
        ['c2', 'c1', 'c3']
    """

    def __init__(self, index: CaptionIndex):
        self.index = index

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows, captions = self.index.pairs(batch.column("image_id"))
        pairs = batch.select(["image_id", "features", "boxes"]).take(pa.array(rows))
        pairs = pairs.append_column("caption_id", pa.array([self.index.caption_ids[c] for c in captions], pa.string()))
        return pairs.append_column("input_ids", self.index.input_ids.take(pa.array(captions)))


def collate_pairs(table: pa.Table) -> dict:
    """A batch of pair rows -> the model's inputs.

    Returns:
        collate_images' keys (features (B, R, F), boxes (B, R, 4), n_regions (B,)) plus
        "caption_id", "input_ids" (B, T) int64 right-padded with 0, "lengths" (B,).
    """
    out = collate_images(table)
    tokens = table.column("input_ids").combine_chunks()
    lengths = pc.list_value_length(tokens).to_numpy().astype(np.int64)
    input_ids = np.zeros((len(lengths), int(lengths.max(initial=0))), np.int64)
    input_ids[np.arange(input_ids.shape[1])[None, :] < lengths[:, None]] = tokens.flatten().to_numpy()
    out.update(caption_id=table.column("caption_id").to_pylist(), input_ids=input_ids, lengths=lengths)
    return out
