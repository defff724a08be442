"""TERAN: both encoders, the joint transformers and per-token L2 normalisation (reference ``models/teran.py``).

Shape notation: B items, S image slots (regions + 1), T caption slots, H backbone hidden size,
D embedding size. Outputs are :class:`~teran_core.alignment.TokenSet` s whose slot 0 is the global
vector: the reference's aggregation 'first' takes output token 0 and divides it by its norm without
an epsilon, while every token gets ``F.normalize`` (eps 1e-12); the two agree to float rounding for
any non-zero token, so the global vector here is simply the normalised token 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from teran_core.alignment import TokenSet
from teran_core.config import ConfigError
from teran_core.data.tokenizer import load_tokenizer
from teran_core.model.backbone import load_backbone
from teran_core.model.config import TeranConfig
from teran_core.model.global_head import with_global_vectors
from teran_core.model.image_encoder import ImageEncoder
from teran_core.model.text_encoder import TextEncoder
from teran_core.model.transformer import padding_mask, run_encoder, transformer_encoder

__all__ = ["TERAN"]


class TERAN(nn.Module):
    """The TERAN model. Inputs are moved to the model's device; outputs are float32 token sets.

    Args:
        config: the knobs; None for the reference COCO MrSw model.
        bert_config: a ``transformers.BertConfig`` for a backbone built without pretrained weights
            (checkpoint loading); None: ``config.backbone``'s weights, cut to ``config.bert_layers``.
        tokenizer: the tokenizer for :meth:`encode_texts`; None: loaded from ``config.backbone`` on first use.

    Example:
        >>> cfg = TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=16, visual_layers=1,
        ...                   joint_layers=1, bert_layers=1)
        >>> model = TERAN(cfg).eval()
        >>> img = model.encode_images(torch.rand(2, 3, 8), torch.rand(2, 3, 4), torch.tensor([3, 1]))
        >>> img.tokens.shape, img.lengths.tolist()
        (torch.Size([2, 4, 8]), [4, 2])
        >>> model.encode_texts(["a red dog", "two cats on a sofa"]).lengths.tolist()
        [5, 7]
    """

    def __init__(self, config: TeranConfig | None = None, *, bert_config=None, tokenizer=None):
        super().__init__()
        self.config = config = config or TeranConfig()
        if config.check():
            raise ConfigError("TeranConfig", config.check())
        if bert_config is None:
            bert = load_backbone(config.backbone, layers=config.bert_layers)
        else:
            from transformers import BertModel

            if bert_config.num_hidden_layers != config.bert_layers:
                raise ValueError(
                    f"bert_config has {bert_config.num_hidden_layers} layers but config.bert_layers is {config.bert_layers}"
                )
            bert = BertModel(bert_config, add_pooling_layer=False)
        self.image = ImageEncoder(
            feat_dim=config.feat_dim, embed_size=config.embed_size, layers=config.visual_layers,
            heads=config.heads, feedforward=config.feedforward, dropout=config.visual_dropout,
        )
        self.text = TextEncoder(bert=bert, embed_size=config.embed_size)
        joint = dict(width=config.embed_size, heads=config.heads, feedforward=config.feedforward,
                     dropout=config.dropout, layers=config.joint_layers)
        self.joint_text = transformer_encoder(**joint)  # the reference's TE_1
        self.joint_image = None if config.shared_transformer else transformer_encoder(**joint)  # TE_2
        self._tokenizer = tokenizer
        self.global_head: nn.Module | None = None  # set by distillation (docs/distill.md): the global vector
        if not config.fine_tune:
            self.text.bert.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.image.proj.weight.device

    @property
    def bert_config(self):
        """The backbone's ``transformers.BertConfig`` (what a checkpoint needs to rebuild it)."""
        return self.text.bert.config

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.backbone)
        return self._tokenizer

    def train(self, mode: bool = True) -> "TERAN":
        super().train(mode)
        if not self.config.fine_tune:  # a frozen backbone stays deterministic, so its outputs can be cached
            self.text.bert.eval()  # (the reference kept the frozen BERT's dropout on while training)
        return self

    def attach_global_head(self, head: nn.Module | None) -> "TERAN":
        """Makes ``head``'s vector the global vector of every encoded item (None: TERAN's own token 0 again).

        A D-wide vector replaces slot 0; a wider one (the prototype head's) travels beside the tokens
        (``TokenSet.globals``). No alignment mode reads slot 0, so exact scores stay the same.
        """
        if head is not None and head.embed_size != self.config.embed_size:
            raise ValueError(f"global head reads D={head.embed_size} tokens, but this TERAN's embed_size is {self.config.embed_size}")
        self.global_head = head
        return self

    def _joint(self, encoder: nn.Module, tokens: torch.Tensor, pad: torch.Tensor, kind: str) -> TokenSet:
        x = run_encoder(encoder, tokens, pad)  # (B, L, D)
        x = F.normalize(x.float(), p=2, dim=2)  # every token, in float32 also under autocast
        items = TokenSet(tokens=x, lengths=(~pad).sum(1))
        return items if self.global_head is None else with_global_vectors(items, self.global_head(items, kind))

    def _float(self, x) -> torch.Tensor:
        return torch.as_tensor(x).to(self.device, self.image.proj.weight.dtype)

    def _index(self, x) -> torch.Tensor:
        return torch.as_tensor(x).to(self.device, torch.long)

    def encode_images(self, features, boxes, n_regions) -> TokenSet:
        """Image token sets; slot 0 (the global vector) is added here, so pass only real regions.

        Args:
            features: (B, R, F) region features (rows past n_regions ignored).
            boxes: (B, R, 4) normalised x1, y1, x2, y2 in [0, 1].
            n_regions: (B,) real regions per image.

        Returns:
            TokenSet with tokens (B, R + 1, D) L2-normalised and lengths n_regions + 1.
        """
        tokens, pad = self.image(self._float(features), self._float(boxes), self._index(n_regions))
        joint = self.joint_text if self.joint_image is None else self.joint_image  # shared: TE_1 for both
        return self._joint(joint, tokens, pad, "images")

    def text_backbone_hidden(self, input_ids, lengths) -> torch.Tensor:
        """(B, T) ids and (B,) lengths -> (B, T, H) hidden states of the backbone's last kept layer."""
        return self.text.hidden(self._index(input_ids), self._index(lengths))

    def encode_captions_from_hidden(self, hidden, lengths) -> TokenSet:
        """Caption token sets from (cached) backbone hidden states (B, T, H) and lengths (B,)."""
        hidden, lengths = self._float(hidden), self._index(lengths)
        self.text.check_lengths(lengths, hidden.shape[1])
        tokens = self.text.proj(hidden)  # (B, T, H) -> (B, T, D)
        return self._joint(self.joint_text, tokens, padding_mask(lengths, hidden.shape[1]), "captions")

    def encode_captions(self, input_ids, lengths) -> TokenSet:
        """Caption token sets.

        Args:
            input_ids: (B, T) [CLS] w1 .. wn [SEP] right-padded with 0.
            lengths: (B,) tokens per caption, [CLS] and [SEP] included.

        Returns:
            TokenSet with tokens (B, T, D) L2-normalised; slot 0 ([CLS]) is the global vector.
        """
        return self.encode_captions_from_hidden(self.text_backbone_hidden(input_ids, lengths), lengths)

    def encode_texts(self, texts: list[str]) -> TokenSet:
        """Tokenises ``texts`` with the model's tokenizer (no truncation) and encodes them."""
        batch = self.tokenizer(list(texts), padding=True, return_tensors="pt")
        return self.encode_captions(batch["input_ids"], batch["attention_mask"].sum(1))

    def forward(self, features, boxes, n_regions, input_ids, lengths) -> tuple[TokenSet, TokenSet]:
        """Both sides at once (one call for DDP wrappers): ``(images, captions)``."""
        return self.encode_images(features, boxes, n_regions), self.encode_captions(input_ids, lengths)
