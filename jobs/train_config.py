"""The configs of the Ray Train jobs, ``teran train`` and ``teran distill`` (``configs/train.yaml``, ``configs/distill.yaml``)."""

from __future__ import annotations

import dataclasses

from jobs.config import RayConfig
from teran_core.distill.config import DistillSection
from teran_core.distill.loss import DistillLossConfig
from teran_core.encode.config import ModelSection
from teran_core.model.config import TeranConfig
from teran_core.model.global_head import GlobalHeadConfig
from teran_core.storage import StorageConfig
from teran_core.train.config import OptimConfig, RunSection, ScalingSection, TrainDataConfig

__all__ = ["TrainJobConfig", "DistillJobConfig"]


@dataclasses.dataclass
class TrainJobConfig:
    """``teran train``: TERAN trained on Ray Train, checkpointed every epoch, resumable by run name."""

    model: TeranConfig = dataclasses.field(default_factory=TeranConfig)
    init_checkpoint: str | None = None  # start from this teran checkpoint instead of a fresh model
    data: TrainDataConfig = dataclasses.field(default_factory=TrainDataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    run: RunSection = dataclasses.field(default_factory=RunSection)
    scaling: ScalingSection = dataclasses.field(default_factory=ScalingSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def check(self) -> list[str]:
        if self.optim.cache_backbone_mb and self.model.fine_tune:
            return ["optim.cache_backbone_mb: a fine-tuned backbone changes every step, so its hidden states "
                    "cannot be cached; set model.fine_tune: false or optim.cache_backbone_mb: 0"]
        return []


def _distill_optim() -> OptimConfig:
    # ALADIN's Adam 1e-5 over 20 epochs trains head and backbone together; a head alone on frozen
    # tokens learns far faster (docs/distill.md has the measured rates)
    return OptimConfig(lr=1e-4, epochs=20, batch_size=32, lr_step_epochs=15)


@dataclasses.dataclass
class DistillJobConfig:
    """``teran distill``: a global head distilled over a frozen TERAN on Ray Train (docs/distill.md)."""

    teacher: ModelSection = dataclasses.field(default_factory=ModelSection)  # the frozen TERAN: a teran checkpoint folder or a reference .pth.tar
    head: GlobalHeadConfig = dataclasses.field(default_factory=GlobalHeadConfig)
    loss: DistillLossConfig = dataclasses.field(default_factory=DistillLossConfig)
    distill: DistillSection = dataclasses.field(default_factory=DistillSection)
    data: TrainDataConfig = dataclasses.field(default_factory=TrainDataConfig)  # pairs of train_split; agreement on dev_images of dev_split
    optim: OptimConfig = dataclasses.field(default_factory=_distill_optim)
    run: RunSection = dataclasses.field(default_factory=lambda: RunSection(name="distill"))  # export: TERAN + head, what teran encode loads
    scaling: ScalingSection = dataclasses.field(default_factory=ScalingSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def missing(self) -> list[str]:
        """What must be set before the job runs (the shipped config leaves it to the command line)."""
        return [f"{key}: not set; expected {what}" for key, value, what in (
            ("teacher.checkpoint", self.teacher.checkpoint, "a teran checkpoint folder or a reference .pth.tar"),
            ("data.dataset", self.data.dataset, "the folder holding dataset.json")) if not value]

    def check(self) -> list[str]:
        problems = []
        if self.optim.cache_backbone_mb:
            problems.append("optim.cache_backbone_mb: distillation caches the whole frozen TERAN's tokens; "
                            "set distill.cache_tokens_mb instead and leave optim.cache_backbone_mb at 0")
        return problems
