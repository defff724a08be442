"""Recall of exhaustive, global-only and two-stage retrieval against a split's ground truth."""

from teran_core.recall.config import EvalSection
from teran_core.recall.evaluators import CollectionEvaluator
from teran_core.recall.run import evaluate_collection, evaluate_protocol, local_mapper
from teran_core.recall.truth import GroundTruth, load_ground_truth, split_ground_truth

__all__ = [
    "CollectionEvaluator", "EvalSection", "GroundTruth", "evaluate_collection",
    "evaluate_protocol", "load_ground_truth", "local_mapper", "split_ground_truth",
]
