"""How closely the student ranks like the teacher, on held-out items (docs/distill.md)."""

from __future__ import annotations

import torch

__all__ = ["topk_overlap", "spearman", "agreement"]


def topk_overlap(student: torch.Tensor, teacher: torch.Tensor, k: int = 10) -> float:
    """Mean over rows of |top-k(student) ∩ top-k(teacher)| / k (1.0: the same k items in every row).

    Example:
        >>> topk_overlap(torch.tensor([[3., 2., 1.], [1., 2., 3.]]), torch.tensor([[3., 1., 2.], [3., 2., 1.]]), k=1)
        0.5
    """
    k = min(k, student.shape[1])
    hits = torch.zeros(student.shape, dtype=torch.bool, device=student.device)
    hits.scatter_(1, teacher.topk(k, dim=1).indices, True)
    return float(hits.gather(1, student.topk(k, dim=1).indices).float().sum(1).mean() / k)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return x.argsort(dim=1).argsort(dim=1).float()  # ties broken by position; scores are continuous


def spearman(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Mean over rows of Spearman's rank correlation.

    Example:
        >>> round(spearman(torch.tensor([[1., 2., 3.]]), torch.tensor([[10., 20., 30.]])), 4)
        1.0
        >>> round(spearman(torch.tensor([[1., 2., 3.]]), torch.tensor([[3., 2., 1.]])), 4)
        -1.0
    """
    a, b = _ranks(student), _ranks(teacher)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)).mean())


def agreement(student: torch.Tensor, teacher: torch.Tensor, k: int = 10) -> dict[str, float]:
    """Top-k overlap and Spearman of (images x captions) scores, averaged over both directions
    (image->captions rows, caption->images columns).

    Example:
        >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
        >>> {name: round(value, 4) for name, value in agreement(s, s * 10, k=1).items()}
        {'top1_overlap': 1.0, 'spearman': 1.0}
    """
    overlap = (topk_overlap(student, teacher, k) + topk_overlap(student.T, teacher.T, k)) / 2
    rank = (spearman(student, teacher) + spearman(student.T, teacher.T)) / 2
    return {f"top{k}_overlap": overlap, "spearman": rank}
