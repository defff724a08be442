"""``teran synth``: a grounded synthetic dataset, one Ray task per shard writing straight to storage.

    teran synth --out s3://bucket/synth-1m --images 1000000 --seed 0 [--config configs/synth.yaml] [section.key=value ...]

Each task builds its shard chunk by chunk from (config, shard index) alone and writes it atomically,
so memory per task is one chunk, a retried task rewrites the same bytes, and the driver only
collects shard infos; it writes the split files and, last, dataset.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jobs.common import load_data_job_config, run_main
from jobs.config import SynthJobConfig
from jobs.ray_runtime import RayExecutor
from teran_core.config import to_yaml
from teran_core.data.errors import DataError
from teran_core.data.synth import generate_dataset
from teran_core.storage import resolve

CONFIG = SynthJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran synth"
log = logging.getLogger("teran.synth")


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``section.key=value`` overrides from the convenience flags given; values are quoted so they stay strings."""
    return [*args.overrides, *(f"{key}={json.dumps(getattr(args, name))}" for name, key in flags.items() if getattr(args, name) is not None)]


def _run(config: str | None, overrides: list[str]) -> int:
    cfg = load_data_job_config(CONFIG, config, overrides)
    log.info("resolved config:\n%s", to_yaml(cfg))
    out = resolve(cfg.output.uri, cfg.storage)
    try:
        manifest = generate_dataset(cfg.synth, out, cfg.output.shard_mb, cfg.output.overwrite, executor=RayExecutor(cfg.ray))
    except DataError as err:
        print(f"{PROG}: error: {getattr(err, 'cause', None) or err}", file=sys.stderr)  # a task's error arrives wrapped by Ray
        return 2
    print(json.dumps({"dataset": out.uri, "counts": manifest.counts, "shards": len(manifest.shards["images"]),
                      "splits": {name: s.images.rows for name, s in manifest.splits.items()}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Write a grounded synthetic dataset (images with hard negatives, 5 captions each).")
    parser.add_argument("--config", help="YAML config, e.g. configs/synth.yaml; without one every default applies")
    parser.add_argument("--out", help="the dataset folder: a local path or s3://bucket/prefix (output.uri)")
    parser.add_argument("--images", type=int, help="number of images (synth.images)")
    parser.add_argument("--seed", type=int, help="random seed (synth.seed)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="override config keys, e.g. synth.feature_dim=256")
    args = parser.parse_args(argv)
    overrides = flag_overrides(args, {"out": "output.uri", "images": "synth.images", "seed": "synth.seed"})
    return run_main(PROG, lambda: _run(args.config, overrides))


if __name__ == "__main__":
    sys.exit(main())
