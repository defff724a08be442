"""Choosing a FAISS index type from the collection size and a memory budget, as autofaiss does.

Exact (Flat) up to ``flat_max`` vectors; HNSW up to ``hnsw_max`` when it fits (off by default); IVF-Flat
when the raw vectors fit; otherwise IVF-PQ with an OPQ rotation, with the most bytes per vector that fit.

Every part is cut into one index shard per embedding shard and a query searches them all. Flat and
IVF shards keep that cheap (Flat costs the same per vector however it is cut; IVF shards share one
coarse quantization), but HNSW does not: each shard is its own graph, so a query pays one graph
search per shard, linear in the collection. Measured at 170K images (85 shards, D = 128, one
thread, docs/scaling.md §1): one caption's top-200 over the image vectors took 23.6 ms over 85 HNSW
graphs and 4.7 ms over Flat, and one image's top-1000 over 850K caption vectors 124.7 against 20.9 ms.
Hence Flat up to 1M vectors and no HNSW unless asked for.
Every index is inner product on L2-normalised vectors (cosine). Sizes follow FAISS's guidelines
(the FAISS wiki, "Guidelines to choose an index"): nlist ~ 4*sqrt(N) as a power of two, an HNSW coarse quantizer from 2^14 lists,
and training on 30-256 points per list.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["IndexChoice", "choose_index", "gpu_count", "ivf_lists"]

HNSW_M = 32  # graph degree: FAISS's usual default, 2*M int32 links per vector on level 0
PQ_CODE_BYTES = (64, 48, 32, 24, 16, 12, 8, 4)  # candidate PQ code sizes, most accurate first
TRAIN_POINTS_PER_LIST = 64  # k-means points per IVF list (FAISS warns below 39)
PQ_TRAIN_POINTS = 256 * 39  # 256 centroids per sub-quantizer, 39 points each
ID_BYTES = 8  # one int64 id per vector


@dataclasses.dataclass(frozen=True)
class IndexChoice:
    """A FAISS ``index_factory`` string with its search parameters and the reason it was chosen."""

    factory: str
    nprobe: int = 0  # IVF lists scanned per query; 0 = not an IVF index
    ef_search: int = 0  # HNSW search breadth (raised to k at search time); 0 = no HNSW graph
    train_points: int = 0  # vectors to train on; 0 = needs no training
    estimated_bytes: int = 0  # index size in memory
    reason: str = ""

    @property
    def is_ivf(self) -> bool:
        return "IVF" in self.factory


def ivf_lists(n_vectors: int) -> int:
    """Number of IVF lists for N vectors: 4*sqrt(N) as a power of two, with >= 39 training points per list.

    Example:
        >>> ivf_lists(1_000_000), ivf_lists(3_600_000)
        (4096, 8192)
    """
    target = 4 * math.sqrt(max(n_vectors, 1))
    lists = 2 ** round(math.log2(target))
    while lists > 16 and lists * 39 > n_vectors:
        lists //= 2
    return max(lists, 1)


def _ivf_prefix(n_lists: int) -> str:
    # a flat coarse quantizer costs N * nlist * D per add; an HNSW one keeps adds ~linear in N
    return f"IVF{n_lists}_HNSW32" if n_lists >= 2**14 else f"IVF{n_lists}"


def _default_nprobe(n_lists: int) -> int:
    return int(min(n_lists, max(8, min(256, n_lists // 64))))


def choose_index(
    n_vectors: int,
    dim: int,
    memory_budget_bytes: int,
    *,
    factory: str = "auto",
    flat_max: int = 1_000_000,
    hnsw_max: int = 0,
) -> IndexChoice:
    """Picks the index for ``n_vectors`` vectors of size ``dim`` within a memory budget.

    Args:
        n_vectors: vectors the index will hold.
        dim: vector size D.
        memory_budget_bytes: the most memory the index may take.
        factory: "auto", or a FAISS index_factory string that overrides the choice.
        flat_max: at or below this many vectors, exact search (if it fits).
        hnsw_max: at or below this many vectors, HNSW (if it fits); 0 disables HNSW.

    Returns:
        The :class:`IndexChoice`.

    Raises:
        ValueError: even the smallest compressed index does not fit the budget.

    Example:
        >>> choose_index(50_000, 64, 2**30).factory
        'Flat'
        >>> choose_index(500_000, 64, 2**30).factory
        'Flat'
        >>> choose_index(500_000, 64, 2**30, flat_max=100_000, hnsw_max=1_000_000).factory
        'HNSW32'
        >>> choose_index(3_600_000, 64, 2**30).factory
        'IVF8192,Flat'
        >>> choose_index(50_000_000, 64, 2**30).factory
        'OPQ8_64,IVF32768_HNSW32,PQ8'
    """
    flat_bytes = n_vectors * (4 * dim + ID_BYTES)
    if factory != "auto":
        return _override(factory, n_vectors, flat_bytes)
    if n_vectors <= flat_max and flat_bytes <= memory_budget_bytes:
        return IndexChoice("Flat", estimated_bytes=flat_bytes, reason=f"{n_vectors} <= flat_max {flat_max}: exact search")
    hnsw_bytes = flat_bytes + n_vectors * 2 * HNSW_M * 4
    if n_vectors <= hnsw_max and hnsw_bytes <= memory_budget_bytes:
        return IndexChoice(
            f"HNSW{HNSW_M}", ef_search=128, estimated_bytes=hnsw_bytes,
            reason=f"{n_vectors} <= hnsw_max {hnsw_max} and the graph fits the budget",
        )
    lists = ivf_lists(n_vectors)
    centroid_bytes = lists * dim * 4 * (2 if lists >= 2**14 else 1)
    ivf_flat_bytes = flat_bytes + centroid_bytes
    common = dict(nprobe=_default_nprobe(lists), train_points=min(n_vectors, TRAIN_POINTS_PER_LIST * lists))
    if ivf_flat_bytes <= memory_budget_bytes:
        return IndexChoice(
            f"{_ivf_prefix(lists)},Flat", estimated_bytes=ivf_flat_bytes, **common,
            reason=f"raw vectors fit the budget ({ivf_flat_bytes / 2**30:.2f} GiB)",
        )
    for code in (c for c in PQ_CODE_BYTES if dim % c == 0 and c < dim):
        pq_bytes = n_vectors * (code + ID_BYTES) + centroid_bytes + dim * dim * 4
        if pq_bytes <= memory_budget_bytes:
            common["train_points"] = min(n_vectors, max(common["train_points"], PQ_TRAIN_POINTS))
            return IndexChoice(
                f"OPQ{code}_{dim},{_ivf_prefix(lists)},PQ{code}", estimated_bytes=pq_bytes, **common,
                reason=f"raw vectors need {ivf_flat_bytes / 2**30:.2f} GiB > budget: compressed to {code} B/vector",
            )
    smallest = n_vectors * (min(PQ_CODE_BYTES) + ID_BYTES) + centroid_bytes
    raise ValueError(
        f"no index of {n_vectors} vectors (D={dim}) fits a memory budget of {memory_budget_bytes / 2**30:.2f} GiB; "
        f"the smallest (PQ{min(PQ_CODE_BYTES)}) needs about {smallest / 2**30:.2f} GiB: raise index.memory_budget_gb"
    )


def _override(factory: str, n_vectors: int, flat_bytes: int) -> IndexChoice:
    """An explicit factory string: its search parameters follow from what it contains."""
    lists = next((int(tok[3:].split("_")[0]) for tok in factory.split(",") if tok.startswith("IVF")), 0)
    needs_pq = "PQ" in factory
    train = min(n_vectors, max(TRAIN_POINTS_PER_LIST * lists, PQ_TRAIN_POINTS if needs_pq else 0))
    return IndexChoice(
        factory,
        nprobe=_default_nprobe(lists) if lists else 0,
        ef_search=128 if factory.startswith("HNSW") else 0,
        train_points=train,
        estimated_bytes=flat_bytes,
        reason="index.factory override",
    )


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu or without a visible GPU."""
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
