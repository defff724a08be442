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

from jobs.common import job_parser, load_job_config, run_main
from jobs.config import CompressJobConfig
from jobs.ray_runtime import RayExecutor
from teran_core.compress.run import compress
from teran_core.config import ConfigError
from teran_core.storage import resolve

CONFIG = CompressJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran compress"


def _run(args) -> int:
    cfg = load_job_config(CONFIG, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    try:
        summary = compress(resolve(cfg.paths.embeddings, cfg.storage), resolve(cfg.paths.output, cfg.storage), cfg.compress,
                           RayExecutor(cfg.ray))
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
