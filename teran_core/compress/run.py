"""``teran compress``: an fp16 embedding set -> a residual-compressed one, exactly once and resumable.

Why a job of its own rather than compressing inside ``teran encode`` (docs/engine.md): the shared
centroids need a sample of *encoded* tokens of both sides before the first shard can be compressed,
so an encode that wrote compressed shards directly would have to encode a sample twice or hold
shards back; the compress pass is a cheap CPU pass over finished shards and leaves encode's
exactly-once machinery as it is.

Order of writes, each atomic:
1. ``<out>/codec/centroids.npy`` then ``codec.json``: trained once (one task), then only read, so a
   killed and rerun job compresses every shard against the same centroids.
2. per shard: ``<out>/<side>/<stem>.parquet`` then its marker ``_done/<stem>.json``. A shard whose
   marker names the same source shard bytes, codec and output bytes is skipped on a rerun.
3. per side: ``manifest.json`` last.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Literal

import numpy as np

from teran_core.compress.centroids import centroid_count, train_centroids
from teran_core.compress.codec import fit_codec
from teran_core.compress.store import (
    CODEC_DIR,
    COMPRESSED_FORMAT_VERSION,
    codec_residual,
    compress_table,
    compressed_schema,
    read_codec,
    write_codec,
)
from teran_core.config import knob
from teran_core.data.writer import write_parquet
from teran_core.embedding_set import KINDS, ROW_GROUP_ITEMS, EmbeddingSet, ShardInfo
from teran_core.executor import Executor, LocalExecutor
from teran_core.storage import Location

__all__ = ["CompressSection", "CompressPaths", "sample_both_sides", "train_codec", "compress_shard",
           "write_side_manifest", "compress"]


@dataclasses.dataclass
class CompressSection:
    """How tokens are compressed."""

    nbits: Literal[1, 2] = 2  # residual bits per dimension (D=128: 36 B a token at 2 bits against 256 B fp16); 1 halves the residual bytes
    # how the residual bytes are spent. product: OPQ + PQ, a byte per D/(D*nbits/8) dimensions; on trained tokens it leaves an eighth of
    # the buckets' squared error, and two-stage R@10 at 100K moved 0.3-0.5 points from fp16 against 4 with buckets (docs/engine.md).
    # buckets: ColBERTv2's per-value buckets (what sets written before this knob hold)
    residual: Literal["buckets", "product"] = "product"
    train_points_per_centroid: int = knob(64, ge=39)  # k-means sample = this x centroids (FAISS warns below 39)
    max_train_points: int = knob(1_000_000, ge=1)  # cap on the k-means sample (tokens of both sides together)
    heldout_points: int = knob(50_000, ge=1)  # tokens, not seen by k-means, whose residuals set the bucket edges and train the product codebooks
    n_centroids: int = knob(0, ge=0)  # 0 = PLAID's 2^floor(log2(16 sqrt(N_tokens))), capped at sample/39
    niter: int = knob(20, ge=1)  # k-means iterations
    seed: int = knob(0, ge=0)  # sample draw and k-means seed
    train_task_cpus: float = knob(1.0, ge=1)  # CPUs of the one task that trains the centroids (Ray's, and FAISS's k-means threads, rounded down); no shard task runs beside it, so give it a node's CPUs
    shard_task_cpus: float = knob(1.0, gt=0)  # Ray CPUs per shard task


@dataclasses.dataclass
class CompressPaths:
    embeddings: str = ""  # the fp16 embedding set (holding images/ and captions/): a local path or s3://bucket/prefix
    output: str = ""  # where the compressed set goes (a different folder)


def sample_both_sides(sides: dict[str, EmbeddingSet], n_points: int, seed: int) -> np.ndarray:
    """``n_points`` content tokens from whole items of both sides, each side in proportion to its tokens."""
    from teran_core.index.build import training_sample, vectors_per_item
    from teran_core.index.layout import PartSpec

    specs = {kind: PartSpec(kind, "tokens") for kind in sides}
    counts = {kind: int(vectors_per_item(emb, specs[kind]).sum()) for kind, emb in sides.items()}
    total = max(sum(counts.values()), 1)
    parts = [training_sample(emb, specs[kind], max(1, round(n_points * counts[kind] / total)), seed)
             for kind, emb in sides.items() if counts[kind]]
    sample = np.concatenate(parts)
    return sample[np.random.default_rng(seed).permutation(len(sample))]


def train_codec(sides: dict[str, EmbeddingSet], out_root: Location, section: CompressSection) -> dict:
    """Trains the shared centroids and the residual buckets, writes them under ``<out>/codec``; returns codec.json.

    An existing codec.json is returned as it is: the centroids are trained once per output.

    Raises:
        ValueError: the existing codec has other ``nbits`` or ``residual`` than ``section`` asks for.
    """
    from teran_core.index.build import set_threads, vectors_per_item
    from teran_core.index.layout import PartSpec

    where = out_root.join(CODEC_DIR, "codec.json")
    if where.exists():
        stored = json.loads(where.read_text())
        if (stored["nbits"], codec_residual(stored)) != (section.nbits, section.residual):
            raise ValueError(f"{where.uri} holds a codec of nbits {stored['nbits']}, residual {codec_residual(stored)}; this "
                             f"run asks for nbits {section.nbits}, residual {section.residual}: compress into another output folder")
        return stored
    start = time.perf_counter()
    n_tokens = sum(int(vectors_per_item(emb, PartSpec(kind, "tokens")).sum()) for kind, emb in sides.items())
    k = section.n_centroids or centroid_count(n_tokens)
    train_points = min(n_tokens, section.max_train_points, k * section.train_points_per_centroid)
    sample = sample_both_sides(sides, train_points + section.heldout_points, section.seed)
    train, heldout = sample[:train_points], sample[train_points:]
    if len(heldout) == 0:  # a set smaller than the sample asked for: the held-out share is what is left
        train, heldout = sample[: len(sample) * 4 // 5], sample[len(sample) * 4 // 5:]
    k = min(k, centroid_count(n_tokens, len(train))) if not section.n_centroids else k
    set_threads(int(section.train_task_cpus))  # as the index tasks do: a pooled Ray worker keeps the thread count it started with
    codec = fit_codec(train_centroids(train, k, section.seed, section.niter), heldout, section.nbits, section.residual)
    return write_codec(out_root, codec, {"tokens": n_tokens, "train_points": len(train), "heldout_points": len(heldout),
                                         "seconds": round(time.perf_counter() - start, 3)})


def _marker_matches(marker: dict | None, shard_entry: dict, codec_entry: dict, out_side: Location, stem: str) -> bool:
    if marker is None:
        return False
    same = (marker.get("source_sha256") == shard_entry.get("sha256") and marker.get("centroids_sha256") == codec_entry["centroids_sha256"]
            and marker.get("nbits") == codec_entry["nbits"] and marker.get("product_sha256") == codec_entry.get("product_sha256"))
    shard = out_side.join(f"{stem}.parquet")
    return same and shard.exists() and shard.size() == marker.get("bytes")


def compress_shard(emb: EmbeddingSet, shard: ShardInfo, out_root: Location, codec_entry: dict) -> dict:
    """Compresses one fp16 shard into ``<out>/<side>/<stem>.parquet`` then writes its marker; returns the marker.

    A shard whose marker already matches (same source bytes, codec and output bytes) is not rewritten.

    Raises:
        ValueError: the compressed rows are not the source rows, each exactly once and in order.
    """
    start = time.perf_counter()
    out_side, stem = out_root.join(emb.kind), shard.name.removesuffix(".parquet")
    marker_loc = out_side.join("_done", f"{stem}.json")
    entry = next(s for s in emb.manifest["shards"] if s["name"] == shard.name)
    marker = json.loads(marker_loc.read_text()) if marker_loc.exists() else None
    if _marker_matches(marker, entry, codec_entry, out_side, stem):
        return {**marker, "skipped": True}
    source = emb.read_shard(shard)
    table = compress_table(source, read_codec(out_root, codec_entry))
    if table.column("id").to_pylist() != source.column("id").to_pylist():
        raise ValueError(f"{emb.location.join(shard.name).uri}: compressed rows differ from the source rows; nothing was written")
    info = write_parquet(out_side.join(shard.name), table, compressed_schema(emb.dim, emb.global_dim), ROW_GROUP_ITEMS)
    marker = {"rows": info.rows, "sha256": info.sha256, "bytes": info.bytes, "source": shard.name,
              "source_sha256": entry.get("sha256"), "centroids_sha256": codec_entry["centroids_sha256"],
              "nbits": codec_entry["nbits"], "product_sha256": codec_entry.get("product_sha256"),
              "seconds": round(time.perf_counter() - start, 3)}
    marker_loc.write_text(json.dumps(marker, indent=1) + "\n")
    return {**marker, "skipped": False}


def write_side_manifest(emb: EmbeddingSet, out_root: Location, markers: list[dict], codec_entry: dict) -> dict:
    """Writes ``<out>/<side>/manifest.json`` (after every shard's marker); returns it."""
    if [m["source"] for m in markers] != [s.name for s in emb.shards] or any(m["rows"] != s.rows for m, s in zip(markers, emb.shards)):
        raise ValueError(f"{out_root.join(emb.kind).uri}: the compressed shards do not match the source shards one to one")
    manifest = {
        "format_version": COMPRESSED_FORMAT_VERSION, "kind": emb.kind, "dim": emb.dim, "global_dim": emb.global_dim, "dtype": "float32",
        "model": emb.manifest.get("model", {}), "global_kind": emb.manifest.get("global_kind", "slot0"), "source": emb.location.uri, "rejected": emb.manifest.get("rejected", 0),
        "codec": {key: codec_entry[key] for key in ("name", "residual", "nbits", "n_centroids", "dim", "edges", "cutoffs", "weights",
                                                    "centroids", "centroids_sha256", "product", "product_sha256") if key in codec_entry},
        "shards": [{"name": m["source"], "rows": m["rows"], "sha256": m["sha256"], "bytes": m["bytes"], "source": m["source"]}
                   for m in markers],
    }
    out_root.join(emb.kind, "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def compress(embeddings: Location, output: Location, section: CompressSection, executor: Executor | None = None) -> dict:
    """The whole job: the codec (one task, or the stored one), one task per shard, then each side's manifest.

    Args:
        embeddings: an fp16 embedding set written by ``teran encode`` (holding images/ and captions/).
        output: the compressed set's folder; a rerun there reuses its codec and skips finished shards.
        section: the codec's knobs and the shard tasks' CPUs.
        executor: where the tasks run; None runs them here, one after the other (``teran compress``: Ray).

    Raises:
        ValueError: ``embeddings`` is already compressed.

    Example:
        >>> import tempfile
        >>> from teran_core.storage import resolve
        >>> from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
        >>> root = resolve(tempfile.mkdtemp())
        >>> _ = write_grounded_embeddings(root.join("fp16"), GroundedSpec(images=40, dim=16, images_per_shard=20))
        >>> summary = compress(root.join("fp16"), root.join("res"), CompressSection(nbits=2))
        >>> summary["codec"]["n_centroids"], summary["sides"]["images"]["finished"], EmbeddingSet.open(root.join("res", "images")).compressed
        (64, 2, True)
    """
    executor = executor or LocalExecutor()
    start = time.perf_counter()
    sides = {kind: EmbeddingSet.open(embeddings.join(kind), kind=kind) for kind in KINDS}
    if any(emb.compressed for emb in sides.values()):
        raise ValueError(f"{embeddings.uri} is already compressed; paths.embeddings must be an fp16 set written by 'teran encode'")
    codec_loc = output.join(CODEC_DIR, "codec.json")
    reused = codec_loc.exists()
    executor.get([executor.submit(train_codec, sides, output, section, cpus=section.train_task_cpus)])  # returns the stored codec.json when one is there
    codec_entry = json.loads(codec_loc.read_text())  # what is on storage is what every shard uses
    pending = {kind: [executor.submit(compress_shard, emb, shard, output, codec_entry, cpus=section.shard_task_cpus)
                      for shard in emb.shards] for kind, emb in sides.items()}
    summary = {"embeddings": embeddings.uri, "output": output.uri, "codec_reused": reused,
               "codec": {"residual": codec_residual(codec_entry), **{k: codec_entry[k] for k in ("nbits", "n_centroids", "dim", "centroids_sha256")}},
               "sides": {}}
    for kind, emb in sides.items():
        markers = executor.get(pending[kind])
        write_side_manifest(emb, output, markers, codec_entry)
        fp16 = sum(int(s.get("bytes") or emb.location.join(s["name"]).size()) for s in emb.manifest["shards"])
        summary["sides"][kind] = {"shards": len(markers), "skipped": sum(m["skipped"] for m in markers),
                                  "finished": sum(not m["skipped"] for m in markers),
                                  "fp16_bytes": fp16, "compressed_bytes": sum(m["bytes"] for m in markers)}
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    return summary
