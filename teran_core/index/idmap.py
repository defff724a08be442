"""FAISS ids and item ids.

A global-vector index stores the item index (0..N-1, embedding-set order) as its FAISS id. A
token (multi-vector) index packs the owning item and the token slot into one int64:
``item << SLOT_BITS | slot``, so a hit names its item without any lookup. Item indexes map to
item ids (image_id / caption_id strings) through per-shard parquet files written beside the index.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.storage import Location

__all__ = ["SLOT_BITS", "pack_token_ids", "token_owners", "IdMap", "write_id_shard"]

SLOT_BITS = 12  # up to 4095 token slots per item; bottom-up features have at most 100 regions


def pack_token_ids(items: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """FAISS ids of tokens: item index in the high bits, slot in the low ``SLOT_BITS``.

    Raises:
        ValueError: a slot does not fit in ``SLOT_BITS`` bits.

    Example:
        >>> ids = pack_token_ids(np.array([0, 5]), np.array([1, 36]))
        >>> token_owners(ids).tolist()
        [0, 5]
    """
    slots = np.asarray(slots, dtype=np.int64)
    if slots.size and (slots.min() < 0 or slots.max() >= 2**SLOT_BITS):
        raise ValueError(f"token slot {int(slots.max())} does not fit in {SLOT_BITS} bits (max {2**SLOT_BITS - 1})")
    return (np.asarray(items, dtype=np.int64) << SLOT_BITS) | slots


def token_owners(ids: np.ndarray) -> np.ndarray:
    """Item index of each packed token id; -1 (FAISS's "no result") stays -1."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.where(ids < 0, -1, ids >> SLOT_BITS)


def write_id_shard(location: Location, first_item: int, item_ids: list[str]) -> None:
    """Writes one shard's slice of the id map: items ``first_item ..`` and their ids."""
    table = pa.table({
        "item_index": pa.array(np.arange(first_item, first_item + len(item_ids), dtype=np.int64)),
        "item_id": pa.array(item_ids, pa.string()),
    })
    with location.atomic_write() as f:
        pq.write_table(table, f)


class IdMap:
    """Item index <-> item id for one side, read from the id shards in order.

    Example:
        >>> import tempfile
        >>> from teran_core.storage import resolve
        >>> root = resolve(tempfile.mkdtemp())
        >>> write_id_shard(root.join("a.parquet"), 0, ["img1", "img2"])
        >>> write_id_shard(root.join("b.parquet"), 2, ["img3"])
        >>> ids = IdMap.open(root, ["a.parquet", "b.parquet"])
        >>> ids.item_id(2), ids.index_of(["img2"]).tolist()
        ('img3', [1])
    """

    def __init__(self, item_ids: list[str]):
        self.item_ids = item_ids
        self._index: dict[str, int] | None = None

    @classmethod
    def open(cls, folder: Location, names: list[str]) -> "IdMap":
        """Concatenates the id shards ``names`` below ``folder``, checking they are contiguous."""
        ids: list[str] = []
        for name in names:
            table = pq.read_table(folder.join(name).path, filesystem=folder.pyarrow_filesystem())
            first = table.column("item_index").to_numpy()
            if len(first) and first[0] != len(ids):
                raise ValueError(f"{folder.join(name).uri} starts at item {first[0]}, expected {len(ids)}: id map shards out of order")
            ids.extend(table.column("item_id").to_pylist())
        return cls(ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def item_id(self, index: int) -> str:
        return self.item_ids[index]

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            self._index = {item: i for i, item in enumerate(self.item_ids)}
        return self._index

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._lookup()

    def index_of(self, item_ids: list[str]) -> np.ndarray:
        """Item indexes of ``item_ids``; raises KeyError naming the first unknown id."""
        missing = [i for i in item_ids if i not in self._lookup()]
        if missing:
            raise KeyError(f"item id {missing[0]!r} is not in this index ({len(missing)} unknown of {len(item_ids)})")
        return np.array([self._index[i] for i in item_ids], dtype=np.int64)
