"""``teran evaluate``: recall of exhaustive, global-only and two-stage retrieval, on Ray actors.

    python -m jobs.evaluate --config configs/evaluate.yaml paths.dataset=... paths.index=... paths.output=...
    ray job submit --working-dir . -- python -m jobs.evaluate --config configs/evaluate.yaml ...

Each evaluator actor holds the embedding stores (``teran_core.recall.CollectionEvaluator``); the
index is spread over searcher actors holding at most ``eval.searcher_max_bytes`` of it each
(``teran_core.index.groups``), whose top-k the evaluators merge. The driver maps query chunks over
the evaluators and writes results.json, report.md, the plots and report.html (with a gallery
of example queries and word-region alignments, teran_core/html_report).
"""

from __future__ import annotations

import logging
import sys

import ray
from ray.util import ActorPool

from jobs.common import job_parser, load_job_config, run_main
from jobs.config import EvaluateJobConfig
from jobs.ray_runtime import init_ray
from teran_core.config import ConfigError
from teran_core.data.tokenizer import load_tokenizer
from teran_core.html_report.examples import POOL, build_examples
from teran_core.html_report.identity import model_identity
from teran_core.html_report.render import picture_loader, write_evaluation_report
from teran_core.html_report.scenes import dataset_metadata
from teran_core.index.catalog import TeranIndex
from teran_core.index.groups import FanOutIndex, ShardGroupSearcher, shard_groups
from teran_core.progress import Progress
from teran_core.recall import CollectionEvaluator, evaluate_collection, evaluate_protocol, load_ground_truth
from teran_core.recall.report import markdown_report, write_report
from teran_core.recall.run import report_config
from teran_core.storage import resolve

CONFIG = EvaluateJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

PROG = "teran evaluate"
log = logging.getLogger("teran.evaluate")


class FanOutEvaluator(CollectionEvaluator):
    """A :class:`CollectionEvaluator` whose index parts are searched by searcher actors (``holders``:
    part name -> the searchers holding its shards), their top-k merged here."""

    def __init__(self, index_uri: str, two_stage, storage, in_memory: bool, holders: dict[str, list]):
        index = TeranIndex.open(index_uri, storage)

        def gather(part: str, searchers: list):
            def search_groups(queries, k: int) -> list:
                shared = ray.put(queries)  # one copy for every searcher
                return ray.get([s.search.remote(part, shared, k) for s in searchers])

            return search_groups

        parts = {part: FanOutIndex(index.part_manifest(part), gather(part, searchers)) for part, searchers in holders.items()}
        parts |= {part: index.part(part) for part in index.part_names if part.endswith("-centroids")}  # ids only: opened here
        super().__init__(index, two_stage, storage, in_memory, parts=parts)


def start_searchers(cfg: EvaluateJobConfig, index: TeranIndex, source: str) -> dict[str, list]:
    """One searcher actor per shard group of at most ``eval.searcher_max_bytes``, started and opened;
    returns, per part, the searchers holding its shards."""
    groups = shard_groups(index, cfg.eval.searcher_max_bytes)
    actor = ray.remote(ShardGroupSearcher).options(num_cpus=cfg.eval.searcher_cpus, scheduling_strategy="SPREAD",
                                                   max_restarts=1, max_task_retries=1)
    searchers = [actor.remote(index.root.uri, group, cfg.storage) for group in groups]
    opened = [s.vectors.remote() for s in searchers]
    _, late = ray.wait(opened, num_returns=len(opened), timeout=cfg.eval.searcher_start_timeout_s)
    if late:
        raise ConfigError(source, [
            f"{len(late)} of {len(searchers)} searcher actors did not start within eval.searcher_start_timeout_s="
            f"{cfg.eval.searcher_start_timeout_s:g} s; the cluster has {ray.cluster_resources().get('CPU', 0):g} CPUs and the job asks "
            f"{cfg.eval.actors} x eval.actor_cpus={cfg.eval.actor_cpus:g} + {len(searchers)} x eval.searcher_cpus={cfg.eval.searcher_cpus:g}: "
            f"lower them, or raise eval.searcher_max_bytes for fewer searchers"])
    vectors = ray.get(opened)
    log.info("index spread over %d searcher actors of at most %d bytes (eval.searcher_max_bytes): %d to %d vectors each",
             len(searchers), cfg.eval.searcher_max_bytes, min(vectors), max(vectors))
    holders: dict[str, list] = {}
    for group, searcher in zip(groups, searchers):
        for part in group:
            holders.setdefault(part, []).append(searcher)
    return holders


