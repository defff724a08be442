"""Building a sharded index: train once on a sample, then add each embedding shard separately.

Every shard index is a clone of the same trained empty index, so IVF shards share one coarse
quantizer (and OPQ rotation / PQ codebooks) and their results merge exactly. These are plain
functions over one shard each; ``jobs/build_index.py`` runs them as Ray tasks.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from teran_core.embedding_set import EmbeddingSet, ShardInfo, global_vectors
from teran_core.index.factory import IndexChoice, gpu_count
from teran_core.index.idmap import pack_token_ids, token_owners
from teran_core.index.layout import PartSpec, shard_index_name, write_faiss, write_json
from teran_core.index.vectors import content_slots, token_vectors
from teran_core.storage import Location

__all__ = [
    "vectors_per_item", "plan_part", "part_vectors", "training_sample", "train_index", "add_vectors",
    "build_shard", "set_threads", "train_part", "write_part_manifest", "build_part",
]

NORM_TOLERANCE = 0.02  # float16 storage keeps unit norms within ~1e-3; 2e-2 flags unnormalised input


def vectors_per_item(emb: EmbeddingSet, spec: PartSpec) -> np.ndarray:
    """(N,) vectors each item adds to a part: 1, or its content tokens (reads only ``length``)."""
    if spec.vectors == "global":
        return np.ones(len(emb), np.int64)
    first, trailing = content_slots(emb.kind)
    lengths = np.concatenate([t.column("length").to_numpy() for _, t in emb.iter_shards(["length"])])
    return np.clip(lengths.astype(np.int64) - first - trailing, 0, None)


def plan_part(emb: EmbeddingSet, spec: PartSpec, section) -> IndexChoice:
    """The index for one part: ``section.choose`` (an :class:`~teran_core.index.config.IndexSection`) on its size;
    centroid lists for a centroids part."""
    if spec.vectors == "centroids":
        from teran_core.index.centroid_lists import lists_choice

        return lists_choice(emb)
    return section.choose(int(vectors_per_item(emb, spec).sum()), part_dim(emb, spec))


def part_dim(emb: EmbeddingSet, spec: PartSpec) -> int:
    """The width of a part's vectors: G for a global part (a prototype head's K), D for tokens and centroids."""
    return emb.global_dim if spec.vectors == "global" else emb.dim


def part_vectors(table: pa.Table, spec: PartSpec, kind: str, first_item: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, D) float32, FAISS ids (n,) int64) of an embedding table whose row 0 is item ``first_item``."""
    if spec.vectors == "global":
        vectors = global_vectors(table)
        return vectors, np.arange(first_item, first_item + len(vectors), dtype=np.int64)
    vectors, rows, slots = token_vectors(table, *content_slots(kind))
    return vectors, pack_token_ids(first_item + rows, slots)


def training_sample(emb: EmbeddingSet, spec: PartSpec, n_points: int, seed: int = 0) -> np.ndarray:
    """``n_points`` vectors (or all there are) from whole items drawn uniformly at random."""
    counts = vectors_per_item(emb, spec)
    order = np.random.default_rng(seed).permutation(len(emb))
    n_items = int(np.searchsorted(np.cumsum(counts[order]), n_points)) + 1
    vectors, _ = part_vectors(emb.fetch_table(np.sort(order[:n_items])), spec, emb.kind, 0)
    return vectors[:n_points]


def _check_vectors(vectors: np.ndarray, dim: int, where: str, rows: np.ndarray | None = None) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"{where}: vectors of shape {vectors.shape}, expected (n, {dim})")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if bad.size:
        first = f"row {int(rows[bad[0]])}" if rows is not None else f"vector {int(bad[0])}"
        raise ValueError(
            f"{where}: {first} has norm {norms[bad[0]]:.4f} ({bad.size} of {len(norms)} vectors not unit length); "
            f"the index uses inner product as cosine, so embeddings must be L2-normalised (re-encode them)"
        )
    return vectors


def train_index(choice: IndexChoice, sample: np.ndarray, dim: int, use_gpu: bool = True):
    """An empty, trained index that takes explicit int64 ids.

    Args:
        choice: the index type (see :func:`teran_core.index.factory.choose_index`).
        sample: (n, D) L2-normalised training vectors (ignored by indexes that need no training).
        dim: D.
        use_gpu: run k-means on the GPUs when faiss-gpu sees any.

    Raises:
        ValueError: a bad factory string, or too few training points.
    """
    import faiss

    try:
        index = faiss.index_factory(dim, choice.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise ValueError(f"index.factory {choice.factory!r} is not a valid FAISS index_factory string: {err}") from None
    if not index.is_trained:
        sample = _check_vectors(sample, dim, "training sample")
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None and len(sample) < ivf.nlist:
            raise ValueError(f"{choice.factory}: {len(sample)} training vectors for {ivf.nlist} lists; need at least {ivf.nlist}")
        if ivf is not None and use_gpu and gpu_count():
            ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))  # the FAISS wiki's GPU k-means
        index.train(sample)
    if faiss.try_extract_index_ivf(index) is None:
        index = faiss.IndexIDMap(index)  # Flat and HNSW number vectors 0..n-1 otherwise
    return index


