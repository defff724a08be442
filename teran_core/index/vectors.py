"""The token vectors a token index holds, taken from embedding tables.

Token slots follow TERAN's alignment (reference ``models/loss.py``), so that a token index holds
exactly the tokens that alignment scores.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from teran_core.alignment import content_slots

__all__ = ["content_slots", "token_vectors"]


def token_vectors(table: pa.Table, first_slot: int = 1, trailing: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens ``first_slot .. L-1-trailing`` of every row, flattened for a multi-vector index.

    Returns:
        (vectors (T, D) float32, row (T,) int64 row of the owning item, slot (T,) int64).

    Example:
        >>> from teran_core.embedding_set import to_table
        >>> v, row, slot = token_vectors(to_table(["a", "b"], np.ones((2, 3, 2), np.float32), np.array([3, 2])))
        >>> v.shape, row.tolist(), slot.tolist()
        ((3, 2), [0, 0, 1], [1, 2, 1])
    """
    lengths = table.column("length").to_numpy().astype(np.int64)
    tokens = table.column("tokens").combine_chunks()
    dim = tokens.type.value_type.list_size
    flat = tokens.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)  # (sum L, D)
    row = np.repeat(np.arange(len(lengths)), lengths)
    slot = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = (slot >= first_slot) & (slot < np.repeat(lengths, lengths) - trailing)
    return flat[keep].astype(np.float32), row[keep], slot[keep]
