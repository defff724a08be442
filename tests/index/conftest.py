"""Small random embedding sets written in the real layout (random L2-normalised token sets)."""

import numpy as np
import pytest

from teran_core.embedding_set import EmbeddingSet, write_embedding_side


def random_side(location, kind, shard_rows, dim=8, max_len=6, min_len=4, seed=0, row_group_rows=4):
    """Writes a side with ``shard_rows[s]`` items in shard s; returns (EmbeddingSet, tokens, lengths)."""
    rng = np.random.default_rng(seed)
    n = sum(shard_rows)
    tokens = rng.normal(size=(n, max_len, dim)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    tokens[np.arange(max_len)[None, :] >= lengths[:, None]] = 0.0
    tokens = tokens.astype(np.float16).astype(np.float32)  # what float16 storage gives back
    starts = np.concatenate([[0], np.cumsum(shard_rows)])
    shards = [([f"{kind[0]}{i}" for i in range(a, b)], tokens[a:b], lengths[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    write_embedding_side(location, kind, shards, row_group_rows=row_group_rows)
    return EmbeddingSet.open(location), tokens, lengths


@pytest.fixture
def make_side():
    return random_side
