"""``teran build-index``: embedding shards -> a sharded FAISS index with id maps, on Ray tasks.

    python -m jobs.build_index --config configs/build_index.yaml paths.embeddings=... paths.index=...
    ray job submit --working-dir . -- python -m jobs.build_index --config configs/build_index.yaml ...

The driver and its tasks are ``teran_core.index.run.build_index``; this file runs them on Ray.
"""

from __future__ import annotations

import json
import sys

from jobs.common import job_parser, load_job_config, run_main
from jobs.config import BuildIndexJobConfig
from jobs.ray_runtime import RayExecutor
from teran_core.config import ConfigError
from teran_core.index.run import build_index
from teran_core.storage import resolve

CONFIG = BuildIndexJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran build-index"


def _run(args) -> int:
    cfg = load_job_config(CONFIG, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    try:
        summary = build_index(resolve(cfg.paths.embeddings, cfg.storage), resolve(cfg.paths.index, cfg.storage), cfg.index,
                              RayExecutor(cfg.ray), overwrite=cfg.paths.overwrite)
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
