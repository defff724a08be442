"""Centroid -> items inverted lists: the token part of an index over a compressed embedding set (docs/engine.md).

They replace the IVF-Flat token parts (``images-regions``, ``captions-words``): the centroid id of
every token is already in the compressed shards, so the index keeps no second copy of the vectors,
only ids. One file per embedding shard, built by one task each (``jobs/build_index.py``):

    <index>/<side>-centroids/shards/<stem>.npz
        first_item    ()       item index of the shard's row 0
        item_offsets  (n + 1,) int64: item i's content tokens are item_codes[item_offsets[i]:item_offsets[i+1]]
        item_codes    (T,)     int32 centroid id of every content token (the forward lists)
        list_offsets  (K + 1,) int64: centroid c's items are list_items[list_offsets[c]:list_offsets[c+1]]
        list_items    (P,)     int64 item indexes, each (centroid, item) once (the inverted lists)
"""

from __future__ import annotations

import io
import time

import numpy as np

from teran_core.embedding_set import EmbeddingSet, ShardInfo
from teran_core.index.layout import read_part_manifest
from teran_core.index.vectors import content_slots
from teran_core.storage import Location

__all__ = ["CentroidLists", "shard_lists", "build_lists_shard", "lists_file_name", "lists_choice"]


def lists_choice(emb: EmbeddingSet):
    """The part.json description of a centroids part over ``emb``.

    Raises:
        ValueError: ``emb`` stores fp16 tokens (there are no centroid ids to list).
    """
    from teran_core.index.factory import IndexChoice

    if not emb.compressed:
        raise ValueError(f"a {emb.kind}-centroids index part needs a compressed embedding set; {emb.location.uri} stores fp16 "
                         f"tokens: run 'teran compress' on it, or build {emb.kind}-{'regions' if emb.kind == 'images' else 'words'} instead")
    k = int(emb.manifest["codec"]["n_centroids"])
    return IndexChoice("centroids", reason=f"centroid -> items lists over the {k} centroids of the compressed set (no vector copy)")


def lists_file_name(embedding_shard: str) -> str:
    """``images-00003.parquet`` -> ``images-00003.npz``."""
    return embedding_shard.removesuffix(".parquet") + ".npz"


def shard_lists(lengths: np.ndarray, codes: np.ndarray, kind: str, first_item: int, n_centroids: int) -> dict[str, np.ndarray]:
    """The forward and inverted lists of one shard.

    Args:
        lengths: (n,) item lengths L (slot 0 included).
        codes: (sum(L - 1),) centroid ids of slots 1..L-1 of every item, item after item.
        kind: "images" or "captions" (which slots are content tokens).
        first_item: item index of row 0.
        n_centroids: K.

    Example:
        >>> lists = shard_lists(np.array([3, 2]), np.array([4, 1, 4]), "images", 10, 5)
        >>> lists["item_codes"].tolist(), lists["list_items"].tolist(), lists["list_offsets"].tolist()
        ([4, 1, 4], [10, 10, 11], [0, 0, 1, 1, 1, 3])
    """
    first, trailing = content_slots(kind)
    lengths = np.asarray(lengths, np.int64)
    stored = np.clip(lengths - 1, 0, None)  # codes per item: slots 1..L-1
    slot = np.arange(len(codes)) - np.repeat(np.cumsum(stored) - stored, stored) + 1  # (sum L-1,) slot of each code
    keep = (slot >= first) & (slot < np.repeat(lengths, stored) - trailing)
    owner = np.repeat(np.arange(len(lengths)), stored)[keep]
    item_codes = np.asarray(codes, np.int32)[keep]
    item_offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(lengths)))]).astype(np.int64)
    pairs = np.unique(item_codes.astype(np.int64) * len(lengths) + owner) if len(owner) else np.zeros(0, np.int64)
    list_codes, list_rows = pairs // max(len(lengths), 1), pairs % max(len(lengths), 1)
    list_offsets = np.concatenate([[0], np.cumsum(np.bincount(list_codes, minlength=n_centroids))]).astype(np.int64)
    return {"first_item": np.int64(first_item), "item_offsets": item_offsets, "item_codes": item_codes,
            "list_offsets": list_offsets, "list_items": list_rows + first_item}


