"""Driving an evaluation: queries, chunks mapped onto evaluators, metrics, gaps, costs, latency.

``mapper(method, calls)`` runs ``CollectionEvaluator.<method>(*call)`` for every call and returns
the results in order: Ray actors in ``jobs/evaluate.py``, a plain loop in tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from teran_core.recall.config import EvalSection
from teran_core.recall.evaluation import i2t_ranks, metrics_from_ranks, protocol_metrics, t2i_ranks
from teran_core.recall.evaluators import other_side
from teran_core.recall.truth import GroundTruth
from teran_core.retrieval import TwoStageConfig

__all__ = ["Mapper", "local_mapper", "query_rows", "evaluate_collection", "evaluate_protocol", "DIRECTIONS"]

Mapper = Callable[[str, list[tuple]], list]
DIRECTIONS = {"i2t": "images", "t2i": "captions"}  # direction -> query side
RECALL_KEYS = ("r1", "r5", "r10")


def local_mapper(evaluator) -> Mapper:
    """Runs every call on one in-process evaluator, in order (tests, benchmarks, small collections)."""
    return lambda method, calls: [getattr(evaluator, method)(*call) for call in calls]


def query_rows(gt: GroundTruth, side: str, n: int, seed: int) -> np.ndarray:
    """Split rows that query: all of them (n == 0) or a seeded sample of n, in split order.

    Images without a caption never query (they have no answer).
    """
    rows = np.unique(gt.caption_image) if side == "images" else np.arange(len(gt.caption_items))
    if n and n < len(rows):
        rows = np.sort(np.random.default_rng([seed, side == "images"]).choice(rows, n, replace=False))
    return rows


def _run(mapper: Mapper, method: str, side: str, gt: GroundTruth, rows: np.ndarray, chunk: int, *extra) -> dict:
    items = gt.image_items[rows] if side == "images" else gt.caption_items[rows]
    answers = gt.answers(side, rows)
    calls = [(side, items[a:a + chunk], answers[a:a + chunk], *extra) for a in range(0, len(rows), chunk)]
    parts = mapper(method, calls)
    return {
        "ranks": np.concatenate([p["ranks"] for p in parts]) if parts else np.zeros(0),
        "pairs": int(sum(p["pairs"] for p in parts)),
        "seconds": float(sum(p["seconds"] for p in parts)),
        "batch_seconds": [s for p in parts for s in p.get("batch_seconds", [])],
    }


def _summary(by_direction: dict, total_pairs: int, n_queries: int) -> dict:
    pairs = sum(r["pairs"] for r in by_direction.values())
    seconds = sum(r["seconds"] for r in by_direction.values())
    return {
        "metrics": metrics_from_ranks(by_direction["i2t"]["ranks"], by_direction["t2i"]["ranks"]),
        "pairs": pairs, "pairs_fraction": pairs / total_pairs if total_pairs else 0.0,
        "seconds": seconds, "qps": n_queries / seconds if seconds else float("inf"),
    }


def _gap(result: dict, exhaustive: dict) -> None:
    """Adds the recall gap to exhaustive (evaluator minus exhaustive, in points) and the R@10 ratios."""
    got, ref = result["metrics"], exhaustive["metrics"]
    result["gap"] = {f"{d}_{k}": got[f"{d}_{k}"] - ref[f"{d}_{k}"] for d in DIRECTIONS for k in RECALL_KEYS}
    result["gap"]["rsum"] = got["rsum"] - ref["rsum"]
    result["r10_ratio"] = {d: got[f"{d}_r10"] / ref[f"{d}_r10"] if ref[f"{d}_r10"] else None for d in DIRECTIONS}


def _from_matrix(protocol: dict, gt: GroundTruth, rows: dict, sizes: dict[str, int]) -> dict | None:
    """Exhaustive ranks read off the protocol's split matrix, when the split is the whole collection."""
    if "scores" not in protocol or (len(gt.image_items), len(gt.caption_items)) != (sizes["images"], sizes["captions"]):
        return None
    scores, seconds = protocol["scores"], protocol["seconds"]
    ranks = {"i2t": i2t_ranks(scores, gt.caption_image)[rows["images"]], "t2i": t2i_ranks(scores, gt.caption_image)[rows["captions"]]}
    return {d: {"ranks": ranks[d], "pairs": len(rows[side]) * sizes[other_side(side)],
                "seconds": seconds * len(rows[side]) / (len(rows["images"]) + len(rows["captions"]))}
            for d, side in DIRECTIONS.items()}


