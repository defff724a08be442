"""Every job's config: the library's sections, the Ray section, and what each job needs set.

A job reads ``--config x.yaml`` plus ``section.key=value`` overrides into one of these
(``jobs.common.load_job_config``); the library's drivers take the sections they need. The keys and
their defaults are what ``configs/<job>.yaml`` shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from teran_core.compress.run import CompressPaths, CompressSection
from teran_core.config import from_dict, knob, load_config, parse_overrides
from teran_core.data.convert import CocoConfig, ConvertConfig, F30kConfig, PrecompConfig
from teran_core.data.synth import SynthConfig
from teran_core.distill.config import DistillSection
from teran_core.distill.loss import DistillLossConfig
from teran_core.encode.config import EncodeSection, InputSection, ModelSection, OutputSection, missing_locations
from teran_core.index.config import BuildPaths, IndexSection, missing_paths
from teran_core.model.config import TeranConfig
from teran_core.model.global_head import GlobalHeadConfig
from teran_core.recall.config import EvalPaths, EvalSection, ReportSection
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import StorageConfig, resolve
from teran_core.train.config import OptimConfig, RunSection, ScalingSection, TrainDataConfig

__all__ = ["RayConfig", "OutputConfig", "SynthJobConfig", "ConvertJobConfig", "EncodeJobConfig", "BuildIndexJobConfig",
           "CompressJobConfig", "EvaluateJobConfig", "TrainJobConfig", "DistillJobConfig", "load_data_job_config"]

T = TypeVar("T")


@dataclasses.dataclass
class RayConfig:
    """Where the Ray jobs run. Read by ``jobs/``; the library itself never imports Ray."""

    address: str | None = None  # "auto" or "ray://host:10001"; None: RAY_ADDRESS if set, else a local instance on 127.0.0.1
    num_cpus: int | None = knob(None, ge=1)  # local instance only; None = every core
    object_store_memory_mb: int | None = knob(None, ge=64)  # local instance only; None = Ray's default (30% of RAM)


@dataclasses.dataclass
class OutputConfig:
    """Where a dataset is written."""

    uri: str = ""  # the dataset folder: a local path or s3://bucket/prefix (the CLI's --out)
    shard_mb: int = knob(128, ge=1)  # target size of an images shard; captions and splits are far smaller
    overwrite: bool = False  # replace a finished dataset already at uri (its manifest is removed first)

    def check(self) -> list[str]:
        return [] if self.uri else ["uri: missing; set output.uri (the dataset folder: a local path or s3://bucket/prefix)"]


@dataclasses.dataclass
class SynthJobConfig:
    """``teran synth``: a grounded synthetic dataset written by one Ray task per shard."""

    synth: SynthConfig = dataclasses.field(default_factory=SynthConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)


@dataclasses.dataclass
class ConvertJobConfig:
    """``teran convert coco|f30k|precomp``: a reference-layout folder to a teran dataset, one Ray task per images shard."""

    convert: ConvertConfig = dataclasses.field(default_factory=ConvertConfig)
    coco: CocoConfig = dataclasses.field(default_factory=CocoConfig)
    f30k: F30kConfig = dataclasses.field(default_factory=F30kConfig)
    precomp: PrecompConfig = dataclasses.field(default_factory=PrecompConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)  # for the source root and the output alike
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)


@dataclasses.dataclass
class EncodeJobConfig:
    """``teran encode``: dataset shards -> embedding shards, exactly once, resumable."""

    input: InputSection = dataclasses.field(default_factory=InputSection)
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    output: OutputSection = dataclasses.field(default_factory=OutputSection)
    encode: EncodeSection = dataclasses.field(default_factory=EncodeSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)  # one store for input, model and output
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def missing(self) -> list[str]:
        """The locations a run needs that are still empty (shipped configs leave them to the command line).

        Example:
            >>> EncodeJobConfig().missing()[0]
            'input.dataset: missing; set it, e.g. input.dataset=s3://bucket/datasets/coco (the folder holding dataset.json)'
        """
        return missing_locations(self.input, self.model, self.output)


@dataclasses.dataclass
class BuildIndexJobConfig:
    """``teran build-index``: an embedding set -> a sharded FAISS index with id maps."""

    paths: BuildPaths = dataclasses.field(default_factory=BuildPaths)
    index: IndexSection = dataclasses.field(default_factory=IndexSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)  # one store for embeddings and index
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def missing(self) -> list[str]:
        """The locations a run needs that are still empty."""
        return missing_paths(self.paths, ("embeddings", "index"))


@dataclasses.dataclass
class CompressJobConfig:
    """``teran compress``: an fp16 embedding set -> centroids plus a residual-compressed embedding set."""

    paths: CompressPaths = dataclasses.field(default_factory=CompressPaths)
    compress: CompressSection = dataclasses.field(default_factory=CompressSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def missing(self) -> list[str]:
        problems = missing_paths(self.paths, ("embeddings", "output"))
        if not problems and self.paths.embeddings.rstrip("/") == self.paths.output.rstrip("/"):
            problems.append("paths.output: must differ from paths.embeddings (the fp16 set is read while the compressed one is written)")
        return problems


@dataclasses.dataclass
class EvaluateJobConfig:
    """``teran evaluate``: recall of exhaustive, global-only and two-stage retrieval against ground truth."""

    paths: EvalPaths = dataclasses.field(default_factory=EvalPaths)
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)
    two_stage: TwoStageConfig = dataclasses.field(default_factory=TwoStageConfig)
    report: ReportSection = dataclasses.field(default_factory=ReportSection)
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)

    def missing(self) -> list[str]:
        """The locations a run needs that are still empty."""
        return missing_paths(self.paths, ("dataset", "index", "output"))


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

    def export_uri(self) -> str:
        return self.run.export or resolve(self.run.storage_path, self.storage).join(self.run.name, "best").uri


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

    def export_uri(self) -> str:
        return self.run.export or resolve(self.run.storage_path, self.storage).join(self.run.name, "best").uri


def load_data_job_config(cls: type[T], config: str | None, overrides: Sequence[str]) -> T:
    """The job config from a YAML file plus overrides, or from the overrides alone when ``config`` is None.

    Example:
        >>> load_data_job_config(SynthJobConfig, None, ["synth.images=5000", "output.uri=/tmp/x"]).synth.images
        5000
    """
    if config:
        return load_config(cls, config, overrides)
    return from_dict(cls, parse_overrides(overrides), source="<command line>")
