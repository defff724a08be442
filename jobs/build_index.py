"""``teran build-index``: embedding shards -> a sharded FAISS index with id maps, on Ray tasks.

    python -m jobs.build_index --config configs/build_index.yaml paths.embeddings=... paths.index=...
    ray job submit --working-dir . -- python -m jobs.build_index --config configs/build_index.yaml ...

Per part: one task trains on a sample, then one task per embedding shard adds it into its own
index shard (a clone of the trained index, so every shard shares the quantizer). A centroids
part (over a compressed embedding set) needs no training: one task per shard writes its
centroid -> items lists (docs/engine.md). Id maps are
written by one task per shard. The driver writes each part.json, then index.json last. The
logic lives in ``teran_core.index``; this file is the Ray wiring.
"""

from __future__ import annotations

import json
import sys
import time

import ray

from jobs.common import init_ray, job_parser, load_job_config, run_main
from teran_core.config import ConfigError
from teran_core.embedding_set import EmbeddingSet
from teran_core.index.build import build_shard, plan_part, set_threads, train_part, write_part_manifest
from teran_core.index.catalog import write_index_manifest, write_side_ids
from teran_core.index.centroid_lists import build_lists_shard
from teran_core.index.config import BuildIndexJobConfig
from teran_core.index.layout import deserialize, serialize
from teran_core.storage import resolve

CONFIG = BuildIndexJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran build-index"


@ray.remote(num_returns=3, max_retries=2)
def train_task(emb, spec, section, part_root):
    set_threads(int(section.add_task_cpus))
    choice = plan_part(emb, spec, section)
    trained, summary = train_part(emb, spec, choice, part_root, section.use_gpu, section.seed)
    return choice, serialize(trained), summary


@ray.remote(max_retries=2)
def lists_task(emb, shard, part_root):
    return build_lists_shard(emb, shard, part_root)  # rewrites the same file on retry


@ray.remote(max_retries=2)
def add_task(emb, shard, spec, trained, part_root, threads):
    set_threads(threads)
    return build_shard(emb, shard, spec, deserialize(trained), part_root)  # rewrites the same file on retry


# a quarter CPU: id maps are light and overlap training, but num_cpus=0 would start one worker process
# per shard at once (measured: 400 shards, 71 processes and 11.7 GiB PSS against 17 and 2.3 GiB)
@ray.remote(num_cpus=0.25, max_retries=2)
def ids_task(emb, shard, root):
    return write_side_ids(emb, shard, root)


def build(cfg: BuildIndexJobConfig) -> dict:
    """Builds every configured part; returns the job summary."""
    start = time.perf_counter()
    root, emb_root = resolve(cfg.paths.index, cfg.storage), resolve(cfg.paths.embeddings, cfg.storage)
    if root.join("index.json").exists():
        if not cfg.paths.overwrite:
            raise FileExistsError(f"{root.uri} already holds a finished index; set paths.overwrite=true to replace it")
        root.remove()
    specs = cfg.index.specs()
    sides = {side: EmbeddingSet.open(emb_root.join(side), kind=side) for side in sorted({s.side for s in specs})}
    lists = [s for s in specs if s.vectors == "centroids"]
    list_choices = {s.name: plan_part(sides[s.side], s, cfg.index) for s in lists}  # an fp16 set is refused before any task
    specs = [s for s in specs if s.vectors != "centroids"]
    ids = [ids_task.remote(emb, shard, root) for emb in sides.values() for shard in emb.shards]
    list_shards = {s.name: [lists_task.remote(sides[s.side], shard, root.join(s.name)) for shard in sides[s.side].shards] for s in lists}
    trains = {s.name: train_task.remote(sides[s.side], s, cfg.index, root.join(s.name)) for s in specs}
    adds = {
        s.name: [add_task.options(num_cpus=cfg.index.add_task_cpus).remote(
            sides[s.side], shard, s, trains[s.name][1], root.join(s.name), int(cfg.index.add_task_cpus))
            for shard in sides[s.side].shards]
        for s in specs
    }
    ray.get(ids)
    parts = {s.name: write_part_manifest(root.join(s.name), s, list_choices[s.name], sides[s.side].dim, ray.get(list_shards[s.name]),
                                         {"points": 0, "seconds": 0.0}) for s in lists}
    for s in specs:
        choice, train = ray.get(trains[s.name][0]), ray.get(trains[s.name][2])
        parts[s.name] = write_part_manifest(root.join(s.name), s, choice, sides[s.side].dim, ray.get(adds[s.name]), train)
    write_index_manifest(root, emb_root.uri, sides, parts)
    return {
        "index": root.uri, "embeddings": emb_root.uri, "wall_s": round(time.perf_counter() - start, 3),
        "parts": {name: {"factory": p["factory"], "reason": p["reason"], "ntotal": p["ntotal"], "shards": len(p["shards"]),
                         "train_s": round(p["train"]["seconds"], 3), "add_s": round(sum(x["seconds"] for x in p["shards"]), 3)}
                  for name, p in parts.items()},
    }


def _run(args) -> int:
    cfg = load_job_config(CONFIG, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    init_ray(cfg.ray)
    try:
        summary = build(cfg)
    except (FileExistsError, ValueError) as err:  # ValueError: bad input (an fp16 set for a centroids part, unnormalised vectors)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and builds the index; 0 done, 2 bad config or input."""
    parser = job_parser(PROG, "Build a sharded FAISS index (global and region vectors) from an embedding set on Ray.")
    args = parser.parse_args(argv)
    return run_main(PROG, lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
