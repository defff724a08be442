"""The training job's knobs. Defaults are the reference's COCO hyperparameters (the reference implementation's configs/teran_coco_MrSw.yaml, github.com/mesnico/TERAN)."""

from __future__ import annotations

import dataclasses

from teran_core.config import knob

__all__ = ["TrainDataConfig", "OptimConfig", "RunSection", "ScalingSection"]


@dataclasses.dataclass
class TrainDataConfig:
    dataset: str = "data/dataset"  # dataset URI (a folder with dataset.json), local or s3://
    train_split: str = "train"  # every caption of this split is one training pair per epoch (caption-indexed)
    dev_split: str = "dev"  # validated after every epoch
    dev_images: int = knob(1000, ge=1)  # validate on the first N dev images and their captions (reference: 1000)
    max_caption_tokens: int | None = knob(None, ge=3)  # None: the backbone's maximum (512)
    materialize: bool = False  # keep the pairs in Ray's object store after the first epoch instead of re-reading the shards; only for data that fits
    shuffle_buffer: int = knob(10000, ge=0)  # rows in each worker's local shuffle buffer; far above the batch so an image's 5 captions rarely meet


@dataclasses.dataclass
class OptimConfig:
    lr: float = knob(1e-5, gt=0)  # Adam, every trainable parameter including a fine-tuned backbone
    epochs: int = knob(30, ge=1)
    batch_size: int = knob(40, ge=2)  # pairs per worker per step (reference: 40 COCO, 30 Flickr30K)
    lr_step_epochs: int = knob(20, ge=1)  # StepLR: lr x lr_gamma every this many epochs
    lr_gamma: float = knob(0.1, gt=0, le=1)
    warmup_steps: int = knob(0, ge=0)  # linear warm-up over this many steps (reference Flickr30K: 1000)
    grad_clip: float = knob(2.0, gt=0)  # max global gradient norm
    cache_backbone_mb: int = knob(0, ge=0)  # frozen backbone only: cache its hidden states up to this many MB per worker


@dataclasses.dataclass
class RunSection:
    name: str = "teran"  # run name: starting the same name again resumes from its last checkpoint
    storage_path: str = "runs"  # local folder or s3:// URI where Ray Train keeps checkpoints
    export: str | None = None  # teran checkpoint folder written with the best model (what jobs.encode loads); None: <storage_path>/<name>/best
    keep_checkpoints: int = knob(2, ge=1)  # newest/best checkpoints kept by Ray Train
    max_failures: int = knob(1, ge=0)  # worker failures survived by restarting from the last checkpoint
    log_every_s: float = knob(20.0, gt=0)  # a progress line at least this often
    curve_every_steps: int = knob(50, ge=1)  # the training curve's loss is logged (mean of these steps) every this many steps


@dataclasses.dataclass
class ScalingSection:
    num_workers: int = knob(1, ge=1)  # data-parallel training workers (DDP when > 1)
    use_gpu: bool = False  # one GPU per worker
    cpus_per_worker: float = knob(1.0, gt=0)  # leave CPUs for the Ray Data read tasks that feed the workers
    torch_threads: int = knob(0, ge=0)  # intra-op threads per worker; 0: what Ray grants (cpus_per_worker). More: a CPU the idle feed leaves unused
