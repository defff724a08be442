"""The encode job's knobs: what to read, which model, where to write and how many encoders.

``configs/encode.yaml`` sets every section; ``teran encode --config x.yaml section.key=value``
overrides single keys.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

from teran_core.config import knob
from teran_core.storage import StorageConfig

__all__ = ["InputSection", "ModelSection", "OutputSection", "EncodeSection", "EncodeSections", "missing_locations"]

KINDS = ("images", "captions")


@dataclasses.dataclass
class InputSection:
    """The teran dataset to encode."""

    dataset: str = ""  # dataset folder holding dataset.json: a local path or s3://bucket/prefix
    kinds: Literal["both", "images", "captions"] = "both"  # which side(s) to encode

    def selected(self) -> tuple[str, ...]:
        """The kinds to encode, in a fixed order."""
        return KINDS if self.kinds == "both" else (self.kinds,)


@dataclasses.dataclass
class ModelSection:
    """The model that encodes; its identity is part of the job id."""

    checkpoint: str = ""  # a teran checkpoint folder (save_checkpoint) or a reference .pth/.pth.tar file; local or s3://
    format: Literal["auto", "teran", "reference"] = "auto"  # auto: a file ending in .pth/.tar is a reference checkpoint

    def resolved_format(self) -> str:
        """"teran" or "reference"."""
        if self.format != "auto":
            return self.format
        return "reference" if self.checkpoint.rstrip("/").endswith((".pth", ".tar")) else "teran"


@dataclasses.dataclass
class OutputSection:
    """Where the embedding set goes: ``<uri>/images``, ``<uri>/captions`` and ``<uri>/summary.json``."""

    uri: str = ""  # embedding set folder: a local path or s3://bucket/prefix
    dtype: Literal["float16", "float32"] = "float16"  # stored dtype of the embeddings
    overwrite: bool = False  # True (or --overwrite): delete earlier output of any job there and encode everything


@dataclasses.dataclass
class EncodeSection:
    """The Ray pipeline's sizes. Defaults suit a CPU machine; a GPU cluster sets num_gpus: 1."""

    batch_size: int = knob(64, ge=1)  # items per encoder call; on GPU the largest that fits (H100 fp16: 1024 images)
    actors: int = knob(1, ge=1)  # encoder actors, each with its own model copy; on GPU one per GPU
    num_gpus: float = knob(0.0, ge=0.0)  # GPUs per actor; 0 encodes on CPU
    cpus_per_actor: float = knob(0.5, gt=0.0)  # logical CPUs per actor; fractional so read/write tasks keep a CPU
    calls_per_actor: int = knob(1, ge=1)  # batches an actor works on at once (threads); 2 on a GPU overlaps one batch's host work with another's GPU work
    torch_threads: int = knob(0, ge=0)  # intra-op threads per actor; 0: what Ray grants (OMP_NUM_THREADS)
    device: Literal["auto", "cuda", "cpu"] = "auto"  # where actors compute; auto: cuda when num_gpus > 0. cpu: e.g. a rehearsal whose "GPUs" are Ray resources only
    precision: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # autocast dtype; auto: float16 on GPU, float32 on CPU
    prepare_batch_size: int = knob(256, ge=1)  # rows per CPU validation/tokenisation call
    finalizers: int = knob(2, ge=1)  # long-lived actors merging finished shards, 4 at a time each (I/O bound); more for many GPUs
    progress_interval_s: float = knob(10.0, gt=0.0)  # seconds between the driver's progress log lines

    def check(self) -> list[str]:
        problems = []
        if self.resolved_device() == "cpu" and self.precision in ("float16", "bfloat16"):
            problems.append(f"precision: got {self.precision!r} on the CPU; half-precision autocast is for GPUs, use 'auto' or 'float32'")
        if self.device == "cuda" and self.num_gpus == 0:
            problems.append("device: got 'cuda' with num_gpus 0; Ray would give the actors no GPU, set num_gpus: 1")
        return problems

    def resolved_device(self) -> str:
        """The torch device the encoders use: explicit, or cuda when Ray grants them a GPU."""
        if self.device != "auto":
            return self.device
        return "cuda" if self.num_gpus > 0 else "cpu"

    def resolved_precision(self) -> str:
        """The autocast dtype the encoders use: explicit, or float16 on GPU and float32 on CPU."""
        if self.precision != "auto":
            return self.precision
        return "float16" if self.resolved_device() == "cuda" else "float32"


class EncodeSections(Protocol):
    """What the encode driver reads of a job's config (``jobs.config.EncodeJobConfig`` is one)."""

    input: InputSection
    model: ModelSection
    output: OutputSection
    encode: EncodeSection
    storage: StorageConfig


def missing_locations(input: InputSection, model: ModelSection, output: OutputSection) -> list[str]:
    """The locations an encode run needs that are still empty (shipped configs leave them to the command line).

    Example:
        >>> missing_locations(InputSection(), ModelSection(), OutputSection())[0]
        'input.dataset: missing; set it, e.g. input.dataset=s3://bucket/datasets/coco (the folder holding dataset.json)'
    """
    needed = {
        "input.dataset": (input.dataset, "s3://bucket/datasets/coco (the folder holding dataset.json)"),
        "model.checkpoint": (model.checkpoint, "s3://bucket/runs/teran (a teran checkpoint folder or a reference .pth.tar)"),
        "output.uri": (output.uri, "s3://bucket/emb/coco (where the embedding set goes)"),
    }
    return [f"{key}: missing; set it, e.g. {key}={example}" for key, (value, example) in needed.items() if not value]
