"""TERAN's image side up to the joint transformer (reference ``models/visual.py``, ``data.py:Collate``).

Shape notation: B images, R region slots as passed (padded), S = R + 1 slots (slot 0 is the
reserved image "CLS" the reference's collate adds: a zero feature with a zero box), F feature size,
D embedding size. Boxes are normalised [x1, y1, x2, y2].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from teran_core.model.transformer import padding_mask, run_encoder, transformer_encoder

__all__ = ["ImageEncoder"]


def _check_inputs(features: torch.Tensor, boxes: torch.Tensor, n_regions: torch.Tensor, feat_dim: int) -> None:
    if features.dim() != 3 or features.shape[2] != feat_dim:
        raise ValueError(f"features: got shape {tuple(features.shape)}, expected (B, R, {feat_dim})")
    if boxes.shape != (*features.shape[:2], 4) or n_regions.shape != features.shape[:1]:
        raise ValueError(
            f"boxes {tuple(boxes.shape)} and n_regions {tuple(n_regions.shape)} do not fit features "
            f"{tuple(features.shape)}; expected boxes (B, R, 4) and n_regions (B,)"
        )
    bad = torch.nonzero((n_regions < 0) | (n_regions > features.shape[1])).flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"n_regions[{i}] = {int(n_regions[i])}, expected 0..{features.shape[1]} (the regions passed)")


class ImageEncoder(nn.Module):
    """Regions and boxes -> (B, S, D) projected tokens, slot 0 added; the joint transformer follows."""

    def __init__(self, *, feat_dim: int, embed_size: int, layers: int, heads: int, feedforward: int, dropout: float):
        super().__init__()
        self.feat_dim = feat_dim
        # The reference's "concat-and-process" box encoding: [feature, x1, y1, x2, y2, area] -> MLP.
        self.box_encoding = nn.Sequential(nn.Linear(feat_dim + 5, feat_dim), nn.ReLU(), nn.Linear(feat_dim, feat_dim))
        self.transformer = transformer_encoder(
            width=feat_dim, heads=heads, feedforward=feedforward, dropout=dropout, layers=layers
        )
        self.proj = nn.Linear(feat_dim, embed_size)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, n_regions: torch.Tensor):
        """Encodes the real regions of each image.

        Args:
            features: (B, R, F) region features; rows past n_regions are ignored.
            boxes: (B, R, 4) normalised x1, y1, x2, y2.
            n_regions: (B,) real regions per image.

        Returns:
            ``(tokens, pad)``: tokens (B, S, D) before the joint transformer, pad (B, S) True = padding.
        """
        _check_inputs(features, boxes, n_regions, self.feat_dim)
        pad = padding_mask(n_regions + 1, features.shape[1] + 1)  # (B, S); slot 0 is always real
        # Padded rows become zeros, as the reference collates them: garbage there (NaN, inf) would
        # otherwise leak into real slots through attention (0 weight x NaN = NaN).
        real = ~pad[:, 1:, None]
        features = F.pad(torch.where(real, features, 0.0), (0, 0, 1, 0))  # (B, R, F) -> (B, S, F), slot 0 zero
        boxes = F.pad(torch.where(real, boxes, 0.0), (0, 0, 1, 0))  # (B, S, 4), slot 0 zero box
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])  # (B, S)
        x = self.box_encoding(torch.cat([features, boxes, area[..., None]], dim=2))  # (B, S, F + 5) -> (B, S, F)
        x = run_encoder(self.transformer, x, pad)  # (B, S, F)
        return self.proj(x), pad  # (B, S, D)
