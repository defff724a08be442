"""The one runner behind ``teran demo`` and ``teran pipeline``: a plan of steps, each a real job.

Every step's job config is built and checked before the first step runs (a bad value in a late step
stops the run in seconds). Each step then runs the real job with its config written to
``<root>/configs/<step>.yaml``, so it can be rerun or inspected alone; a ``model`` step saves an
untrained, seeded TERAN instead. With a marker folder (the pipeline), a finished step writes
``<markers>/<step>.json`` holding its config and what ``measure`` returned; a rerun skips every step
with a marker and reports it from there, and a marker whose config differs from this run's is an
error, never silently reused. One Ray instance serves every step, started by the first that runs.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable

import torch

from jobs.cli import SUBCOMMANDS
from jobs.common import check_steps, step_config_dir, write_step_config
from jobs.config import RayConfig
from jobs.plan import Step, config_mismatch
from jobs.ray_runtime import init_ray
from teran_core.checkpoint import save_checkpoint
from teran_core.config import ConfigError, from_dict
from teran_core.model.config import TeranConfig
from teran_core.model.teran import TERAN
from teran_core.storage import Location, StorageConfig

MODEL = "model"  # the one step that is not a `teran` subcommand: an untrained TERAN, saved by the runner

Measure = Callable[[str, Step, Callable[[], None]], dict]  # measure(name, step, run) runs the step; returns what to record


class StepFailed(RuntimeError):
    """A step's job returned a non-zero exit code (it has printed why); the plan's job exits with that code."""

    def __init__(self, name: str, code: int, path: str):
        self.code = code
        super().__init__(f"step {name} failed with exit code {code}; its config is {path}")


def job_module(job: str):
    """The module of the ``teran`` subcommand ``job`` (``jobs.cli.SUBCOMMANDS``, imported when first needed)."""
    return importlib.import_module(SUBCOMMANDS[job][0])


def check_plan(prog: str, plan: dict[str, Step]) -> None:
    """Builds and checks every step's config (a ``model`` step's TERAN config too); raises one ConfigError."""
    check_steps(prog, {name: (TeranConfig, step.config["model"]) if step.job == MODEL else (job_module(step.job).CONFIG, step.config)
                       for name, step in plan.items()})


def run_step(root: Location, config_dir: str, name: str, step: Step, storage: StorageConfig) -> None:
    """Runs one step in this process; raises :class:`StepFailed` when its job fails."""
    if step.job == MODEL:
        torch.manual_seed(step.config["seed"])
        save_checkpoint(TERAN(from_dict(TeranConfig, step.config["model"])), step.output, storage)
        return
    path = write_step_config(root, config_dir, name, step.job, step.config)
    code = job_module(step.job).main(["--config", path])
    if code:
        raise StepFailed(name, code, path)


def run_plan(prog: str, root: Location, plan: dict[str, Step], ray: RayConfig, storage: StorageConfig,
             markers: Location | None = None, measure: Measure | None = None, noun: str = "step") -> dict[str, dict]:
    """Checks the whole plan, then runs each step not finished earlier; returns, per step, what was recorded
    (``measure``'s figures, ``{}`` without one) plus ``skipped``. ``noun``: what the progress lines call a step. Raises ConfigError for a bad plan or a
    marker of another config, :class:`StepFailed` for a failed step.

    Example (``teran demo`` runs its plan from scratch; ``teran pipeline`` keeps markers)::

        results = run_plan("teran pipeline", root, stages(cfg), cfg.ray, cfg.storage, markers=root.join("pipeline"))
    """
    started = time.perf_counter()
    check_plan(prog, plan)
    config_dir = step_config_dir(root)
    tag = prog.split()[-1]
    results: dict[str, dict] = {}
    for number, (name, step) in enumerate(plan.items(), 1):
        marker = markers.join(f"{name}.json") if markers is not None else None
        config = json.loads(json.dumps(step.config))  # as the marker records it
        if marker is not None and marker.exists():
            recorded = json.loads(marker.read_text())
            # where Ray runs does not change what a step writes: a rerun may use other resources
            changed = config_mismatch({**recorded.pop("config"), "ray": None}, {**config, "ray": None})
            if changed:
                raise ConfigError(marker.uri, [f"{noun} {name} finished with another value of {key}; use another root, or "
                                               f"remove {marker.uri} and every later {noun}'s marker to run them again" for key in changed])
            print(f"[{tag}] {noun} {number}/{len(plan)}: {name} skipped, finished earlier ({marker.uri})", flush=True)
            results[name] = {**recorded, "skipped": True}
            continue
        print(f"[{tag}] {time.perf_counter() - started:6.0f}s {noun} {number}/{len(plan)}: {name}", flush=True)
        if step.job != MODEL:
            init_ray(ray)  # one Ray for every job, started by the first that runs: a finished plan starts none

        def run(name=name, step=step) -> None:
            run_step(root, config_dir, name, step, storage)

        measured = measure(name, step, run) if measure is not None else run() or {}
        if marker is not None:
            marker.write_text(json.dumps({"stage": name, "job": step.job, **measured, "config": config,
                                          "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
        results[name] = {**measured, "skipped": False}
    return results