def add_vectors(trained, vectors: np.ndarray, ids: np.ndarray, where: str = "shard", rows: np.ndarray | None = None):
    """A clone of the trained empty index holding ``vectors`` under ``ids``.

    Raises:
        ValueError: a vector is not unit length (named by ``where`` and its row in ``rows``).
    """
    import faiss

    index = faiss.clone_index(trained)
    index.add_with_ids(_check_vectors(vectors, index.d, where, rows), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def build_shard(emb: EmbeddingSet, shard: ShardInfo, spec: PartSpec, trained, part_root: Location) -> dict:
    """Adds one embedding shard into its own index shard and writes it under ``part_root/shards``.

    Returns:
        The part.json entry of the shard: name, source shard, ntotal, seconds.
    """
    start = time.perf_counter()
    columns = ["global"] if spec.vectors == "global" else ["length", "tokens"]
    vectors, ids = part_vectors(emb.read_shard(shard, columns), spec, emb.kind, shard.offset)
    rows = (token_owners(ids) if spec.vectors == "tokens" else ids) - shard.offset
    index = add_vectors(trained, vectors, ids, where=emb.location.join(shard.name).uri, rows=rows)
    name = shard_index_name(shard.name)
    write_faiss(index, part_root.join("shards", name))
    return {"name": name, "source": shard.name, "ntotal": int(index.ntotal), "seconds": time.perf_counter() - start}


def write_part_manifest(part_root: Location, spec: PartSpec, choice: IndexChoice, dim: int,
                        shards: list[dict], train: dict) -> dict:
    """Writes ``part.json`` after every shard exists; returns it."""
    manifest = {
        "name": spec.name, "side": spec.side, "vectors": spec.vectors, "factory": choice.factory,
        "reason": choice.reason, "metric": "inner_product", "dim": dim, "nprobe": choice.nprobe,
        "ef_search": choice.ef_search, "ntotal": sum(s["ntotal"] for s in shards), "shards": shards, "train": train,
    }
    write_json(part_root.join("part.json"), manifest)
    return manifest


def set_threads(n: int) -> None:
    """FAISS's OpenMP threads for this process (a Ray task's CPU share); 0 leaves the default."""
    import faiss

    if n > 0:
        faiss.omp_set_num_threads(n)


def train_part(emb: EmbeddingSet, spec: PartSpec, choice: IndexChoice, part_root: Location,
               use_gpu: bool = True, seed: int = 0) -> tuple[object, dict]:
    """Samples, trains and writes ``trained.faiss``; returns (trained index, train summary)."""
    start = time.perf_counter()
    sample = training_sample(emb, spec, choice.train_points, seed)
    trained = train_index(choice, sample, part_dim(emb, spec), use_gpu=use_gpu)
    write_faiss(trained, part_root.join("trained.faiss"))
    return trained, {"points": len(sample), "seconds": time.perf_counter() - start}


def build_part(emb: EmbeddingSet, spec: PartSpec, choice: IndexChoice, part_root: Location, use_gpu: bool = True) -> dict:
    """Train, add every shard, write part.json, in this process (the build job runs the same steps as Ray tasks).

    Example:
        >>> import tempfile
        >>> from teran_core.embedding_set import write_embedding_side
        >>> from teran_core.index.factory import choose_index
        >>> from teran_core.index.search import ShardedIndex
        >>> from teran_core.storage import resolve
        >>> root = resolve(tempfile.mkdtemp())
        >>> tokens = np.random.default_rng(0).normal(size=(6, 3, 8)).astype(np.float32)
        >>> tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)
        >>> _ = write_embedding_side(root.join("images"), "images", [
        ...     ([f"i{r}" for r in range(s, s + 3)], tokens[s:s + 3], np.full(3, 3)) for s in (0, 3)])
        >>> emb = EmbeddingSet.open(root.join("images"))
        >>> part = build_part(emb, PartSpec("images", "global"), choose_index(6, 8, 2**20), root.join("index", "images-global"))
        >>> part["ntotal"], [s["ntotal"] for s in part["shards"]]
        (6, [3, 3])
        >>> scores, ids = ShardedIndex.open(root.join("index", "images-global")).search(tokens[4:5, 0], k=2)
        >>> int(ids[0, 0])
        4
    """
    if spec.vectors == "centroids":
        from teran_core.index.centroid_lists import build_lists_shard

        shards = [build_lists_shard(emb, shard, part_root) for shard in emb.shards]
        return write_part_manifest(part_root, spec, choice, emb.dim, shards, {"points": 0, "seconds": 0.0})
    trained, train = train_part(emb, spec, choice, part_root, use_gpu)
    shards = [build_shard(emb, shard, spec, trained, part_root) for shard in emb.shards]
    return write_part_manifest(part_root, spec, choice, part_dim(emb, spec), shards, train)
