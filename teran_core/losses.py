"""TERAN's training losses (reference ``models/loss.py``): the VSE++ hinge on alignment and global scores.

A batch holds B (image, caption) pairs with image i matching caption i; every other caption of
the batch is a negative for image i and every other image a negative for caption i (so an image
repeated in a batch counts as its own negative, as in the reference).
"""

from __future__ import annotations

import torch
from torch import nn

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.model.config import TeranConfig

__all__ = ["hinge_loss", "TeranLoss", "TRAINING_PADDING", "training_alignment_scores"]

TRAINING_PADDING = "masked"  # the padding semantics TERAN is trained with here (TeranLoss's default)


def training_alignment_scores(images: TokenSet, captions: TokenSet, config: TeranConfig,
                              padding: str = TRAINING_PADDING) -> torch.Tensor:
    """(N, M) alignment scores as training computes them: ``config.alignment_mode`` with the training padding.

    What TeranLoss ranks during training, and so the scores a distilled head learns (docs/distill.md).

    Example:
        >>> img = TokenSet(torch.tensor([[[0., 1.], [1., 0.], [0.6, 0.8]]]), torch.tensor([3]))
        >>> cap = TokenSet(torch.tensor([[[1., 0.], [0., 1.], [1., 0.], [0., 0.]]]), torch.tensor([4]))
        >>> training_alignment_scores(img, cap, TeranConfig())
        tensor([[0.8000]])
    """
    return alignment_scores(images, captions, config.alignment_mode, padding)


def hinge_loss(scores: torch.Tensor, margin: float = 0.2, max_violation: bool = True) -> torch.Tensor:
    """The VSE++ hinge loss of a square score matrix, summed (not averaged) as in the reference.

    Args:
        scores: (B, B) scores, image i (row) against caption j (column); positives on the diagonal.
        margin: the hinge margin.
        max_violation: True: only the hardest negative per query; False: all negatives.

    Returns:
        A scalar: sum over images of the caption-retrieval hinge + sum over captions of the image one.

    Example:
        >>> hinge_loss(torch.tensor([[0.9, 0.8], [0.1, 0.5]]), margin=0.2)  # captions (0.1 + 0) + images (0 + 0.5)
        tensor(0.6000)
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"hinge_loss: got scores {tuple(scores.shape)}, expected a square (B, B) matrix")
    positive = scores.diagonal()
    is_positive = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_caption = (margin + scores - positive[:, None]).clamp_min(0).masked_fill(is_positive, 0)  # row i: image i's captions
    cost_image = (margin + scores - positive[None, :]).clamp_min(0).masked_fill(is_positive, 0)  # column j: caption j's images
    if max_violation:
        cost_caption, cost_image = cost_caption.max(1).values, cost_image.max(0).values
    return cost_caption.sum() + cost_image.sum()


class TeranLoss(nn.Module):
    """The weighted sum of the alignment hinge (on ``config.alignment_mode`` scores) and the
    matching hinge (on the dot products of the global vectors, slot 0).

    Args:
        config: margin, max_violation, alignment_mode and the two weights.
        padding: alignment padding semantics, "masked" (default) or "reference". The reference
            trained with batches padded to their longest caption, which neither reproduces for
            MwSr/symm/mean; for MrSw with a fixed region count (features_36) all three agree.

    Example:
        >>> loss = TeranLoss(TeranConfig(matching_weight=1.0))
        >>> img = TokenSet(torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=2), torch.tensor([4, 4, 3]))
        >>> cap = TokenSet(torch.nn.functional.normalize(torch.randn(3, 6, 8), dim=2), torch.tensor([6, 5, 4]))
        >>> sorted(loss(img, cap))
        ['alignment', 'matching', 'total']
    """

    def __init__(self, config: TeranConfig, padding: str = TRAINING_PADDING):
        super().__init__()
        self.config = config
        self.padding = padding

    def forward(self, images: TokenSet, captions: TokenSet) -> dict[str, torch.Tensor]:
        """Returns the named terms and their weighted ``total``; only terms with a weight > 0 are computed."""
        cfg = self.config
        if len(images) != len(captions):
            raise ValueError(f"TeranLoss needs paired batches: got {len(images)} images and {len(captions)} captions")
        terms = {}
        if cfg.alignment_weight > 0:
            scores = training_alignment_scores(images, captions, cfg, self.padding)
            terms["alignment"] = hinge_loss(scores, cfg.margin, cfg.max_violation)
        if cfg.matching_weight > 0:
            scores = images.global_vectors.float() @ captions.global_vectors.float().T  # (B, B)
            terms["matching"] = hinge_loss(scores, cfg.margin, cfg.max_violation)
        weights = {"alignment": cfg.alignment_weight, "matching": cfg.matching_weight}
        terms["total"] = sum(weights[name] * value for name, value in terms.items())
        return terms
