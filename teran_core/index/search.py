"""Searching a sharded index: every shard answers top-k, a heap merges them into the global top-k.

The merge is exact: each shard's top-k contains every member of the global top-k that lives in
that shard. The same :func:`merge_topk` merges results of shard groups searched in separate
processes (Ray tasks) at collection scale.

IVF shards are clones of one trained index, so they share the coarse quantizer: a query batch is
quantized once and every shard scans only the chosen lists (FAISS's ``search_preassigned``, as
``IndexShardsIVF`` does). Quantizing once per shard instead would make a query's cost grow with
the number of shards, i.e. linearly with the collection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from teran_core.index.factory import gpu_count
from teran_core.index.layout import read_faiss, read_part_manifest
from teran_core.storage import Location

__all__ = ["ShardedIndex", "check_queries", "merge_topk"]


def merge_topk(results: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merges per-shard ``(scores (Q, k_s), ids (Q, k_s))`` into the global top-k by score.

    Empty result slots (id -1) sort last. Uses FAISS's result heap.

    Example:
        >>> a = (np.array([[0.9, 0.2]], np.float32), np.array([[1, 2]]))
        >>> b = (np.array([[0.5, 0.1]], np.float32), np.array([[7, 8]]))
        >>> merge_topk([a, b], 3)[1].tolist()
        [[1, 7, 2]]
    """
    import faiss

    n_queries = results[0][0].shape[0]
    heap = faiss.ResultHeap(n_queries, k, keep_max=True)
    for scores, ids in results:
        heap.add_result(np.ascontiguousarray(scores, np.float32), np.ascontiguousarray(ids, np.int64))
    heap.finalize()
    return heap.D, heap.I


def check_queries(queries, dim: int, part: str) -> np.ndarray:
    """``queries`` as a contiguous (Q, dim) float32 array; ValueError naming the part if the shape is wrong."""
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries of shape {queries.shape}, expected (Q, {dim}) for index part {part}")
    return np.ascontiguousarray(queries, dtype=np.float32)


class ShardedIndex:
    """One part of an index (e.g. ``images-global``), its shards opened for search.

    Example (an index written by ``teran build-index``; tests/index/ has runnable round trips)::

        part = ShardedIndex.open(resolve("s3://bucket/index/coco").join("images-global"))
        scores, ids = part.search(caption_global_vectors, k=100)  # (Q, 100) each
    """

    def __init__(self, manifest: dict, shards: list):
        self.manifest = manifest
        self.shards = shards
        self.nprobe = int(manifest.get("nprobe", 0))
        self.ef_search = int(manifest.get("ef_search", 0))

    @classmethod
    def open(cls, part_root: Location, *, mmap: bool = True, shard_names: Sequence[str] | None = None,
             use_gpu: bool = False) -> "ShardedIndex":
        """Opens a part folder (``<index>/<part>``) written by the build.

        Args:
            part_root: the part folder.
            mmap: memory-map local shard files instead of reading them into RAM.
            shard_names: open only these shards (a Ray task searching its share); None = all.
            use_gpu: copy IVF/Flat shards onto the GPUs when faiss-gpu sees any.

        Raises:
            FileNotFoundError: the part.json or a shard file is missing.
        """
        manifest = read_part_manifest(part_root)
        names = [s["name"] for s in manifest["shards"]] if shard_names is None else list(shard_names)
        shards = [read_faiss(part_root.join("shards", name), mmap=mmap) for name in names]
        if use_gpu and gpu_count() and "HNSW" not in manifest["factory"]:
            import faiss

            shards = [faiss.index_cpu_to_all_gpus(s) for s in shards]
        return cls(manifest, shards)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def ntotal(self) -> int:
        return sum(int(s.ntotal) for s in self.shards)

    def probes(self, k: int) -> int:
        """IVF lists scanned for a top-k: the part's nprobe, raised until the lists scanned hold about 2k
        vectors on average (a K' of 1,000 over lists of a few dozen would otherwise come back short, as
        efSearch is raised to k for HNSW). 0 for a part that is not IVF.

        Example:
            >>> part = ShardedIndex({"factory": "IVF400,Flat", "nprobe": 8, "ntotal": 10_000}, [])
            >>> part.probes(10), part.probes(1000)
            (8, 80)
        """
        if not self.nprobe:
            return 0
        nlist = int(re.search(r"IVF(\d+)", self.manifest["factory"]).group(1))
        per_list = max(int(self.manifest["ntotal"]) / nlist, 1.0)
        return min(nlist, max(self.nprobe, math.ceil(2 * k / per_list)))

    def _params(self, k: int):
        import faiss

        if self.nprobe:
            return faiss.SearchParametersIVF(nprobe=self.probes(k))
        if self.ef_search:
            return faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
        return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Global top-k over all shards.

        Args:
            queries: (Q, D) float32 L2-normalised query vectors.
            k: results per query.

        Returns:
            (scores (Q, k) float32 inner products, ids (Q, k) int64 FAISS ids; -1 where fewer than k exist).

        Raises:
            ValueError: queries are not (Q, D) with this index's D.
        """
        import faiss

        queries = check_queries(queries, self.dim, self.manifest["name"])
        if self.nprobe and faiss.try_extract_index_ivf(self.shards[0]) is not None:  # CPU IVF shards
            return merge_topk(self._search_ivf(queries, k), k)
        params = self._params(k)
        results = [shard.search(queries, k, params=params) if params else shard.search(queries, k) for shard in self.shards]
        return merge_topk(results, k)

    def _search_ivf(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-shard top-k of IVF shards that share one coarse quantization of the queries."""
        import faiss
        from faiss.contrib.ivf_tools import search_preassigned

        first = self.shards[0]
        rotated = queries
        if isinstance(first, faiss.IndexPreTransform):  # OPQ: lists are chosen in the rotated space
            rotated = faiss.downcast_VectorTransform(first.chain.at(0)).apply(queries)
        quantizer = faiss.extract_index_ivf(first).quantizer
        nprobe = self.probes(k)
        coarse_scores, lists = quantizer.search(rotated, nprobe)  # (Q, nprobe) each
        for shard in self.shards:
            faiss.extract_index_ivf(shard).nprobe = nprobe
        return [search_preassigned(shard, queries, k, lists, coarse_scores) for shard in self.shards]
