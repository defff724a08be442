"""Sharded FAISS indexes over embedding sets: type selection, build, search, id maps, candidates."""

from teran_core.index.catalog import TeranIndex
from teran_core.index.factory import IndexChoice, choose_index
from teran_core.index.idmap import IdMap, pack_token_ids, token_owners
from teran_core.index.layout import PartSpec
from teran_core.index.run import build_index
from teran_core.index.search import ShardedIndex, merge_topk

__all__ = [
    "IdMap", "IndexChoice", "PartSpec", "ShardedIndex", "TeranIndex", "build_index", "choose_index", "merge_topk",
    "pack_token_ids", "token_owners",
]
