"""An index spread over searcher processes, so that no process maps more than a fixed share of it.

A process that searches a memory-mapped index keeps every page a query touched resident: searching
the whole index from one process makes its memory grow with the collection (at 100K images the one
evaluator reached 5.9 GiB, 0.9 GiB of it Python, torch and FAISS). Cut into groups of at most
``max_bytes`` of shard files, one group per searcher (a Ray actor in ``jobs/evaluate.py``), the
index costs each process a fixed share and the number of searchers grows with the collection.

The merge stays exact: every group's top-k holds every member of the global top-k that lives in
it, and :func:`~teran_core.index.search.merge_topk` merges them as it merges shards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from teran_core.index.catalog import TeranIndex
from teran_core.index.layout import PartSpec
from teran_core.index.search import ShardedIndex, check_queries, merge_topk
from teran_core.storage import StorageConfig

__all__ = ["FanOutIndex", "ShardGroup", "ShardGroupSearcher", "shard_groups"]

ShardGroup = dict[str, list[str]]  # part name -> the shard file names of that part in the group


def shard_groups(index: TeranIndex, max_bytes: int) -> list[ShardGroup]:
    """Every shard of every part, in consecutive groups of at most ``max_bytes`` of shard files.

    A shard larger than ``max_bytes`` makes a group alone. Groups may mix parts. Centroids parts are
    left out: they hold ids only, and each evaluator opens them itself (:meth:`TeranIndex.part`).

    Example:
        >>> groups = shard_groups(TeranIndex.open("/data/index"), 2**30)  # doctest: +SKIP
        >>> groups[0]  # doctest: +SKIP
        {'captions-global': ['captions-00000.faiss', ...], 'captions-words': ['captions-00000.faiss']}
    """
    groups: list[ShardGroup] = []
    used = max_bytes  # start a new group at the first shard
    for part in (name for name in index.part_names if PartSpec.from_name(name).vectors != "centroids"):
        for shard in index.part_manifest(part)["shards"]:
            size = index.root.join(part, "shards", shard["name"]).size()
            if used + size > max_bytes:
                groups.append({})
                used = 0
            groups[-1].setdefault(part, []).append(shard["name"])
            used += size
    return groups


class ShardGroupSearcher:
    """Opens one shard group of an index and searches it: what one searcher actor holds.

    Args:
        index: the index folder (a :class:`TeranIndex` or its URI).
        group: the shards to open, by part (from :func:`shard_groups`).
        storage: object-store settings for a URI.

    Example::

        searcher = ShardGroupSearcher("s3://bucket/index/coco", shard_groups(index, 2**30)[0])
        scores, ids = searcher.search("images-regions", word_vectors, 128)  # this group's top-128
    """

    def __init__(self, index: TeranIndex | str, group: ShardGroup, storage: StorageConfig | None = None):
        index = TeranIndex.open(index, storage) if isinstance(index, str) else index
        self.parts = {part: ShardedIndex.open(index.root.join(part), shard_names=names) for part, names in group.items()}

    def vectors(self) -> int:
        """The vectors this searcher holds (opening them is what a searcher actor's start-up waits for)."""
        return sum(part.ntotal for part in self.parts.values())

    def search(self, part: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """This group's top-k of ``part`` (see :meth:`ShardedIndex.search`)."""
        return self.parts[part].search(queries, k)


class FanOutIndex:
    """One index part whose shard groups are searched elsewhere; the same ``search`` as :class:`ShardedIndex`.

    Args:
        manifest: the part's part.json (its name and dim check the queries).
        search_groups: ``(queries, k) -> [(scores, ids), ...]``, the top-k of every group holding the part,
            e.g. Ray calls to its searcher actors made at once and gathered.

    Example (searchers in this process; jobs/evaluate.py uses actors)::

        searchers = [ShardGroupSearcher(index, g) for g in shard_groups(index, 2**30)]
        part = FanOutIndex(manifest, lambda q, k: [s.search("images-global", q, k) for s in searchers])
        scores, ids = part.search(caption_global_vectors, 100)  # as ShardedIndex.search
    """

    def __init__(self, manifest: dict, search_groups: Callable[[np.ndarray, int], Sequence[tuple[np.ndarray, np.ndarray]]]):
        self.manifest = manifest
        self.search_groups = search_groups

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Global top-k over every group: (scores (Q, k), ids (Q, k)), as :meth:`ShardedIndex.search`."""
        queries = check_queries(queries, int(self.manifest["dim"]), self.manifest["name"])
        return merge_topk(self.search_groups(queries, k), k)
