"""The distillation loss: ListNet between TERAN's alignment scores and the head's cosines (docs/distill.md).

Rows are images, columns captions. The first ``queries`` rows and columns are the batch's own
items (image i matches caption i); any further rows or columns are hard negatives mined from a pool,
which lengthen every query's list but ask no query of their own.
"""

from __future__ import annotations

import dataclasses

import torch

from teran_core.alignment import TokenSet
from teran_core.config import knob
from teran_core.losses import training_alignment_scores
from teran_core.model.config import TeranConfig

__all__ = ["DistillLossConfig", "listnet_loss", "hardest_items", "teacher_scores"]


@dataclasses.dataclass
class DistillLossConfig:
    """The loss's knobs. Defaults are ALADIN's (teacher temperature 1 on raw sums, student scale 6)."""

    teacher_temperature: float = knob(1.0, gt=0)  # teacher distribution: softmax(alignment score / this)
    student_scale: float = knob(6.0, gt=0)  # student distribution: softmax(this * cosine)
    hard_negatives: int = knob(0, ge=0)  # per query, the teacher's hardest items from the pool added to the lists; 0: in-batch only
    pool_batches: int = knob(8, ge=1)  # the pool: TERAN token sets of the last N batches (images and captions)


def _cross_entropy(teacher: torch.Tensor, student: torch.Tensor, dim: int) -> torch.Tensor:
    """-sum p_T log p_S along ``dim``, one value per list."""
    return -(torch.softmax(teacher, dim) * torch.log_softmax(student, dim)).sum(dim)


def listnet_loss(student: torch.Tensor, teacher: torch.Tensor, config: DistillLossConfig,
                 queries: int | None = None) -> torch.Tensor:
    """ListNet cross-entropy, image->captions lists (rows) plus caption->images lists (columns).

    Args:
        student: (N, M) cosines of the head's vectors (images x captions).
        teacher: (N, M) alignment scores (detached here).
        config: the temperatures.
        queries: the leading rows and columns that query (the batch); None: all of them (N == M).

    Returns:
        mean over the query rows of the row cross-entropy + mean over the query columns of the column one.

    Example:
        >>> s, t = torch.zeros(2, 2), torch.zeros(2, 2)  # uniform vs uniform: log 2 per list, both directions
        >>> round(float(listnet_loss(s, t, DistillLossConfig())), 4)
        1.3863
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(f"listnet_loss: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must be equal (N, M)")
    queries = min(student.shape) if queries is None else queries
    if queries < 1 or queries > min(student.shape):
        raise ValueError(f"listnet_loss: queries {queries} outside 1..{min(student.shape)}")
    teacher = teacher.detach() / config.teacher_temperature
    student = student * config.student_scale
    rows = _cross_entropy(teacher[:queries], student[:queries], dim=1)  # (queries,) each image over all captions
    columns = _cross_entropy(teacher[:, :queries], student[:, :queries], dim=0)  # (queries,) each caption over all images
    return rows.mean() + columns.mean()


def hardest_items(teacher: torch.Tensor, per_query: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Pool positions of every query's ``per_query`` highest-scored items, as one sorted union.

    Args:
        teacher: (Q, P) teacher scores of Q queries against P pool items.
        per_query: items taken per query.
        exclude: (P,) bool, True for pool items that must not be taken (the batch's own items).

    Example:
        >>> hardest_items(torch.tensor([[0.1, 0.9, 0.5], [0.8, 0.2, 0.3]]), 1).tolist()
        [0, 1]
        >>> hardest_items(torch.tensor([[0.1, 0.9, 0.5]]), 1, exclude=torch.tensor([False, True, False])).tolist()
        [2]
    """
    if exclude is not None:
        teacher = teacher.masked_fill(exclude[None, :], float("-inf"))
    allowed = teacher.shape[1] if exclude is None else int((~exclude).sum())
    k = min(per_query, allowed)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.unique(teacher.topk(k, dim=1).indices.flatten().cpu())


def teacher_scores(images: TokenSet, captions: TokenSet, config: TeranConfig) -> torch.Tensor:
    """The teacher: the frozen TERAN's alignment scores, with the padding it was trained with (no gradient)."""
    with torch.no_grad():
        return training_alignment_scores(images, captions, config)