def evaluate_collection(section: EvalSection, two_stage: TwoStageConfig, gt: GroundTruth, sizes: dict[str, int],
                        mapper: Mapper, protocol: dict | None = None) -> dict:
    """Queries against the whole indexed collection with every configured evaluator.

    Args:
        section: what to measure.
        two_stage: the two-stage settings; its k_candidates is the headline K'.
        gt: the split's ground truth in item space.
        sizes: items per side in the collection.
        mapper: runs evaluator calls (see the module docstring).
        protocol: :func:`evaluate_protocol`'s result; when the split is the whole collection its
            score matrix gives the exhaustive ranks, so nothing is scored twice.

    Returns:
        JSON-ready results: per evaluator metrics, pairs scored, fraction of all pairs, seconds,
        queries per second, gap to exhaustive; the K' sweep; two-stage latency percentiles.

    Example (tests/recall/test_run.py runs this on a small collection)::

        evaluator = CollectionEvaluator(TeranIndex.open(uri), TwoStageConfig(k_candidates=100))
        results = evaluate_collection(EvalSection(queries=1000), TwoStageConfig(k_candidates=100), gt,
                                      {"images": n_images, "captions": n_captions}, local_mapper(evaluator))
        results["evaluators"]["two-stage"]["r10_ratio"]  # {"i2t": ..., "t2i": ...}
    """
    sample = {"captions": section.queries, "images": section.image_queries or section.queries}
    rows = {side: query_rows(gt, side, n, section.seed) for side, n in sample.items()}
    total = sum(len(rows[side]) * sizes[other_side(side)] for side in DIRECTIONS.values())
    n_queries = sum(len(r) for r in rows.values())
    chunk = section.chunk_queries

    def run_all(method: str, *extra) -> dict:
        by_direction = {d: _run(mapper, method, side, gt, rows[side], chunk, *extra) for d, side in DIRECTIONS.items()}
        return _summary(by_direction, total, n_queries)

    out: dict = {"collection": sizes, "queries": {s: len(r) for s, r in rows.items()}, "total_pairs": total,
                 "evaluators": {}, "sweep": []}
    if "exhaustive" in section.evaluators:
        known = _from_matrix(protocol or {}, gt, rows, sizes)
        if known is not None:
            out["evaluators"]["exhaustive"] = _summary(known, total, n_queries)
        elif total <= section.max_exhaustive_pairs:
            out["evaluators"]["exhaustive"] = run_all("exhaustive")
        else:
            out["exhaustive_skipped"] = f"{total} pairs > eval.max_exhaustive_pairs {section.max_exhaustive_pairs}; sample fewer eval.queries"
    if "global" in section.evaluators:
        out["evaluators"]["global"] = {**run_all("global_ann", section.global_k), "k": section.global_k}
    if "two-stage" in section.evaluators:
        for k in sorted({*section.k_sweep, two_stage.k_candidates}):
            result = {**run_all("two_stage", k), "k_candidates": k}
            out["sweep"].append(result)
            if k == two_stage.k_candidates:
                out["evaluators"]["two-stage"] = result
        if section.latency_queries:
            out["latency_ms"] = _latency(mapper, gt, rows["captions"][: section.latency_queries], two_stage.k_candidates)
    if "exhaustive" in out["evaluators"]:
        for result in [*out["evaluators"].values(), *out["sweep"]]:
            _gap(result, out["evaluators"]["exhaustive"])
    return out


def _latency(mapper: Mapper, gt: GroundTruth, rows: np.ndarray, k: int) -> dict:
    """Text->image queries one at a time: the latency a single user sees."""
    items, answers = gt.caption_items[rows], gt.answers("captions", rows)
    (result,) = mapper("two_stage", [("captions", items, answers, k, 1)])
    ms = 1000 * np.asarray(result["batch_seconds"])
    return {"direction": "t2i", "k_candidates": k, "queries": len(ms),
            **{f"p{p}": float(np.percentile(ms, p)) for p in (50, 90, 99)}}


def evaluate_protocol(section: EvalSection, gt: GroundTruth, mapper: Mapper, block_images: int = 256) -> dict:
    """The reference protocol on the split's full exact-score matrix (images x captions, split order).

    Returns:
        {"name", "metrics", "scores" (the matrix, for :func:`evaluate_collection`), "seconds"}, or
        {"name", "skipped"} when the matrix has more than ``max_exhaustive_pairs`` pairs.
    """
    pairs = len(gt.image_items) * len(gt.caption_items)
    if pairs > section.max_exhaustive_pairs:
        return {"name": section.protocol, "skipped": f"{pairs} pairs > eval.max_exhaustive_pairs"}
    start = time.perf_counter()
    calls = [(gt.image_items[a:a + block_images], gt.caption_items) for a in range(0, len(gt.image_items), block_images)]
    scores = np.concatenate(mapper("score_block", calls))  # (n_images, n_captions)
    return {"name": section.protocol, "metrics": protocol_metrics(scores, gt.caption_image, section.protocol),
            "scores": scores, "seconds": time.perf_counter() - start}


def report_config(section: EvalSection, two_stage: TwoStageConfig) -> dict:
    return {"eval": dataclasses.asdict(section), "two_stage": dataclasses.asdict(two_stage)}
