"""The encode job's driver: plan each side, stream the pipeline's results, finalise shards, report.

The pipeline and the finalisation executor are passed in: ``jobs/encode.py`` gives Ray Data and
Ray tasks, tests may give :meth:`Stages.iter_local` and a thread pool. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future

import pyarrow as pa

from teran_core.config import ConfigError
from teran_core.data.check import check_dataset
from teran_core.encode.config import EncodeSections, missing_locations
from teran_core.encode.finalize import ExactlyOnceError, finalize_shard, write_manifest
from teran_core.encode.identity import checkpoint_identity, claim_side, job_id, job_identity
from teran_core.encode.layout import SideLayout
from teran_core.encode.model_spec import ModelInfo, ModelSpec
from teran_core.encode.plan import SidePlan, plan_side
from teran_core.encode.stages import Stages, build_stages
from teran_core.encode.summary import SideReport, build_summary, reason_kind
from teran_core.encode.tracker import ReadyShard, ShardTracker
from teran_core.progress import Progress
from teran_core.storage import resolve

__all__ = ["run_encode", "Pipeline", "Submit"]

log = logging.getLogger(__name__)

Pipeline = Callable[[Stages], Iterable[pa.Table]]  # stages -> the write stage's result blocks
Submit = Callable[..., Future]  # submit(fn, *args) -> a future of fn(*args)


def run_encode(cfg: EncodeSections, pipeline: Pipeline, submit: Submit) -> dict:
    """Encodes every selected side of the dataset, resuming from this job's markers.

    Args:
        cfg: the encode job's config (``jobs.config.EncodeJobConfig``), or any object with its sections.
        pipeline: runs the stages and yields the write stage's result blocks as they come.
        submit: runs a finalisation somewhere and returns its future.

    Returns:
        The summary (also written to ``<output>/summary.json``); ``complete`` is False when some
        shard failed: its reason is under ``sides.<kind>.failed`` and a rerun retries it.

    Raises:
        DataError: the dataset check found a structural problem (nothing was encoded).
        OutputConflict: the output holds another job's embeddings and overwrite is off.
        FileNotFoundError: no dataset or no checkpoint at the configured URIs.
        ConfigError: the dataset, checkpoint or output location is not set.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with ThreadPoolExecutor(2) as pool:  # doctest: +SKIP
        ...     summary = run_encode(cfg, lambda stages: stages.iter_local(), pool.submit)  # no Ray: one process
        >>> summary["complete"], summary["sides"]["images"]["finished"]  # doctest: +SKIP
        (True, 3)
    """
    if missing := missing_locations(cfg.input, cfg.model, cfg.output):
        raise ConfigError("encode", missing)
    started = time.monotonic()
    check = check_dataset(resolve(cfg.input.dataset, cfg.storage))
    spec = ModelSpec.from_section(cfg.model, cfg.storage)
    identity = job_identity(cfg, checkpoint_identity(spec.checkpoint, spec.format))
    this_job = job_id(identity)
    info = spec.info()
    output = resolve(cfg.output.uri, cfg.storage)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    log.info("encode job %s (run %s): %s -> %s", this_job, run_id, identity["dataset"], identity["output"])
    plans = []
    for kind in cfg.input.selected():
        layout = SideLayout(output.join(kind), kind)
        claim_side(layout, identity, cfg.output.overwrite)
        plans.append(plan_side(check.manifest, kind, layout, this_job))
        log.info("%s: %d shard(s), %d done earlier, %d to encode",
                 kind, len(plans[-1].tasks), len(plans[-1].done), len(plans[-1].todo))
    job = _JobRun(plans, this_job, info, cfg.output.dtype, cfg.encode.progress_interval_s)
    reports = job.run(build_stages(plans, check, spec, info, cfg.encode, cfg.output.dtype, run_id), pipeline, submit,
                      identity["model"])
    first = job.tracker.first_items_at
    summary = build_summary(identity, this_job, reports, time.monotonic() - started,
                            None if first is None else first - started)
    output.join("summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


class _JobRun:
    """One run: feeds results to the tracker, finalises ready shards, writes each finished side's manifest."""

    def __init__(self, plans: list[SidePlan], job: str, info: ModelInfo, dtype: str, interval: float):
        self.plans = {p.kind: p for p in plans}
        self.global_kind, self.global_dim = info.global_kind, info.global_dim
        self.job, self.dim, self.dtype = job, info.embed_size, dtype
        self.progress = Progress(log, "encode", sum(len(p.todo) for p in plans), "shards", interval_s=interval)
        self.markers = {p.kind: dict(p.done) for p in plans}
        self.reports = {p.kind: SideReport(p.kind, shards=len(p.tasks), skipped=len(p.done)) for p in plans}
        self.tracker = ShardTracker([t for p in plans for t in p.todo])
        self.pending: dict[Future, ReadyShard] = {}

    def run(self, stages: Stages, pipeline: Pipeline, submit: Submit, model: dict) -> list[SideReport]:
        if stages.items:
            for plan in self.plans.values():
                if plan.todo:
                    plan.layout.manifest.remove()  # the side is about to change: no reader may trust the old manifest
                    plan.layout.staging().remove()  # parts of killed runs; their shards are all in todo
            for results in pipeline(stages):
                for ready in self.tracker.add(results):
                    layout = self.plans[ready.task.kind].layout
                    args = (ready.task, ready.parts, ready.rejects, layout, self.job, self.dim, self.dtype, self.global_dim)
                    self.pending[submit(finalize_shard, *args)] = ready
                self._collect(wait=False)
                self.progress.update(0, self._progress())
            self._collect(wait=True)
            for task in self.tracker.unfinished():
                self.tracker.fail(task, f"the pipeline ended with {self.tracker.arrived(task)} of its {task.rows} rows accounted for")
        self.progress.update(0, self._progress())
        self.progress.close()
        for kind, plan in self.plans.items():
            report = self.reports[kind]
            report.failed = {name: why for (k, name), why in self.tracker.failed.items() if k == kind}
            report.encoders = self.tracker.encoders[kind]
            report.bytes_staged = self.tracker.staged_bytes[kind]
            report.bytes_read = sum(t.bytes for t in plan.todo)
            if len(self.markers[kind]) == len(plan.tasks):
                plan.layout.staging().remove()  # parts a killed run's orphaned workers may still have written
                write_manifest(plan.layout, plan.tasks, self.markers[kind], model=model, job_id=self.job, dim=self.dim, dtype=self.dtype,
                               global_kind=self.global_kind, global_dim=self.global_dim)
                report.manifest = True
        return list(self.reports.values())

    def _collect(self, wait: bool) -> None:
        for future in [f for f in self.pending if wait or f.done()]:
            ready = self.pending.pop(future)
            try:
                marker = future.result()
            except (ExactlyOnceError, OSError) as err:  # the shard stays unfinished; the next run retries it
                self.tracker.fail(ready.task, f"finalising failed: {err}")
                continue
            self.markers[ready.task.kind][ready.task.stem] = marker
            report = self.reports[ready.task.kind]
            report.finished += 1
            report.items += marker["rows"]
            report.bytes_written += marker["bytes"]
            report.rejected.update(reason_kind(r["reason"]) for r in ready.rejects)
            self.progress.update(1, self._progress())

    def _progress(self) -> str:
        """What the progress line adds to the shard count: each side's finished shards (earlier runs' included),
        failures, and items this run."""
        sides = ", ".join(f"{kind} {len(self.markers[kind])}/{len(plan.tasks)}" for kind, plan in self.plans.items())
        items = sum(self.tracker.items.values())
        return f"{sides}; {len(self.tracker.failed)} failed; {items} items this run, {self.tracker.rate():.1f} items/s"
