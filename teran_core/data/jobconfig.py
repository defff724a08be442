"""The configs of ``teran synth`` and ``teran convert``, and loading them with or without a YAML file."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from teran_core.config import RayConfig, from_dict, knob, load_config, parse_overrides
from teran_core.data.convert import CocoConfig, ConvertConfig, F30kConfig, PrecompConfig
from teran_core.data.synth import SynthConfig
from teran_core.storage import StorageConfig

__all__ = ["OutputConfig", "SynthJobConfig", "ConvertJobConfig", "load_data_job_config"]

T = TypeVar("T")


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


def load_data_job_config(cls: type[T], config: str | None, overrides: Sequence[str]) -> T:
    """The job config from a YAML file plus overrides, or from the overrides alone when ``config`` is None.

    Example:
        >>> load_data_job_config(SynthJobConfig, None, ["synth.images=5000", "output.uri=/tmp/x"]).synth.images
        5000
    """
    if config:
        return load_config(cls, config, overrides)
    return from_dict(cls, parse_overrides(overrides), source="<command line>")
