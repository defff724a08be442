"""``teran evaluate``: recall of exhaustive, global-only and two-stage retrieval, on Ray actors.

    python -m jobs.evaluate --config configs/evaluate.yaml paths.dataset=... paths.index=... paths.output=...
    ray job submit --working-dir . -- python -m jobs.evaluate --config configs/evaluate.yaml ...

Each actor holds the index and the embedding stores (``teran_core.recall.CollectionEvaluator``);
the driver maps query chunks over the actors and writes results.json, report.md and the plots.
"""

from __future__ import annotations

import logging
import sys
import time

import ray
from ray.util import ActorPool

from jobs.common import init_ray, job_parser, load_job_config, run_main
from teran_core.config import ConfigError
from teran_core.index.catalog import TeranIndex
from teran_core.recall import CollectionEvaluator, EvaluateJobConfig, evaluate_collection, evaluate_protocol, load_ground_truth
from teran_core.recall.run import report_config
from teran_core.report import markdown_report, write_report
from teran_core.storage import resolve

PROG = "teran evaluate"
log = logging.getLogger("teran.evaluate")


def ray_mapper(cfg: EvaluateJobConfig, index_uri: str):
    """Runs evaluator calls on a pool of actors, results in call order, logging progress as they finish."""
    actor = ray.remote(CollectionEvaluator).options(num_cpus=cfg.eval.actor_cpus, max_restarts=1, max_task_retries=1)
    pool = ActorPool([actor.remote(index_uri, cfg.two_stage, cfg.storage, cfg.eval.in_memory) for _ in range(cfg.eval.actors)])

    def mapper(method: str, calls: list) -> list:
        started = last_log = time.monotonic()
        results = []
        for call in calls:
            pool.submit(lambda a, call: getattr(a, method).remote(*call), call)
        while pool.has_next():
            try:  # wakes at least every progress_interval_s, even while one long call runs
                results.append(pool.get_next(timeout=cfg.eval.progress_interval_s))
            except TimeoutError:
                pass
            if time.monotonic() - last_log >= cfg.eval.progress_interval_s or len(results) == len(calls):
                last_log = time.monotonic()
                log.info("%s: %d/%d calls done in %.0f s", method, len(results), len(calls), last_log - started)
        return results

    return mapper


def _run(args) -> int:
    cfg = load_job_config(EvaluateJobConfig, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    index = TeranIndex.open(cfg.paths.index, cfg.storage)
    gt = load_ground_truth(cfg.paths.dataset, cfg.paths.split, index, cfg.storage)
    init_ray(cfg.ray)
    mapper = ray_mapper(cfg, index.root.uri)
    sizes = {side: index.manifest["sides"][side]["items"] for side in ("images", "captions")}
    protocol = evaluate_protocol(cfg.eval, gt, mapper) if "exhaustive" in cfg.eval.evaluators else None
    results = evaluate_collection(cfg.eval, cfg.two_stage, gt, sizes, mapper, protocol)
    if protocol:
        results["protocol"] = {k: v for k, v in protocol.items() if k != "scores"}
    results.update(index=index.root.uri, model=index.manifest.get("model"), config=report_config(cfg.eval, cfg.two_stage),
                   missing={side: {"count": len(ids), "first": ids[:20]} for side, ids in gt.missing.items()})
    files = write_report(results, resolve(cfg.paths.output, cfg.storage))
    print(markdown_report(results))
    print(f"wrote {', '.join(files)} to {cfg.paths.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and evaluates; 0 done, 2 bad config or input."""
    parser = job_parser(PROG, "Evaluate exhaustive, global-only and two-stage TERAN retrieval against a split's ground truth.")
    return run_main(PROG, lambda: _run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
