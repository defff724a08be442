"""Embedding shards: what the encode job writes and the index and evaluation read.

One parquet row per item. Shape notation: D embedding size, L the item's true number of token
slots (slot 0 = the global slot; images: regions + 1, captions: word pieces incl. [CLS]/[SEP]).

| column   | arrow type                           | meaning                                   |
| -------- | ------------------------------------ | ----------------------------------------- |
| id       | string                               | the source's image_id or caption_id       |
| length   | int32                                | L                                         |
| global   | fixed_size_list<float16|float32, D>  | tokens[0], L2-normalised                  |
| tokens   | list<fixed_size_list<float16|float32, D>> | (L, D), L2-normalised, slot 0 included |
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

__all__ = ["EMBEDDINGS_FORMAT_VERSION", "EmbeddingBatch", "embedding_schema", "to_table", "from_table"]

EMBEDDINGS_FORMAT_VERSION = 1
_ARROW_DTYPES = {"float16": pa.float16(), "float32": pa.float32()}


def embedding_schema(dim: int, dtype: str = "float16") -> pa.Schema:
    """The arrow schema of an embedding shard with ``dim``-wide vectors stored as ``dtype``."""
    if dtype not in _ARROW_DTYPES:
        raise ValueError(f"embedding dtype {dtype!r} is not supported; expected one of {sorted(_ARROW_DTYPES)}")
    vec = pa.list_(_ARROW_DTYPES[dtype], dim)
    return pa.schema([("id", pa.string()), ("length", pa.int32()), ("global", vec), ("tokens", pa.list_(vec))])


@dataclasses.dataclass
class EmbeddingBatch:
    """Token sets of N items, padded to the longest one (padding slots are zeros)."""

    ids: list[str]
    tokens: np.ndarray  # (N, Lmax, D)
    lengths: np.ndarray  # (N,) int, slot 0 included

    @property
    def global_vectors(self) -> np.ndarray:
        return self.tokens[:, 0]  # (N, D)

    def __len__(self) -> int:
        return len(self.ids)


def to_table(ids: list[str], tokens: np.ndarray, lengths: np.ndarray, dtype: str = "float16") -> pa.Table:
    """Builds an embedding shard table from padded token sets.

    Args:
        ids: N item ids.
        tokens: (N, Lmax, D) L2-normalised tokens; slots at or past an item's length are ignored.
        lengths: (N,) true lengths, slot 0 included.
        dtype: storage dtype, "float16" (default) or "float32".

    Example:
        >>> t = to_table(["a"], np.ones((1, 3, 2), np.float32), np.array([2]))
        >>> t.column("length").to_pylist(), t.column("tokens").to_pylist()
        ([2], [[[1.0, 1.0], [1.0, 1.0]]])
    """
    n, _, dim = tokens.shape
    if len(ids) != n or lengths.shape != (n,):
        raise ValueError(f"to_table: {len(ids)} ids, tokens {tokens.shape} and lengths {lengths.shape} disagree on N")
    lengths = lengths.astype(np.int32)
    np_dtype = np.dtype(dtype)
    valid = np.arange(tokens.shape[1])[None, :] < lengths[:, None]  # (N, Lmax)
    flat = tokens[valid].astype(np_dtype, copy=False).reshape(-1)  # (sum L * D,)
    vec_type = pa.list_(_ARROW_DTYPES[dtype], dim)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=_ARROW_DTYPES[dtype]), dim)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    token_lists = pa.ListArray.from_arrays(pa.array(offsets), vectors, type=pa.list_(vec_type))
    global_ = pa.FixedSizeListArray.from_arrays(
        pa.array(tokens[:, 0].astype(np_dtype).reshape(-1), type=_ARROW_DTYPES[dtype]), dim
    )
    return pa.Table.from_arrays(
        [pa.array(ids, pa.string()), pa.array(lengths), global_, token_lists],
        schema=embedding_schema(dim, dtype),
    )


def from_table(table: pa.Table, dtype: type = np.float32) -> EmbeddingBatch:
    """Reads an embedding shard table (or a slice of one) back into padded arrays.

    Example:
        >>> b = from_table(to_table(["a", "b"], np.ones((2, 3, 2), np.float32), np.array([1, 3])))
        >>> b.tokens.shape, b.lengths.tolist(), b.tokens[0, 1].tolist()
        ((2, 3, 2), [1, 3], [0.0, 0.0])
    """
    lengths = table.column("length").to_numpy().astype(np.int64)
    tokens_col = table.column("tokens").combine_chunks()
    dim = tokens_col.type.value_type.list_size
    flat = tokens_col.flatten().flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, dim)
    n, lmax = len(lengths), int(lengths.max()) if len(lengths) else 0
    out = np.zeros((n, lmax, dim), dtype)
    valid = np.arange(lmax)[None, :] < lengths[:, None]
    out[valid] = flat
    return EmbeddingBatch(ids=table.column("id").to_pylist(), tokens=out, lengths=lengths)
