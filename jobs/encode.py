"""``teran encode``: dataset shards -> embedding shards on Ray Data, exactly once and resumable.

    python -m jobs.encode --config configs/encode.yaml [--overwrite] [section.key=value ...]
    ray job submit --working-dir . -- python -m jobs.encode --config configs/encode.yaml

Rerunning the same command skips every shard already finished; the logic lives in
``teran_core.encode`` (planning, markers, finalisation, summary). This file is the Ray wiring.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from concurrent.futures import Future

import pyarrow as pa
import ray

from jobs.common import job_parser, load_job_config, run_main
from jobs.config import EncodeJobConfig
from jobs.ray_runtime import init_ray
from teran_core.config import ConfigError
from teran_core.data.errors import DataError
from teran_core.encode import OutputConflict, Stages, read_shards, run_encode, write_parts

CONFIG = EncodeJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran encode"


def ray_pipeline(stages: Stages) -> Iterator[pa.Table]:
    """read (a CPU task per shard) -> encode (actor pool) -> write parts (CPU tasks), streamed to the driver."""
    sizes = stages.sizes
    context = ray.data.DataContext.get_current()
    context.retried_map_errors = list(context.retried_io_errors)  # S3 throttling/5xx: replay the task's generator
    context.max_map_retries = 5
    ds = ray.data.from_items(stages.items, override_num_blocks=len(stages.items))
    # memory= reserves a whole shard per read task; differing from the actor's resources, it also keeps
    # Ray Data from fusing reads into the encoder actor, where they would stall the accelerator
    ds = ds.map_batches(read_shards, fn_kwargs={"spec": stages.read}, batch_size=1, batch_format="pyarrow",
                        memory=stages.read_memory)
    ds = ds.map_batches(
        stages.encoder,
        fn_constructor_kwargs=stages.encoder_kwargs,
        compute=ray.data.ActorPoolStrategy(size=sizes.actors, max_concurrent_calls_per_actor=sizes.calls_per_actor,
                                           enable_true_multi_threading=sizes.calls_per_actor > 1),
        batch_size=sizes.batch_size,
        num_gpus=sizes.num_gpus,
        num_cpus=sizes.cpus_per_actor,  # fractional: the read and write tasks keep a CPU
        batch_format="pyarrow",
    )
    ds = ds.map_batches(write_parts, fn_kwargs=stages.write_kwargs, batch_format="pyarrow")
    return ds.iter_batches(batch_size=None, batch_format="pyarrow")


@ray.remote(num_cpus=0, max_concurrency=4, max_restarts=-1, max_task_retries=3)
class Finalizer:
    """A warm process that merges finished shards, four at a time (I/O bound, so it takes no CPU slot)."""

    @ray.method(retry_exceptions=[OSError])  # a retry rewrites the same files; a finished shard returns its marker
    def run(self, fn, *args):
        return fn(*args)


class RayRunner:
    """Starts Ray and the finaliser actors only when there is something to encode.

    So a bad config, a foreign output or a dataset error is reported at once, and rerunning a
    finished job returns without starting Ray.
    """

    def __init__(self, cfg: EncodeJobConfig):
        self.cfg = cfg
        self.finalizers: list = []
        self.calls = itertools.count()

    def pipeline(self, stages: Stages) -> Iterator[pa.Table]:
        init_ray(self.cfg.ray)
        self.finalizers = [Finalizer.remote() for _ in range(self.cfg.encode.finalizers)]  # they start with the pipeline
        return ray_pipeline(stages)

    def submit(self, fn, *args) -> Future:
        """Runs ``fn(*args)`` on the next finaliser; returns a concurrent.futures.Future."""
        return self.finalizers[next(self.calls) % len(self.finalizers)].run.remote(fn, *args).future()


def _encode(args) -> int:
    cfg = load_job_config(CONFIG, args, ["output.overwrite=true"] if args.overwrite else [])
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    runner = RayRunner(cfg)
    try:
        summary = run_encode(cfg, runner.pipeline, runner.submit)
    except (OutputConflict, DataError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    failed = [f"{name}: {why}" for side in summary["sides"].values() for name, why in side["failed"].items()]
    if failed:
        print(f"{PROG}: error: {len(failed)} shard(s) not finished; rerun the same command to retry them "
              f"(finished shards are kept): " + " | ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the job; 0 done, 1 some shard failed, 2 bad config or data."""
    parser = job_parser(PROG, "Encode a teran dataset's images and captions into embedding shards with Ray Data.")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the output's earlier embeddings (of any job) and encode every shard again")
    args = parser.parse_args(argv)
    return run_main(PROG, lambda: _encode(args))


if __name__ == "__main__":
    sys.exit(main())
