"""``teran compress``: an fp16 embedding set -> shared centroids and a residual-compressed set, on Ray tasks.

    python -m jobs.compress --config configs/compress.yaml paths.embeddings=... paths.output=...
    ray job submit --working-dir . -- python -m jobs.compress --config configs/compress.yaml ...

One task trains the centroids and residual buckets on a sample of both sides' tokens and writes
them to ``<output>/codec`` before any shard is compressed; a rerun reads them back, never trains
again. Then one task per embedding shard writes its compressed shard and, last, its marker; a
rerun skips every shard whose marker matches. The driver writes each side's manifest.json last.
The logic lives in ``teran_core.compress.run`` (docs/engine.md); this file is the Ray wiring.
"""

from __future__ import annotations

import json
import sys
import time

import ray

from jobs.common import init_ray, job_parser, load_job_config, run_main
from teran_core.compress.run import CompressJobConfig, compress_shard, train_codec, write_side_manifest
from teran_core.compress.store import CODEC_DIR
from teran_core.config import ConfigError
from teran_core.embedding_set import KINDS, EmbeddingSet
from teran_core.storage import resolve

CONFIG = CompressJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran compress"


@ray.remote(max_retries=2)
def train_task(sides, output, section):
    return train_codec(sides, output, section)  # returns the stored codec.json when one is there


@ray.remote(max_retries=2)
def shard_task(emb, shard, output, codec_entry):
    return compress_shard(emb, shard, output, codec_entry)  # rewrites the same files on retry


def compress(cfg: CompressJobConfig) -> dict:
    """Compresses both sides; returns the job summary."""
    start = time.perf_counter()
    source, output = resolve(cfg.paths.embeddings, cfg.storage), resolve(cfg.paths.output, cfg.storage)
    sides = {kind: EmbeddingSet.open(source.join(kind), kind=kind) for kind in KINDS}
    if any(EmbeddingSet.open(source.join(kind)).compressed for kind in KINDS):
        raise ValueError(f"{source.uri} is already compressed; paths.embeddings must be an fp16 set written by 'teran encode'")
    codec_loc = output.join(CODEC_DIR, "codec.json")
    reused = codec_loc.exists()
    init_ray(cfg.ray)
    ray.get(train_task.remote(sides, output, cfg.compress))
    codec_entry = json.loads(codec_loc.read_text())  # what is on storage is what every shard uses
    pending = {kind: [shard_task.options(num_cpus=cfg.compress.shard_task_cpus).remote(emb, shard, output, codec_entry)
                      for shard in emb.shards] for kind, emb in sides.items()}
    summary = {"embeddings": source.uri, "output": output.uri, "codec_reused": reused,
               "codec": {k: codec_entry[k] for k in ("nbits", "n_centroids", "dim", "centroids_sha256")}, "sides": {}}
    for kind, emb in sides.items():
        markers = ray.get(pending[kind])
        write_side_manifest(emb, output, markers, codec_entry)
        fp16 = sum(int(s.get("bytes") or emb.location.join(s["name"]).size()) for s in emb.manifest["shards"])
        summary["sides"][kind] = {"shards": len(markers), "skipped": sum(m["skipped"] for m in markers),
                                  "finished": sum(not m["skipped"] for m in markers),
                                  "fp16_bytes": fp16, "compressed_bytes": sum(m["bytes"] for m in markers)}
    summary["wall_s"] = round(time.perf_counter() - start, 3)
    return summary


def _run(args) -> int:
    cfg = load_job_config(CONFIG, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    try:
        summary = compress(cfg)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and compresses the embedding set; 0 done, 2 bad config or input."""
    parser = job_parser(PROG, "Compress an fp16 embedding set: shared centroids plus residual bits per token, on Ray.")
    args = parser.parse_args(argv)
    return run_main(PROG, lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
