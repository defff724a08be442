"""TERAN's text side up to the joint transformer (reference ``models/text.py``).

Shape notation: B captions, T token slots ([CLS] w1 .. wn [SEP], right-padded with 0), H the
backbone's hidden size, D embedding size. The backbone is a BERT-family model cut to its first
N layers; its last kept layer's hidden states are the word features.
"""

from __future__ import annotations

import torch
from torch import nn

from teran_core.model.transformer import padding_mask

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module):
    """Token ids -> (B, T, H) backbone hidden states -> (B, T, D) projected tokens."""

    def __init__(self, *, bert: nn.Module, embed_size: int):
        super().__init__()
        self.bert = bert
        self.proj = nn.Linear(bert.config.hidden_size, embed_size)

    def check_lengths(self, lengths: torch.Tensor, slots: int) -> None:
        if lengths.dim() != 1:
            raise ValueError(f"lengths: got shape {tuple(lengths.shape)}, expected (B,)")
        bad = torch.nonzero((lengths < 1) | (lengths > slots)).flatten()
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"lengths[{i}] = {int(lengths[i])}, expected 1..{slots} (the token slots passed)")

    def hidden(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and (B,) lengths -> (B, T, H) hidden states of the last kept layer."""
        batch, slots = input_ids.shape
        self.check_lengths(lengths, slots)
        config = self.bert.config
        if lengths.shape[0] != batch or slots > config.max_position_embeddings:
            raise ValueError(
                f"input_ids {tuple(input_ids.shape)} / lengths {tuple(lengths.shape)}: expected (B, T) and (B,) "
                f"with T <= {config.max_position_embeddings} (the backbone's positions)"
            )
        if int(input_ids.max()) >= config.vocab_size or int(input_ids.min()) < 0:
            raise ValueError(f"input_ids hold ids outside the backbone's vocabulary 0..{config.vocab_size - 1}")
        attention = (~padding_mask(lengths, slots)).long()  # (B, T) 1 = real token, as BERT expects
        return self.bert(input_ids=input_ids, attention_mask=attention).last_hidden_state  # (B, T, H)