def build_lists_shard(emb: EmbeddingSet, shard: ShardInfo, part_root: Location) -> dict:
    """Writes one shard's lists under ``part_root/shards``; returns its part.json entry."""
    start = time.perf_counter()
    table = emb.read_codes(shard)
    codes = table.column("codes").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    lists = shard_lists(table.column("length").to_numpy(), codes, emb.kind, shard.offset, int(emb.manifest["codec"]["n_centroids"]))
    buffer = io.BytesIO()
    np.savez(buffer, **lists)
    name = lists_file_name(shard.name)
    part_root.join("shards", name).write_bytes(buffer.getvalue())
    return {"name": name, "source": shard.name, "ntotal": int(len(lists["list_items"])), "tokens": int(len(lists["item_codes"])),
            "seconds": time.perf_counter() - start}


class CentroidLists:
    """A ``<side>-centroids`` part opened for stage one: the centroids, inverted lists and forward lists.

    Args:
        manifest: the part's part.json.
        centroids: (K, D) the embedding set's shared centroids.
        shards: per shard, the arrays of :func:`shard_lists`.
    """

    def __init__(self, manifest: dict, centroids: np.ndarray, shards: list[dict[str, np.ndarray]]):
        self.manifest = manifest
        self.centroids = np.ascontiguousarray(centroids, np.float32)
        self.shards = shards
        self._first = np.array([int(s["first_item"]) for s in shards], np.int64)  # (S,) shards in item order
        self.n_items = sum(len(s["item_offsets"]) - 1 for s in shards)
        occupied = np.zeros(len(self.centroids), bool)  # (K,) centroids holding a token of this side
        for shard in shards:
            occupied |= np.diff(shard["list_offsets"]) > 0
        # stage one scores a query against these alone (a third of all centroids for images at 100K), and the
        # forward lists are kept as positions among them, so no score of an unoccupied centroid is ever computed
        self.occupied_ids = np.flatnonzero(occupied)  # (K_o,)
        self.occupied_centroids = np.ascontiguousarray(self.centroids[self.occupied_ids])  # (K_o, D)
        position = np.full(len(self.centroids), -1, np.int32)
        position[self.occupied_ids] = np.arange(len(self.occupied_ids), dtype=np.int32)
        self._forward_codes = [position[s["item_codes"]] for s in shards]  # per shard (T_s,) occupied positions

    @classmethod
    def open(cls, part_root: Location, centroids: np.ndarray) -> "CentroidLists":
        """Reads part.json and every shard file (FileNotFoundError if the part is unfinished)."""
        manifest = read_part_manifest(part_root)
        shards = []
        for entry in manifest["shards"]:
            with np.load(io.BytesIO(part_root.join("shards", entry["name"]).read_bytes()), allow_pickle=False) as data:
                shards.append({key: data[key] for key in data.files})
        return cls(manifest, centroids, shards)

    @property
    def n_centroids(self) -> int:
        return len(self.centroids)

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def items_in(self, cells: np.ndarray) -> np.ndarray:
        """Sorted unique items of the inverted lists of ``cells`` (centroid ids)."""
        member = np.zeros(self.n_items, bool)  # (N,): marking is cheaper than np.unique over the lists' union
        for s in self.shards:
            for start, end in zip(s["list_offsets"][cells], s["list_offsets"][cells + 1]):
                member[s["list_items"][start:end]] = True
        return np.flatnonzero(member)

    def forward(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes (T,) of the content tokens of ``items`` (sorted), counts (n,) tokens per item); a code is the
        centroid's position in :attr:`occupied_ids`, the columns of scores against :attr:`occupied_centroids`."""
        shard_of = np.searchsorted(self._first, items, side="right") - 1
        codes, counts = [], []
        for s in np.unique(shard_of):
            shard = self.shards[s]
            rows = items[shard_of == s] - shard["first_item"]
            begin, end = shard["item_offsets"][rows], shard["item_offsets"][rows + 1]
            counts.append(end - begin)
            idx = np.repeat(begin - np.cumsum(end - begin) + (end - begin), end - begin) + np.arange(int((end - begin).sum()))
            codes.append(self._forward_codes[s][idx])
        counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        return (np.concatenate(codes) if codes else np.zeros(0, np.int32)), counts
