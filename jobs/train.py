"""teran train: trains TERAN with Ray Train (TorchTrainer, DDP) on pairs streamed by Ray Data.

Rerunning with the same run name resumes from the last checkpoint; the best checkpoint (dev rsum) is
exported as a teran checkpoint folder that ``teran encode`` loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile

import torch

from jobs.common import job_parser, load_job_config, run_main
from jobs.ray_runtime import init_ray
from teran_core.checkpoint import load_checkpoint, save_checkpoint
from teran_core.config import from_dict, to_dict
from teran_core.data import CaptionCollator, DatasetManifest
from teran_core.losses import TeranLoss
from teran_core.model.teran import TERAN
from teran_core.storage import resolve
from teran_core.train import CaptionIndex, PairBuilder, PairEncoder, TrainJobConfig, validate
from teran_core.train.curves import history_csv, history_png
from teran_core.train.loop import DevSet, HiddenCache, train_epoch
from teran_core.train.state import TrainState, load_train_state, save_train_state

CONFIG = TrainJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

log = logging.getLogger("teran.train")


def train_loop_per_worker(loop_config: dict) -> None:
    """Runs on every training worker: plain PyTorch around the numbered Ray Train calls."""
    import ray.train
    import ray.train.torch

    cfg = from_dict(TrainJobConfig, loop_config["cfg"])
    rank = ray.train.get_context().get_world_rank()
    resumed = resume()  # [1] after a restart or a rerun of the same run name
    if resumed:
        model, state = resumed
    elif cfg.init_checkpoint:
        model, state = load_checkpoint(cfg.init_checkpoint, cfg.storage), TrainState()
    else:
        model, state = TERAN(cfg.model), TrainState()
    cache = HiddenCache(cfg.optim.cache_backbone_mb) if cfg.optim.cache_backbone_mb else None
    encoder = ray.train.torch.prepare_model(PairEncoder(model, cache))  # [2] device placement, DDP when > 1 worker
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    loss_fn = TeranLoss(cfg.model)
    manifest = DatasetManifest.load(resolve(cfg.data.dataset, cfg.storage))
    dev = DevSet.load(manifest, cfg.data.dev_split, cfg.data.dev_images,
                      CaptionCollator(cfg.model.backbone, cfg.data.max_caption_tokens)) if rank == 0 else None
    pairs = ray.train.get_dataset_shard("train")  # [3] this worker's share of the streamed pairs
    for epoch in range(state.epoch, cfg.optim.epochs):
        batches = pairs.iter_batches(batch_size=cfg.optim.batch_size, batch_format="pyarrow", drop_last=True,
                                     local_shuffle_buffer_size=cfg.data.shuffle_buffer or None)
        metrics = train_epoch(encoder, loss_fn, optimizer, batches, cfg.optim, epoch, state, cfg.run.curve_every_steps,
                              log if rank == 0 else None, cfg.run.log_every_s)
        if rank == 0:
            metrics.update(validate(model, dev))
            log.info("epoch %d done: loss %.4f, dev rsum %.1f, t2i R@10 %.1f", epoch + 1, metrics["loss"],
                     metrics["rsum"], metrics["t2i_r10"])
        report_epoch(rank, model, state, optimizer, metrics)  # [4]


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

    ``cfg`` is a training or distill job config (``export_uri()``, ``run.name``, ``storage``)."""
    best, best_metrics = max(result.best_checkpoints, key=lambda pair: pair[1].get("rsum", float("-inf")))
    with best.as_directory() as folder:
        model, _ = load_train_state(folder)
    with result.checkpoint.as_directory() as folder:  # the latest one: its history has every epoch, the best's may not
        _, state = load_train_state(folder)
    export = resolve(cfg.export_uri(), cfg.storage)
    save_checkpoint(model, export.uri, cfg.storage)
    export.join("metrics.csv").write_text(history_csv(state.history))
    export.join("metrics.json").write_text(json.dumps(state.history, indent=2))
    export.join("steps.csv").write_text(history_csv(state.steps))
    export.join("curves.png").write_bytes(history_png(state.history, f"run {cfg.run.name}", state.steps))
    return {"export": export.uri, "best_epoch": best_metrics["epoch"] + 1, "best_rsum": best_metrics.get("rsum")}


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


def fit(loop_per_worker, cfg, pairs):
    """Runs ``loop_per_worker`` on a TorchTrainer per ``cfg.run`` and ``cfg.scaling`` (a rerun of the same
    run name resumes); checkpoints are ranked by their ``rsum``. Returns the Ray Train result."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = resolve(cfg.run.storage_path, cfg.storage)
    trainer = TorchTrainer(
        loop_per_worker,
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


def run(cfg: TrainJobConfig) -> dict:
    """Trains (or resumes) the run and exports its best checkpoint; returns a short summary."""
    ray = init_ray(cfg.ray)
    cfg = dataclasses.replace(absolute_dataset(cfg),
                              init_checkpoint=cfg.init_checkpoint and resolve(cfg.init_checkpoint, cfg.storage).uri)
    pairs = pair_dataset(ray, cfg, CaptionCollator(cfg.model.backbone, cfg.data.max_caption_tokens))
    log.info("training for %d epochs", cfg.optim.epochs)
    summary = export_best(cfg, fit(train_loop_per_worker, cfg, pairs))
    log.info("best checkpoint (epoch %d, dev rsum %.1f) exported to %s", summary["best_epoch"], summary["best_rsum"],
             summary["export"])
    return summary


def main(argv: list[str] | None = None) -> int:
    args = job_parser("teran train", __doc__.splitlines()[0]).parse_args(argv)

    def body() -> int:
        print(json.dumps(run(load_job_config(CONFIG, args)), indent=2))
        return 0

    return run_main("teran train", body)


if __name__ == "__main__":
    raise SystemExit(main())
