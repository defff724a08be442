"""teran train: trains TERAN with Ray Train (TorchTrainer, DDP) on pairs streamed by Ray Data.

Rerunning with the same run name resumes from the last checkpoint; the best checkpoint (dev rsum) is
exported as a teran checkpoint folder that ``teran encode`` loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import torch

from jobs.common import job_parser, load_job_config, run_main
from jobs.ray_runtime import init_ray
from jobs.ray_train import absolute_dataset, export_best, fit, pair_dataset, report_epoch, resume
from jobs.train_config import TrainJobConfig
from teran_core.checkpoint import load_checkpoint
from teran_core.config import from_dict
from teran_core.data import CaptionCollator, DatasetManifest
from teran_core.losses import TeranLoss
from teran_core.model.teran import TERAN
from teran_core.storage import resolve
from teran_core.train import PairEncoder, validate
from teran_core.train.loop import DevSet, HiddenCache, train_epoch
from teran_core.train.state import TrainState

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
