"""teran distill: trains a global head over a frozen TERAN on Ray Train, so stage one gets vectors that rank like TERAN.

The teacher is the checkpoint's own alignment scores (docs/distill.md). Rerunning with the same run
name resumes from the last registered checkpoint; the best one (dev rsum of the head's vectors alone)
is exported as a teran checkpoint folder holding TERAN and the head, which ``teran encode`` writes
into the ``global`` column.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import torch

from jobs.common import job_parser, load_job_config, run_main
from jobs.ray_runtime import init_ray
from jobs.ray_train import absolute_dataset, export_best, fit, pair_dataset, report_epoch, resume
from jobs.train_config import DistillJobConfig
from teran_core.config import ConfigError, from_dict
from teran_core.data import CaptionCollator, DatasetManifest
from teran_core.distill import DevAgreement, FrozenTokens, TokenPool, distill_step
from teran_core.distill.loop import HeadPair, content_tokens
from teran_core.encode.model_spec import ModelSpec
from teran_core.model.global_head import build_global_head
from teran_core.storage import resolve
from teran_core.train import collate_pairs, learning_rate
from teran_core.train.loop import DevSet
from teran_core.train.state import TrainState

CONFIG = DistillJobConfig  # what this job's --config holds; the demo and the pipeline check their step configs with it

log = logging.getLogger("teran.distill")


def caption_collator(cfg: DistillJobConfig) -> CaptionCollator:
    """The teacher's own tokenizer, cut at ``data.max_caption_tokens`` when that is set."""
    collator = ModelSpec.from_section(cfg.teacher, cfg.storage).info().collator
    collator.max_length = min(collator.max_length, cfg.data.max_caption_tokens or collator.max_length)
    return collator


def distill_loop_per_worker(loop_config: dict) -> None:
    """Runs on every worker: plain PyTorch around the numbered Ray Train calls."""
    import ray.train
    import ray.train.torch

    cfg = from_dict(DistillJobConfig, loop_config["cfg"])
    rank = ray.train.get_context().get_world_rank()
    resumed = resume()  # [1] after a restart or a rerun of the same run name: TERAN with the head so far
    model, state = resumed or (ModelSpec.from_section(cfg.teacher, cfg.storage).load(), TrainState())
    head = model.global_head if resumed else build_global_head(cfg.head, model.config.embed_size)
    model.attach_global_head(None).to(ray.train.torch.get_device())  # the teacher: TERAN's own tokens
    manifest = DatasetManifest.load(resolve(cfg.data.dataset, cfg.storage))
    if not resumed and cfg.head.kind == "prototypes":  # before [2], whose DDP wrapper copies rank 0's prototypes to all
        sample = DevSet.load(manifest, cfg.data.train_split, cfg.distill.init_images, caption_collator(cfg))
        tokens = content_tokens(model, sample)
        head.init_from(tokens)
        log.info("prototypes: k-means of %d tokens of %d training images into %d", len(tokens), len(sample.images["n_regions"]),
                 head.width)
    frozen = FrozenTokens(model, cfg.distill.cache_tokens_mb)
    pair = ray.train.torch.prepare_model(HeadPair(head))  # [2] device placement, DDP when > 1 worker
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.optim.lr)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    pool = TokenPool(cfg.loss.pool_batches) if cfg.loss.hard_negatives else None
    dev = None
    if rank == 0:
        dev = DevAgreement(model, DevSet.load(manifest, cfg.data.dev_split, cfg.data.dev_images, caption_collator(cfg)),
                           cfg.distill.agreement_k)
        log.info("teacher dev rsum %.1f; head at start: %s", dev.teacher_rsum, _agreement_line(dev.measure(head), cfg))
    pairs = ray.train.get_dataset_shard("train")  # [3] this worker's share of the streamed pairs
    for epoch in range(state.epoch, cfg.optim.epochs):
        head.train()
        losses, started, last_log = [], time.time(), time.time()
        for table in pairs.iter_batches(batch_size=cfg.optim.batch_size, batch_format="pyarrow", drop_last=True,
                                        local_shuffle_buffer_size=cfg.data.shuffle_buffer or None):
            batch = collate_pairs(table)
            images, captions = frozen(batch)
            lr = learning_rate(cfg.optim, epoch, state.step)
            terms = distill_step(pair, model.config, images, captions, optimizer, lr, cfg.optim.grad_clip, cfg.loss,
                                 pool, (batch["image_id"], batch["caption_id"]))
            losses.append(terms["loss"])
            state.count_step(epoch, losses, cfg.run.curve_every_steps)
            if rank == 0 and time.time() - last_log >= cfg.run.log_every_s:
                log.info("epoch %d step %d loss %.4f (%.1f pairs/s) %s", epoch + 1, state.step, terms["loss"],
                         len(losses) * cfg.optim.batch_size / (time.time() - started), _agreement_line(dev.measure(head), cfg))
                last_log = time.time()
        metrics = {"epoch": epoch, "step": state.step, "loss": sum(losses) / max(len(losses), 1), "lr": lr,
                   "epoch_s": time.time() - started}
        if rank == 0:
            metrics.update(dev.measure(head))
            log.info("epoch %d done: loss %.4f, %s", epoch + 1, metrics["loss"], _agreement_line(metrics, cfg))
        model.attach_global_head(head)  # the checkpoint holds TERAN and the head
        report_epoch(rank, model, state, optimizer, metrics)  # [4]
        model.attach_global_head(None)


def _agreement_line(m: dict, cfg: DistillJobConfig) -> str:
    k = cfg.distill.agreement_k
    return (f"dev top-{k} overlap with the teacher {m[f'top{k}_overlap']:.3f}, Spearman {m['spearman']:.3f}, "
            f"head rsum {m['rsum']:.1f} (teacher {m['teacher_rsum']:.1f})")


def run(cfg: DistillJobConfig) -> dict:
    """Distills (or resumes) the run and exports its best checkpoint (TERAN + head); returns a short summary."""
    if missing := cfg.missing():
        raise ConfigError("DistillJobConfig", missing)
    ray = init_ray(cfg.ray)
    cfg = absolute_dataset(cfg)
    cfg = dataclasses.replace(cfg, teacher=dataclasses.replace(cfg.teacher, checkpoint=resolve(cfg.teacher.checkpoint, cfg.storage).uri))
    pairs = pair_dataset(ray, cfg, caption_collator(cfg))
    log.info("distilling %s for %d epochs", cfg.teacher.checkpoint, cfg.optim.epochs)
    summary = export_best(cfg, fit(distill_loop_per_worker, cfg, pairs))
    log.info("best head (epoch %d, dev rsum of its vectors alone %.1f) exported with TERAN to %s",
             summary["best_epoch"], summary["best_rsum"], summary["export"])
    return summary


def main(argv: list[str] | None = None) -> int:
    args = job_parser("teran distill", __doc__.splitlines()[0]).parse_args(argv)

    def body() -> int:
        print(json.dumps(run(load_job_config(CONFIG, args)), indent=2))
        return 0

    return run_main("teran distill", body)


if __name__ == "__main__":
    raise SystemExit(main())