def ray_mapper(cfg: EvaluateJobConfig, index: TeranIndex, source: str, in_memory: bool):
    """Runs evaluator calls on a pool of actors, results in call order, logging progress as they finish."""
    options = {"num_cpus": cfg.eval.actor_cpus, "max_restarts": 1, "max_task_retries": 1}
    args = (index.root.uri, cfg.two_stage, cfg.storage, in_memory)
    if cfg.eval.searcher_max_bytes:
        actor = ray.remote(FanOutEvaluator).options(**options)
        args = (*args, start_searchers(cfg, index, source))
    else:
        actor = ray.remote(CollectionEvaluator).options(**options)
    pool = ActorPool([actor.remote(*args) for _ in range(cfg.eval.actors)])

    def mapper(method: str, calls: list) -> list:
        progress = Progress(log, method, len(calls), "calls", interval_s=cfg.eval.progress_interval_s)
        results = []
        for call in calls:
            pool.submit(lambda a, call: getattr(a, method).remote(*call), call)
        while pool.has_next():
            try:  # wakes at least every progress_interval_s, even while one long call runs
                results.append(pool.get_next(timeout=cfg.eval.progress_interval_s))
                progress.update(1)
            except TimeoutError:
                progress.update(0)
        progress.close()
        return results

    return mapper


def _run(args) -> int:
    cfg = load_job_config(CONFIG, args)
    if missing := cfg.missing():
        raise ConfigError(args.config, missing)
    index = TeranIndex.open(cfg.paths.index, cfg.storage)
    gt = load_ground_truth(cfg.paths.dataset, cfg.paths.split, index, cfg.storage)
    in_memory, why = cfg.eval.holds_in_memory(sum(index.embeddings(side).stored_bytes() for side in ("images", "captions")))
    log.info("embedding store %s (%s)", "held in each evaluator's RAM" if in_memory else "read from its shards per query batch", why)
    init_ray(cfg.ray)
    mapper = ray_mapper(cfg, index, args.config, in_memory)
    sizes = {side: index.manifest["sides"][side]["items"] for side in ("images", "captions")}
    protocol = evaluate_protocol(cfg.eval, gt, mapper) if "exhaustive" in cfg.eval.evaluators else None
    results = evaluate_collection(cfg.eval, cfg.two_stage, gt, sizes, mapper, protocol)
    if protocol:
        results["protocol"] = {k: v for k, v in protocol.items() if k != "scores"}
    dataset = resolve(cfg.paths.dataset, cfg.storage)
    results.update(index=index.root.uri, model=model_identity(index.manifest.get("model"), cfg.storage),
                   global_kind=index.manifest.get("global_kind", "slot0"),
                   run={"dataset": dataset.uri, "split": cfg.paths.split, "seed": cfg.eval.seed, "sampled": bool(cfg.eval.queries)},
                   config=report_config(cfg.eval, cfg.two_stage), in_memory={"held": in_memory, "reason": why},
                   missing={side: {"count": len(ids), "first": ids[:20]} for side, ids in gt.missing.items()})
    examples = None
    gallery_pairs = POOL * (len(gt.image_items) + len(gt.caption_items))
    if cfg.report.examples and gallery_pairs > cfg.eval.max_exhaustive_pairs:
        results["examples_skipped"] = f"the gallery scores {gallery_pairs} pairs > eval.max_exhaustive_pairs (raise it, or set report.examples=false)"
    elif cfg.report.examples:
        examples = build_examples(mapper, gt, index, lambda images, captions: dataset_metadata(dataset, images, captions),
                                  cfg.eval.seed, cfg.two_stage.padding, load_tokenizer())
    output = resolve(cfg.paths.output, cfg.storage)
    images_root = resolve(cfg.report.images_root, cfg.storage) if cfg.report.images_root else None
    files = write_report(results, output) + write_evaluation_report(results, examples, output, picture_loader(images_root, cfg.report.image_file))
    print(markdown_report(results))
    print(f"wrote {', '.join(files)} to {cfg.paths.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and evaluates; 0 done, 2 bad config or input."""
    parser = job_parser(PROG, "Evaluate exhaustive, global-only and two-stage TERAN retrieval against a split's ground truth.")
    return run_main(PROG, lambda: _run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
