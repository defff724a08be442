"""The evaluate job's knobs: which index and split, which evaluators, how many queries, K' sweep.

``configs/evaluate.yaml`` sets every section; ``teran evaluate --config x.yaml section.key=value``
overrides single keys.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from teran_core.config import knob
from teran_core.recall.evaluation import PROTOCOLS

__all__ = ["EVALUATORS", "EvalPaths", "EvalSection", "ReportSection"]

EVALUATORS = ("exhaustive", "global", "two-stage")


@dataclasses.dataclass
class EvalPaths:
    """Ground truth, the index (which records its embedding set and model), and the report folder."""

    dataset: str = ""  # teran dataset folder (dataset.json): the split's image-caption pairs are the ground truth
    split: str = "test"  # split to evaluate; its image order defines the reference 1K folds
    index: str = ""  # index folder written by `teran build-index`
    output: str = ""  # report folder: results.json, report.md, *.png, report.html, examples.json


@dataclasses.dataclass
class EvalSection:
    """What is measured, on how many queries."""

    protocol: str = "all"  # reference protocol of the exhaustive split matrix: coco-1k, coco-5k, f30k-1k or all
    evaluators: list[str] = dataclasses.field(default_factory=lambda: list(EVALUATORS))  # any of exhaustive, global, two-stage
    queries: int = knob(0, ge=0)  # 0: every split image and caption queries; N: a seeded sample of N captions and N images (large-scale mode)
    image_queries: int | None = knob(None, ge=1)  # large-scale mode: another sample size for images (an exhaustive image query costs 5x a caption's)
    seed: int = knob(0, ge=0)  # query sample
    max_exhaustive_pairs: int = knob(2 * 10**9, ge=0)  # exhaustive runs only below this many TERAN pairs (5K COCO: 1.25e8)
    global_k: int = knob(1000, ge=1)  # length of the global-only kNN list (ranks beyond it are misses)
    k_sweep: list[int] = dataclasses.field(default_factory=lambda: [10, 50, 100, 500, 1000])  # K' values for the plots; two_stage.k_candidates is always included
    chunk_queries: int = knob(256, ge=1)  # queries per Ray actor call
    latency_queries: int = knob(100, ge=0)  # queries timed one at a time for latency percentiles
    actors: int = knob(2, ge=1)  # evaluator actors, each holding the index and token stores
    actor_cpus: float = knob(1.0, gt=0)  # Ray CPUs per actor
    in_memory: bool | Literal["auto"] = "auto"  # hold the embedding shards in each actor's RAM as stored, decoding only what is scored (else fetch candidates from the shards); auto: when they fit in_memory_max_gb
    in_memory_max_gb: float = knob(4.0, ge=0)  # auto: the most shard bytes (both sides) each evaluator actor holds; a compressed store takes ~0.9 GiB at 170K images
    searcher_max_bytes: int = knob(2**31, ge=0)  # index shard bytes one searcher actor maps: the index is spread over ceil(index bytes / this) searchers, so no process's memory grows with the collection; 0 = each evaluator actor maps the whole index
    searcher_cpus: float = knob(0.0, ge=0)  # Ray CPUs per searcher actor; 0 because a searcher works only while an evaluator (which holds actor_cpus) waits for it
    searcher_start_timeout_s: float = knob(600.0, gt=0)  # searchers not started by then (no node with room) fail the job with the reason, instead of waiting forever
    progress_interval_s: float = knob(20.0, gt=0)  # seconds between the driver's progress log lines

    def holds_in_memory(self, stored_bytes: int) -> tuple[bool, str]:
        """Whether each evaluator actor holds the embedding set (``stored_bytes`` of shard files) in RAM, and why.

        Stage two reads every query's candidates: from RAM that is a decode, from the shards a read of
        each row group holding one (about half the two-stage query time at 170K images, docs/scaling.md).

        Example:
            >>> EvalSection().holds_in_memory(900 * 2**20)
            (True, 'auto: 0.88 GiB of shards <= eval.in_memory_max_gb 4')
            >>> EvalSection(in_memory_max_gb=0.5).holds_in_memory(900 * 2**20)[0]
            False
        """
        if self.in_memory != "auto":
            return bool(self.in_memory), f"eval.in_memory: {str(self.in_memory).lower()}"
        held = stored_bytes <= self.in_memory_max_gb * 2**30
        return held, f"auto: {stored_bytes / 2**30:.2f} GiB of shards {'<=' if held else '>'} eval.in_memory_max_gb {self.in_memory_max_gb:g}"

    def check(self) -> list[str]:
        problems = []
        if self.protocol not in PROTOCOLS:
            problems.append(f"protocol: got {self.protocol!r}, expected one of {sorted(PROTOCOLS)}")
        unknown = sorted(set(self.evaluators) - set(EVALUATORS))
        if unknown or not self.evaluators:
            problems.append(f"evaluators: got {self.evaluators}, expected a non-empty subset of {list(EVALUATORS)}")
        if any(k < 1 for k in self.k_sweep):
            problems.append(f"k_sweep: got {self.k_sweep}, expected positive K' values")
        return problems


@dataclasses.dataclass
class ReportSection:
    """What report.html shows beyond the tables and plots (teran_core/html_report)."""

    examples: bool = True  # a seeded gallery of a dozen queries per direction and two word-region alignment views (scores 64 queries per direction against the split)
    images_root: str = ""  # converted data: folder or s3:// prefix of the original pictures, drawn under the boxes; "" draws the boxes (and a synthetic scene's labels) on a blank canvas
    image_file: str = "{image_id}.jpg"  # a picture's path under images_root, a format string of image_id, e.g. "val2014/COCO_val2014_{image_id:0>12}.jpg"
