"""The build-index driver: an embedding set -> an index folder, its tasks run by an executor.

Per part: one task trains on a sample, then one task per embedding shard adds that shard into its own
index shard (a clone of the trained index, so every shard shares the quantizer). A centroids part
(over a compressed embedding set) needs no training: one task per shard writes its centroid -> items
lists (docs/engine.md). One task per shard writes its id map. The driver writes each part.json, then
index.json last, so a folder with index.json is a finished index.
"""

from __future__ import annotations

import time

from teran_core.embedding_set import EmbeddingSet, ShardInfo
from teran_core.executor import Executor, LocalExecutor
from teran_core.index.build import build_shard, part_dim, plan_part, set_threads, train_part, write_part_manifest
from teran_core.index.catalog import write_index_manifest, write_side_ids
from teran_core.index.centroid_lists import build_lists_shard
from teran_core.index.layout import PartSpec, deserialize, serialize
from teran_core.storage import Location

__all__ = ["build_index"]

# a quarter CPU: id maps are light and overlap training, but num_cpus=0 would start one Ray worker process
# per shard at once (measured: 400 shards, 71 processes and 11.7 GiB PSS against 17 and 2.3 GiB)
ID_TASK_CPUS = 0.25


def train_task(emb: EmbeddingSet, spec: PartSpec, section, part_root: Location) -> tuple:
    """(index choice, the trained empty index serialised, train summary); writes trained.faiss."""
    set_threads(int(section.add_task_cpus))
    choice = plan_part(emb, spec, section)
    trained, summary = train_part(emb, spec, choice, part_root, section.use_gpu, section.seed)
    return choice, serialize(trained), summary


def add_task(emb: EmbeddingSet, shard: ShardInfo, spec: PartSpec, trained: tuple, part_root: Location, threads: int) -> dict:
    """One embedding shard added into its own index shard (rewrites the same file when rerun)."""
    set_threads(threads)
    return build_shard(emb, shard, spec, deserialize(trained[1]), part_root)


def build_index(embeddings: Location, root: Location, section, executor: Executor | None = None,
                overwrite: bool = False) -> dict:
    """Builds every part of ``section`` over the embedding set ``embeddings`` into ``root``; returns the job summary.

    Args:
        embeddings: the embedding set folder (holding images/ and captions/).
        root: the index folder to write.
        section: an :class:`~teran_core.index.config.IndexSection` (parts, type choice, seed, task CPUs).
        executor: where the tasks run; None runs them here, one after the other.
        overwrite: replace a finished index at ``root`` (``paths.overwrite``); without it one is refused.

    Raises:
        FileExistsError: ``root`` holds a finished index and ``overwrite`` is false.
        ValueError: bad input (an fp16 set for a centroids part, vectors that are not unit length).

    Example (tests/index/test_catalog.py opens what it writes)::

        summary = build_index(resolve("s3://bucket/emb"), resolve("s3://bucket/index"), IndexSection())
        summary["parts"]["images-global"]["ntotal"]    # one vector per image
    """
    executor = executor or LocalExecutor()
    start = time.perf_counter()
    if root.join("index.json").exists():
        if not overwrite:
            raise FileExistsError(f"{root.uri} already holds a finished index; set paths.overwrite=true to replace it")
        root.remove()
    specs = section.specs()
    sides = {side: EmbeddingSet.open(embeddings.join(side), kind=side) for side in sorted({s.side for s in specs})}
    lists = [s for s in specs if s.vectors == "centroids"]
    list_choices = {s.name: plan_part(sides[s.side], s, section) for s in lists}  # an fp16 set is refused before any task
    trained_specs = [s for s in specs if s.vectors != "centroids"]
    ids = [executor.submit(write_side_ids, emb, shard, root, cpus=ID_TASK_CPUS) for emb in sides.values() for shard in emb.shards]
    list_shards = {s.name: [executor.submit(build_lists_shard, sides[s.side], shard, root.join(s.name))
                            for shard in sides[s.side].shards] for s in lists}
    trains = {s.name: executor.submit(train_task, sides[s.side], s, section, root.join(s.name)) for s in trained_specs}
    threads = int(section.add_task_cpus)
    adds = {s.name: [executor.submit(add_task, sides[s.side], shard, s, trains[s.name], root.join(s.name), threads,
                                     cpus=section.add_task_cpus) for shard in sides[s.side].shards]
            for s in trained_specs}
    executor.get(ids)
    parts = {s.name: write_part_manifest(root.join(s.name), s, list_choices[s.name], sides[s.side].dim,
                                         executor.get(list_shards[s.name]), {"points": 0, "seconds": 0.0}) for s in lists}
    for s in trained_specs:
        choice, _, train = executor.get([trains[s.name]])[0]
        parts[s.name] = write_part_manifest(root.join(s.name), s, choice, part_dim(sides[s.side], s), executor.get(adds[s.name]), train)
    write_index_manifest(root, embeddings.uri, sides, parts)
    return {
        "index": root.uri, "embeddings": embeddings.uri, "wall_s": round(time.perf_counter() - start, 3),
        "parts": {name: {"factory": p["factory"], "reason": p["reason"], "ntotal": p["ntotal"], "shards": len(p["shards"]),
                         "train_s": round(p["train"]["seconds"], 3), "add_s": round(sum(x["seconds"] for x in p["shards"]), 3)}
                  for name, p in parts.items()},
    }
