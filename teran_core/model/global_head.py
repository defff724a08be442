"""The distilled global head (ALADIN's matching head, see docs/distill.md): one vector per item from TERAN's tokens.

A small transformer encoder shared by both modalities runs over TERAN's final token set of an item
(slot 0 included, padding masked), reads out position 0 (ALADIN) or the mean over the item's tokens,
and L2-normalises it. Written into slot 0, the vector leaves every alignment mode unchanged (they
skip slot 0), so stage two's exact scores stay as they are while stage one's global kNN gets a vector
trained to rank like the alignment. ``build_global_head`` builds this head or, for ``kind:
prototypes``, the wider prototype head (``teran_core/model/prototype_head.py``), whose vectors
travel beside the tokens (``with_global_vectors``).

Shape notation: B items, L token slots, D TERAN's embedding size, W the head's width.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from teran_core.alignment import TokenSet
from teran_core.config import knob
from teran_core.model.transformer import padding_mask, run_encoder, transformer_encoder

__all__ = ["GlobalHeadConfig", "GlobalHead", "build_global_head", "with_global_vectors"]


@dataclasses.dataclass
class GlobalHeadConfig:
    """Every knob of the head. Defaults are ALADIN's (2 layers, 4 heads, feed-forward = width, dropout 0.1)."""

    layers: int = knob(2, ge=1)  # transformer encoder layers
    heads: int = knob(4, ge=1)  # attention heads
    width: int | None = knob(None, ge=1)  # the encoder's width W; None: TERAN's embed_size D (no projections)
    feedforward: int | None = knob(None, ge=1)  # feed-forward width; None: the encoder's width (ALADIN: 768 at d 768)
    dropout: float = knob(0.1, ge=0.0, lt=1.0)  # dropout inside the encoder layers
    # the item's vector: the encoder's output at position 0 (ALADIN's) or its mean over the item's tokens
    # (ranks closer to TERAN on the demo's data, docs/distill.md); "first" keeps heads saved before this knob as they were
    readout: Literal["first", "mean"] = "first"
    # "transformer": ALADIN's head above, D-wide vectors; "prototypes": TERAN's MrSw through K learned prototypes,
    # K-wide vectors (teran_core/model/prototype_head.py); both L2-normalised and compared by cosine
    kind: Literal["transformer", "prototypes"] = "transformer"
    prototypes: int = knob(2048, ge=1)  # K, the prototype head's width (kind: prototypes)
    assign_temperature: float = knob(0.05, gt=0.0)  # the prototype head's initial word-to-prototype softmax temperature

    def output_width(self, embed_size: int) -> int:
        """G, the width of the vectors the head writes: K for prototypes, else TERAN's D."""
        return self.prototypes if self.kind == "prototypes" else embed_size

    def check(self) -> list[str]:
        if self.width is not None and self.width % self.heads:
            return [f"width: got {self.width}, expected a multiple of heads ({self.heads})"]
        return []


class GlobalHead(nn.Module):
    """Token sets -> (B, D) L2-normalised global vectors.

    Args:
        config: the head's knobs.
        embed_size: D, the width of TERAN's tokens (and of the output).

    Example:
        >>> head = GlobalHead(GlobalHeadConfig(layers=1, heads=2), embed_size=8).eval()
        >>> tokens = F.normalize(torch.randn(3, 5, 8), dim=2)
        >>> out = head(TokenSet(tokens, torch.tensor([5, 3, 2])))
        >>> out.shape, torch.allclose(out.norm(dim=1), torch.ones(3))
        (torch.Size([3, 8]), True)
    """

    def __init__(self, config: GlobalHeadConfig, embed_size: int):
        super().__init__()
        self.config = config
        self.embed_size = embed_size
        width = config.width or embed_size
        if width % config.heads:
            raise ValueError(f"GlobalHead: width {width} is not a multiple of heads {config.heads}")
        self.project_in = nn.Linear(embed_size, width) if width != embed_size else nn.Identity()
        self.encoder = transformer_encoder(width=width, heads=config.heads, feedforward=config.feedforward or width,
                                           dropout=config.dropout, layers=config.layers)
        self.project_out = nn.Linear(width, embed_size) if width != embed_size else nn.Identity()

    @property
    def width(self) -> int:
        """The output vectors' width: D."""
        return self.config.output_width(self.embed_size)

    def forward(self, items: TokenSet, kind: str | None = None) -> torch.Tensor:
        """Either side's token sets -> their vectors (one encoder for both; ``kind`` is the prototype head's)."""
        tokens = items.tokens.float()  # (B, L, D)
        pad = padding_mask(items.lengths.to(tokens.device), tokens.shape[1])  # (B, L) True = pad
        x = run_encoder(self.encoder, self.project_in(tokens), pad)  # (B, L, W)
        if self.config.readout == "mean":
            pooled = (x * ~pad[..., None]).sum(1) / items.lengths.to(x.device)[:, None]  # (B, W)
        else:
            pooled = x[:, 0]  # (B, W)
        return F.normalize(self.project_out(pooled), p=2, dim=1)  # (B, D)


def build_global_head(config: GlobalHeadConfig, embed_size: int) -> nn.Module:
    """The head ``config.kind`` names, over D = ``embed_size`` tokens.

    Example:
        >>> build_global_head(GlobalHeadConfig(kind="prototypes", prototypes=32), 8).width
        32
    """
    if config.kind == "prototypes":
        from teran_core.model.prototype_head import PrototypeHead

        return PrototypeHead(config, embed_size)
    return GlobalHead(config, embed_size)


def with_global_vectors(items: TokenSet, vectors: torch.Tensor) -> TokenSet:
    """``items`` carrying a head's (B, G) vectors: in slot 0 when G = D (the other slots untouched), else beside the tokens."""
    if vectors.shape[1] != items.tokens.shape[2]:
        return TokenSet(items.tokens, items.lengths, vectors)
    tokens = torch.cat([vectors[:, None, :].to(items.tokens.dtype), items.tokens[:, 1:]], dim=1)  # (B, L, D)
    return TokenSet(tokens, items.lengths)
