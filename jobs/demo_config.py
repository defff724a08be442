"""The demo's config (``configs/demo.yaml``): its data, model, training, distillation and encode knobs."""

from __future__ import annotations

import dataclasses

from jobs.config import RayConfig
from teran_core.config import knob
from teran_core.model.config import TeranConfig
from teran_core.model.global_head import GlobalHeadConfig
from teran_core.storage import StorageConfig

__all__ = ["DemoJobConfig"]


@dataclasses.dataclass
class DemoData:
    images: int = knob(4000, ge=10)  # synthetic images in all: test, then dev, then train
    test_images: int = knob(1000, ge=10)  # the evaluated 1K test split (5 captions each)
    dev_images: int = knob(500, ge=1)  # validated every epoch
    feature_dim: int = knob(128, ge=4)  # region feature size; 2048 for real bottom-up features
    seed: int = knob(0, ge=0)
    noise: float = knob(1.0, ge=0)  # see teran_core/data/synth/spec.py
    group_size: int = knob(4, ge=1)  # hard negatives per image + 1: same objects, other attributes and layout
    max_regions: int = knob(36, ge=2)  # regions per image at most (objects + background)



@dataclasses.dataclass
class DemoTraining:
    epochs: int = knob(1, ge=1)  # the same budget for both trained models
    batch_size: int = knob(32, ge=2)
    lr: float = knob(1e-3, gt=0)  # TERAN's: far above the reference's 1e-5, small heads trained from scratch for one epoch
    global_only_lr: float = knob(3e-4, gt=0)  # the global-only model's: its best of 3e-3, 1e-3, 3e-4 after one epoch (dev rsum 8.4, 26.8, 35.6)
    cache_backbone_mb: int = knob(1024, ge=0)  # the frozen backbone's hidden states are computed once
    dev_images: int = knob(500, ge=1)
    torch_threads: int = knob(2, ge=0)  # train and distill: the materialised pairs leave the second core idle; 0: Ray's one per worker



@dataclasses.dataclass
class DemoDistill:
    """The distill step's knobs; defaults are the best measured by benchmarks/distill_budget.py (docs/distill.md)."""

    epochs: int = knob(3, ge=1)  # later epochs cost the head alone: TERAN's tokens are computed once
    lr: float = knob(3e-3, gt=0)  # the head alone, from scratch: far above ALADIN's 1e-5
    # the head, as teran distill's head section; the demo's is the prototype head (docs/distill.md: one 128-wide
    # vector cannot rank like this TERAN)
    head: GlobalHeadConfig = dataclasses.field(default_factory=lambda: GlobalHeadConfig(kind="prototypes"))
    teacher_temperature: float = knob(0.05, gt=0)  # ALADIN's 1 leaves this small TERAN's softmax nearly flat
    student_scale: float = knob(30.0, gt=0)  # ALADIN's 6 cannot express a teacher that sharp
    batch_size: int = knob(128, ge=2)  # longer in-batch lists than ALADIN's 32, at about the same cost per epoch



@dataclasses.dataclass
class DemoEncode:
    batch_size: int = knob(128, ge=1)
    actors: int = knob(1, ge=1)



@dataclasses.dataclass
class DemoJobConfig:
    root: str = "demo_output"  # every artefact goes below this folder or s3:// prefix
    data: DemoData = dataclasses.field(default_factory=DemoData)
    model: TeranConfig = dataclasses.field(default_factory=TeranConfig)  # the demo YAML makes it small
    training: DemoTraining = dataclasses.field(default_factory=DemoTraining)
    distill: DemoDistill = dataclasses.field(default_factory=DemoDistill)
    encode: DemoEncode = dataclasses.field(default_factory=DemoEncode)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def check(self) -> list[str]:
        problems = []
        if self.data.test_images + self.data.dev_images >= self.data.images:
            problems.append(f"data.images: got {self.data.images}, expected more than test_images + dev_images "
                            f"({self.data.test_images + self.data.dev_images}) so that a train split remains")
        if self.model.feat_dim != self.data.feature_dim:
            problems.append(f"model.feat_dim: got {self.model.feat_dim}, expected data.feature_dim ({self.data.feature_dim})")
        return problems
