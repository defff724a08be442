"""The prototype head (``head.kind: prototypes``, docs/distill.md): TERAN's MrSw score through K prototypes, as one vector per item.

MrSw sums, over a caption's words, each word's best cosine with the image's regions. Replace each word
by its nearest of K learned prototypes p_k and the sum becomes a dot product of two K-wide vectors:

- an image's vector v[k] = max over its regions r of <r, p_k>: how well the image answers prototype k;
- a caption's vector u[k] = the number of its words assigned to p_k (a softmax over the prototypes at
  a learned temperature, so that it trains);
- u · v = Σ_words max_regions <r, p(word)>, which tends to MrSw as the prototypes cover the words.

Both are then L2-normalised, like every global vector, so the FAISS inner-product index compares them
by cosine (measured on the demo, the normalised pair distils faster and further than the raw sums:
docs/distill.md). The prototypes start as spherical k-means centroids of the training tokens
(``init_from``) and are then distilled from TERAN's scores like the transformer head. K, not D, is
the vectors' width, so a global vector can hold more than D numbers (the demo's D = 128 TERAN needs
it: docs/distill.md, "Why one D-wide vector is not enough"). This is PLAID's centroid interaction
(docs/engine.md) folded into one vector per item.

Shape notation: B items, L token slots, D TERAN's embedding size, K prototypes.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from teran_core.alignment import TokenSet, content_slots
from teran_core.model.transformer import padding_mask

if TYPE_CHECKING:  # global_head builds this head, so it is imported there lazily and only named here
    from teran_core.model.global_head import GlobalHeadConfig

__all__ = ["PrototypeHead", "content_mask"]


def content_mask(items: TokenSet, kind: str) -> torch.Tensor:
    """(B, L) True at the slots TERAN's alignment scores: regions 1..L-1, or word pieces 1..L-3."""
    first, trailing = content_slots(kind)
    keep = ~padding_mask((items.lengths - trailing).to(items.tokens.device), items.tokens.shape[1])
    keep[:, :first] = False
    return keep


class PrototypeHead(nn.Module):
    """Token sets -> (B, K) L2-normalised image or caption vectors whose cosine ranks like MrSw.

    Args:
        config: the head's knobs (``prototypes``: K; ``assign_temperature``: the caption side's initial
            soft-assignment temperature, learned from there).
        embed_size: D, the width of TERAN's tokens.

    Example:
        >>> from teran_core.model.global_head import GlobalHeadConfig
        >>> head = PrototypeHead(GlobalHeadConfig(kind="prototypes", prototypes=16), embed_size=8)
        >>> items = TokenSet(F.normalize(torch.randn(3, 6, 8), dim=2), torch.tensor([6, 5, 4]))
        >>> head.images(items).shape, head.captions(items).norm(dim=1).round().tolist()
        (torch.Size([3, 16]), [1.0, 1.0, 1.0])
    """

    def __init__(self, config: GlobalHeadConfig, embed_size: int):
        super().__init__()
        self.config = config
        self.embed_size = embed_size
        self.prototypes = nn.Parameter(F.normalize(torch.randn(config.prototypes, embed_size), dim=1))  # (K, D)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(config.assign_temperature)))

    @property
    def width(self) -> int:
        """The output vectors' width: K."""
        return self.config.output_width(self.embed_size)

    def init_from(self, tokens: np.ndarray, seed: int = 0, niter: int = 20) -> None:
        """Sets the prototypes to the spherical k-means centroids of ``tokens`` (T, D), T >= K."""
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # in a Ray Train worker its INFO lines list every CPU build it tried
        import faiss

        if len(tokens) < self.width:
            raise ValueError(f"PrototypeHead.init_from: {len(tokens)} tokens for {self.width} prototypes; need at least as many")
        kmeans = faiss.Kmeans(self.embed_size, self.width, niter=niter, seed=seed, spherical=True)
        kmeans.train(np.ascontiguousarray(tokens, np.float32))
        with torch.no_grad():
            self.prototypes.copy_(F.normalize(torch.as_tensor(kmeans.centroids), dim=1))

    def _cosines(self, items: TokenSet) -> torch.Tensor:
        return items.tokens.float() @ F.normalize(self.prototypes, dim=1).T  # (B, L, K)

    def images(self, items: TokenSet) -> torch.Tensor:
        """v[k] = max over the image's regions of <region, p_k>, then L2-normalised."""
        cosines = self._cosines(items).masked_fill(~content_mask(items, "images")[..., None], -2.0)  # (B, L, K)
        best = cosines.max(dim=1).values.clamp_min(-1.0)  # (B, K); an image without regions: -1 everywhere
        return F.normalize(best, p=2, dim=1)

    def captions(self, items: TokenSet) -> torch.Tensor:
        """u[k] = the soft count of the caption's scored words assigned to p_k, then L2-normalised."""
        assignment = torch.softmax(self._cosines(items) / self.log_temperature.exp(), dim=2)  # (B, L, K)
        counts = (assignment * content_mask(items, "captions")[..., None]).sum(dim=1)  # (B, K)
        counts = torch.where(counts.sum(1, keepdim=True) > 0, counts, torch.ones_like(counts))  # no scored word: all alike
        return F.normalize(counts, p=2, dim=1)

    def forward(self, items: TokenSet, kind: str) -> torch.Tensor:
        return self.images(items) if kind == "images" else self.captions(items)  # (B, K)
