"""The data, encode, index, compress and evaluate jobs' configs: the library's sections, the Ray section, and what each job needs set.

A job reads ``--config x.yaml`` plus ``section.key=value`` overrides into one of these
(``jobs.common.load_job_config``); the library's drivers take the sections they need. The Ray
Train jobs' configs are in ``jobs/train_config.py``, the demo's in ``jobs/demo_config.py``. The keys and
their defaults are what ``configs/<job>.yaml`` shows.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from teran_core.compress.run import CompressPaths, CompressSection
from teran_core.config import knob
from teran_core.data.convert import CocoConfig, ConvertConfig, F30kConfig, PrecompConfig
from teran_core.data.synth import SynthConfig
from teran_core.encode.config import EncodeSection, InputSection, ModelSection, OutputSection, missing_locations
from teran_core.index.config import BuildPaths, IndexSection, missing_paths
from teran_core.recall.config import EvalPaths, EvalSection, ReportSection
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import StorageConfig

__all__ = ["RayConfig", "OutputConfig", "SynthJobConfig", "ConvertJobConfig", "EncodeJobConfig", "BuildIndexJobConfig",
           "CompressJobConfig", "EvaluateJobConfig"]

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
