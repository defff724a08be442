"""Ray Train wiring shared by ``teran train`` and ``teran distill``: the pairs as a Ray dataset, the
TorchTrainer, resuming and reporting on a worker, and exporting the best checkpoint.

``cfg`` below is a training or a distill job config: both have ``data``, ``run``, ``scaling`` and
``storage`` sections.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile

import torch

from teran_core.config import to_dict
from teran_core.data import CaptionCollator, DatasetManifest
from teran_core.model.teran import TERAN
from teran_core.storage import resolve
from teran_core.train import CaptionIndex, PairBuilder
from teran_core.train.export import export_run
from teran_core.train.state import TrainState, load_train_state, save_train_state

log = logging.getLogger("teran.train")


def resume() -> tuple[TERAN, TrainState] | None:
    """On a training worker: the model and state of the run's last registered checkpoint (after a restart
    or a rerun of the same run name), or None for a fresh run."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return None
    with checkpoint.as_directory() as folder:
        model, state = load_train_state(folder)
    log.info("resuming at epoch %d, step %d", state.epoch, state.step)
    return model, state


def report_epoch(rank: int, model: TERAN, state: TrainState, optimizer, metrics: dict) -> None:
    """On a training worker, after an epoch: records it in ``state`` and reports ``metrics`` to Ray Train
    with a checkpoint of the model and state (written by rank 0)."""
    import ray.train

    state.epoch, state.optimizer = metrics["epoch"] + 1, optimizer.state_dict()
    state.history.append(metrics)
    with tempfile.TemporaryDirectory() as folder:
        if rank == 0:
            save_train_state(folder, model, state)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if rank == 0 else None)


def export_best(cfg, result) -> dict:
    """Copies the best checkpoint's model to the export folder, with the whole run's metrics CSV (per epoch), the
    logged steps' losses (steps.csv) and the curves PNG.

    ``cfg`` is a training or distill job config; the export folder is ``run.export``, or
    ``<run.storage_path>/<run.name>/best``."""
    best, best_metrics = max(result.best_checkpoints, key=lambda pair: pair[1].get("rsum", float("-inf")))
    with best.as_directory() as folder:
        model, _ = load_train_state(folder)
    with result.checkpoint.as_directory() as folder:  # the latest one: its history has every epoch, the best's may not
        _, state = load_train_state(folder)
    export_to = cfg.run.export or resolve(cfg.run.storage_path, cfg.storage).join(cfg.run.name, "best").uri
    export = export_run(model, state, export_to, cfg.storage, f"run {cfg.run.name}")
    return {"export": export, "best_epoch": best_metrics["epoch"] + 1, "best_rsum": best_metrics.get("rsum")}


def absolute_dataset(cfg):
    """``cfg`` with its dataset as an absolute URI: the workers run in Ray Train's own working directory."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=resolve(cfg.data.dataset, cfg.storage).uri))


def pair_dataset(ray, cfg, collator: CaptionCollator):
    """The train split's (image, caption) pairs as a Ray dataset, streamed from the image shards.

    ``cfg`` is a training or distill job config (its ``data`` and ``storage`` sections).
    """
    manifest = DatasetManifest.load(resolve(cfg.data.dataset, cfg.storage))
    index = CaptionIndex.build(manifest, cfg.data.train_split, collator)
    shards = manifest.shard_locations("images")
    # a plain function stage fuses with the read tasks: no actor holds a CPU the trainer needs
    pairs = ray.data.read_parquet([s.path for s in shards], filesystem=shards[0].pyarrow_filesystem()).map_batches(
        PairBuilder(index), batch_format="pyarrow")
    log.info("%d captions of split %r", len(index), cfg.data.train_split)
    return pairs.materialize() if cfg.data.materialize else pairs


def _with_threads(loop_per_worker, threads: int):
    """``loop_per_worker`` with torch's intra-op threads set first (Ray sets OMP_NUM_THREADS to the worker's CPUs)."""
    def run(loop_config: dict) -> None:
        torch.set_num_threads(threads)
        loop_per_worker(loop_config)
    return run


def fit(loop_per_worker, cfg, pairs):
    """Runs ``loop_per_worker`` on a TorchTrainer per ``cfg.run`` and ``cfg.scaling`` (a rerun of the same
    run name resumes); checkpoints are ranked by their ``rsum``. Returns the Ray Train result."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = resolve(cfg.run.storage_path, cfg.storage)
    threads = cfg.scaling.torch_threads
    trainer = TorchTrainer(
        _with_threads(loop_per_worker, threads) if threads else loop_per_worker,
        train_loop_config={"cfg": to_dict(cfg)},
        scaling_config=ScalingConfig(num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
                                     resources_per_worker={"CPU": cfg.scaling.cpus_per_worker}),
        run_config=RunConfig(
            name=cfg.run.name, storage_path=storage.path, storage_filesystem=storage.pyarrow_filesystem(),
            failure_config=FailureConfig(max_failures=cfg.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints,
                                               checkpoint_score_attribute="rsum", checkpoint_score_order="max"),
        ),
        datasets={"train": pairs},
    )
    return trainer.fit()
