"""The distill job's knobs (``configs/distill.yaml``); the run, data, optimiser and scaling sections are training's."""

from __future__ import annotations

import dataclasses

from teran_core.config import knob

__all__ = ["DistillSection"]


@dataclasses.dataclass
class DistillSection:
    cache_tokens_mb: int = knob(1024, ge=0)  # the frozen TERAN's token sets cached per worker (float16), so later epochs cost only the head
    agreement_k: int = knob(10, ge=1)  # the top-k whose overlap with the teacher's is logged on the dev items
    # a fresh prototype head (head.kind: prototypes) starts from the k-means of the tokens of the first
    # init_images training images and their captions; FAISS wants about 39 tokens per prototype
    init_images: int = knob(1000, ge=1)
