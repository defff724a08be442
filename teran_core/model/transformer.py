"""The transformer encoder all three TERAN transformers use, as the reference builds it.

PyTorch's ``nn.TransformerEncoder`` over sequence-first tensors, post-norm, ReLU, LayerNorm eps 1e-5
and no final norm. Sequence-first matters: PyTorch's fused "fast path" (nested tensors, padded
outputs zeroed) is only taken for batch-first layers, so padded slots get ordinary outputs as
in the reference. Callers keep batch-first tensors; :func:`run_encoder` does the transposes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["transformer_encoder", "run_encoder", "padding_mask"]


def transformer_encoder(*, width: int, heads: int, feedforward: int, dropout: float, layers: int) -> nn.TransformerEncoder:
    """A post-norm ReLU transformer encoder with ``layers`` layers at ``width``."""
    layer = nn.TransformerEncoderLayer(
        d_model=width, nhead=heads, dim_feedforward=feedforward, dropout=dropout, activation="relu"
    )
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


def padding_mask(lengths: torch.Tensor, slots: int) -> torch.Tensor:
    """(B, slots) bool mask, True where a slot is padding (position >= length)."""
    return torch.arange(slots, device=lengths.device)[None, :] >= lengths[:, None]


def run_encoder(encoder: nn.TransformerEncoder, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Applies a sequence-first ``encoder`` to batch-first ``x`` (B, L, W) with ``pad`` (B, L) True = pad."""
    x = encoder(x.transpose(0, 1), src_key_padding_mask=pad)  # BLW -> LBW
    return x.transpose(0, 1)  # LBW -> BLW
