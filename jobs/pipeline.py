"""``teran pipeline``: synth (or an existing dataset) -> encode -> build-index -> evaluate in one Ray job.

    teran pipeline --config configs/pipeline.yaml [root=s3://bucket/run storage.endpoint_override=...]

Each stage is the real job, run with a config written to ``<root>/configs/<stage>.yaml`` (so it can
be rerun alone), and resumes as that job does. After a stage succeeds its measurements go to
``<root>/pipeline/<stage>.json``; rerunning the command skips every stage with a marker and reports
it from there. Remove a stage's marker, and every later one, to run them again. The end prints
one table and writes ``<root>/pipeline/summary.json``. Stage definitions: ``jobs.pipeline_plan``;
the runner (shared with ``teran demo``): ``jobs/steps.py``; this file measures each stage.

Memory is sampled from /proc over the driver's process tree, which holds every Ray process of a
local instance (not the processes on other nodes of a cluster).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from jobs.common import job_parser, load_job_config, run_main
from jobs.pipeline_plan import PipelineJobConfig, recall_rows, stage_items, stages, summary_table
from jobs.plan import Step
from jobs.steps import StepFailed, run_plan
from teran_core.procmon import TreeSampler
from teran_core.storage import StorageConfig, resolve

PROG = "teran pipeline"


def spilled_bytes() -> int | None:
    """Bytes spilled from the object store to disk since the Ray cluster started, over all its nodes.

    Read from the raylets' cumulative counter, the number behind ``ray memory --stats-only``'s
    "Spilled N MiB" line but exact and kept after spilled objects are freed (a spill folder's size is
    not). The API is Ray's private one: if it moves, the figure is None and the job goes on.
    """
    try:
        import ray
        from ray._private import internal_api

        # this job's own cluster: without an address Ray guesses, and another one may run on the machine
        state = internal_api.get_state_from_address(ray.get_runtime_context().gcs_address)
        reply = internal_api.get_memory_info_reply(state)
        return int(reply.store_stats.spilled_bytes_total)
    except Exception:  # noqa: BLE001 - a missing measurement must never fail the job
        return None


def folder_bytes(uris: list[str], storage: StorageConfig) -> int:
    """Total size of the files below each folder (or of each file) in ``uris``; missing ones count 0."""
    total = 0
    for uri in uris:
        loc = resolve(uri, storage)
        total += int(loc.fs.du(loc.path, total=True)) if loc.exists() else 0
    return total


def measure_stage(cfg: PipelineJobConfig, name: str, stage: Step, run: Callable[[], None]) -> dict:
    """Runs one stage under a fresh sampler; returns its measurements (the marker's content)."""
    sampler = TreeSampler(reset_peaks=True)  # Ray's workers outlive stages: peaks from this stage only
    sampler.sample()
    cpu_before, spill_before = dict(sampler.cpu), spilled_bytes()
    sampler.start()
    started = time.perf_counter()
    try:
        run()
    finally:
        sampler.stop()
    wall_s = time.perf_counter() - started
    spill_after = spilled_bytes()
    return {
        "wall_s": round(wall_s, 3),
        "items": stage_items(stage.job, resolve(stage.output, cfg.storage)),
        "bytes_read": folder_bytes(stage.inputs, cfg.storage),
        "bytes_written": folder_bytes([stage.output], cfg.storage),
        "driver_rss_peak": sampler.rss_peak.get(os.getpid(), 0),
        "largest_process": list(sampler.largest_child()),
        "tree_pss_peak": sampler.peak,
        "cpu_s": round(sum(s - cpu_before.get(pid, 0.0) for pid, s in sampler.cpu.items()), 1),
        "spilled_bytes": None if None in (spill_before, spill_after) else spill_after - spill_before,
    }


def run(cfg: PipelineJobConfig) -> int:
    started = time.perf_counter()
    root = resolve(cfg.root, cfg.storage)
    markers, plan = root.join("pipeline"), stages(cfg)
    try:
        recorded = run_plan(PROG, root, plan, cfg.ray, cfg.storage, markers=markers,
                            measure=lambda name, stage, run: measure_stage(cfg, name, stage, run), noun="stage")
    except StepFailed as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.code
    summary: dict = {"root": root.uri, "stages": recorded, "recall": []}
    if "evaluate" in plan:
        summary["recall"] = recall_rows(json.loads(resolve(plan["evaluate"].output, cfg.storage).join("results.json").read_text()))
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    markers.join("summary.json").write_text(json.dumps(summary, indent=1))
    print("\n" + summary_table(summary))
    print(f"[pipeline] summary: {markers.join('summary.json').uri}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs every unfinished stage; 0 done, 2 bad config, else the failed stage's code."""
    parser = job_parser(PROG, "Run synth, encode, build-index and evaluate as one resumable Ray job with one summary.")
    args = parser.parse_args(argv)
    return run_main(PROG, lambda: run(load_job_config(PipelineJobConfig, args)))


if __name__ == "__main__":
    sys.exit(main())
