"""One training step and the per-epoch validation, as plain PyTorch (reference ``train.py``).

Shape notation: B pairs per batch, R regions, T caption tokens, H backbone hidden size, D embedding size.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from teran_core.alignment import TokenSet
from teran_core.data import CaptionCollator, DatasetManifest, collate_images, load_split
from teran_core.losses import TeranLoss, training_alignment_scores
from teran_core.model.teran import TERAN
from teran_core.recall.evaluation import retrieval_metrics
from teran_core.train.config import OptimConfig
from teran_core.train.pairs import collate_pairs, select_rows
from teran_core.train.state import TrainState

__all__ = ["HiddenCache", "PairEncoder", "learning_rate", "train_step", "train_epoch", "DevSet", "validate", "encode_dev", "concat_token_sets"]


class HiddenCache:
    """Hidden states of a frozen backbone per caption id (float16), up to ``max_mb``.

    A frozen backbone gives the same output every epoch, so recomputing it is wasted work.
    """

    def __init__(self, max_mb: int):
        self.max_bytes = max_mb * 2**20
        self.used = 0
        self.entries: dict[str, torch.Tensor] = {}

    def hidden(self, model: TERAN, caption_ids: list[str], input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, H) hidden states for the batch, computing only the captions not cached yet."""
        missing = [i for i, c in enumerate(caption_ids) if c not in self.entries]
        if missing:
            idx = torch.as_tensor(missing)
            with torch.no_grad():
                fresh = model.text_backbone_hidden(input_ids[idx], lengths[idx])  # (M, T, H)
            for row, i in enumerate(missing):
                entry = fresh[row, : int(lengths[i])].to(torch.float16).cpu()
                if self.used + entry.numel() * 2 <= self.max_bytes:
                    self.entries[caption_ids[i]] = entry
                    self.used += entry.numel() * 2
        width = model.bert_config.hidden_size
        out = torch.zeros(len(caption_ids), input_ids.shape[1], width)
        fresh_row = {i: r for r, i in enumerate(missing)}
        for i, c in enumerate(caption_ids):
            n = int(lengths[i])
            out[i, :n] = fresh[fresh_row[i], :n].float().cpu() if i in fresh_row else self.entries[c].float()
        return out


class PairEncoder(nn.Module):
    """Encodes a batch of pairs in one ``forward`` call, so a DistributedDataParallel wrapper sees it."""

    def __init__(self, model: TERAN, cache: HiddenCache | None = None):
        super().__init__()
        self.model = model
        self.cache = cache

    def forward(self, batch: dict) -> tuple[TokenSet, TokenSet]:
        m = self.model
        images = m.encode_images(batch["features"], batch["boxes"], batch["n_regions"])  # tokens (B, R+1, D)
        ids, lengths = torch.as_tensor(batch["input_ids"]), torch.as_tensor(batch["lengths"])
        if self.cache is None:
            captions = m.encode_captions(ids, lengths)  # tokens (B, T, D)
        else:
            captions = m.encode_captions_from_hidden(self.cache.hidden(m, batch["caption_id"], ids, lengths), lengths)
        return images, captions


def learning_rate(cfg: OptimConfig, epoch: int, step: int) -> float:
    """The reference schedule: StepLR by epoch, times an optional linear warm-up by global step.

    Example:
        >>> cfg = OptimConfig(lr=1e-3, lr_step_epochs=2, lr_gamma=0.1, warmup_steps=4)
        >>> [round(learning_rate(cfg, e, s), 6) for e, s in [(0, 0), (0, 3), (1, 10), (2, 20), (5, 50)]]
        [0.00025, 0.001, 0.001, 0.0001, 1e-05]
    """
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step_epochs) * warmup


def train_step(encoder: nn.Module, loss_fn: TeranLoss, batch: dict, optimizer: torch.optim.Optimizer,
               lr: float, grad_clip: float) -> dict[str, float]:
    """One optimisation step on a batch of pairs; returns the loss terms as floats.

    Example:
        >>> from teran_core.model.config import TeranConfig
        >>> cfg = TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=16, visual_layers=1,
        ...                   joint_layers=1, bert_layers=1)
        >>> model = TERAN(cfg).train()
        >>> opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
        >>> batch = {"features": torch.rand(3, 2, 8), "boxes": torch.rand(3, 2, 4), "n_regions": torch.tensor([2, 1, 2]),
        ...          "input_ids": torch.tensor([[101, 7, 9, 102], [101, 8, 4, 102], [101, 5, 6, 102]]),
        ...          "lengths": torch.tensor([4, 4, 4]), "caption_id": ["a", "b", "c"]}
        >>> sorted(train_step(PairEncoder(model), TeranLoss(cfg), batch, opt, 1e-4, 2.0))
        ['alignment', 'grad_norm', 'total']
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    images, captions = encoder(batch)
    terms = loss_fn(images, captions)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return {**{k: float(v.detach()) for k, v in terms.items()}, "grad_norm": float(grad_norm)}


def train_epoch(encoder: nn.Module, loss_fn: TeranLoss, optimizer: torch.optim.Optimizer, batches: Iterable[pa.Table],
                optim: OptimConfig, epoch: int, state: TrainState, curve_every_steps: int = 50,
                log: logging.Logger | None = None, log_every_s: float = 20.0) -> dict:
    """One epoch: a :func:`train_step` per batch of pair rows (``PairBuilder``'s table), at the schedule's
    learning rate, each step counted in ``state``. Returns the epoch's metrics (mean loss, lr, seconds).

    ``log``: a progress line at least every ``log_every_s`` seconds (None: silent, e.g. on other ranks).

    Example::

        for epoch in range(state.epoch, cfg.optim.epochs):
            metrics = train_epoch(encoder, loss_fn, optimizer, pairs.iter_batches(batch_size=40, batch_format="pyarrow"),
                                  cfg.optim, epoch, state)
    """
    encoder.train()
    losses, started, last_log = [], time.time(), time.time()
    lr = learning_rate(optim, epoch, state.step)
    for table in batches:
        lr = learning_rate(optim, epoch, state.step)
        terms = train_step(encoder, loss_fn, collate_pairs(table), optimizer, lr, optim.grad_clip)
        losses.append(terms["total"])
        state.count_step(epoch, losses, curve_every_steps)
        if log is not None and time.time() - last_log >= log_every_s:
            log.info("epoch %d step %d loss %.4f (%.1f pairs/s)", epoch + 1, state.step, terms["total"],
                     len(losses) * table.num_rows / (time.time() - started))
            last_log = time.time()
    return {"epoch": epoch, "step": state.step, "loss": sum(losses) / max(len(losses), 1), "lr": lr,
            "epoch_s": time.time() - started}


@dataclasses.dataclass
class DevSet:
    """The validation images and captions, collated once."""

    images: dict  # collate_images output
    captions: dict  # CaptionCollator output
    caption_image_index: np.ndarray  # (n_captions,) index of each caption's image

    @classmethod
    def load(cls, manifest: DatasetManifest, split: str, max_images: int, collator: CaptionCollator) -> "DevSet":
        """The first ``max_images`` images of ``split`` (in split order) and all their captions."""
        image_ids, caption_ids, index = load_split(manifest.location, split)
        keep = index < max_images
        image_ids = image_ids[:max_images]
        caption_ids = [c for c, k in zip(caption_ids, keep) if k]
        images = collate_images(select_rows(manifest, "images", image_ids))
        captions = collator(select_rows(manifest, "captions", caption_ids, ["caption_id", "image_id", "text"]))
        return cls(images=images, captions=captions, caption_image_index=index[keep])


def concat_token_sets(sets: list[TokenSet]) -> TokenSet:
    """Stacks token sets of different padded lengths into one (padding slots are zeros).

    Example:
        >>> both = concat_token_sets([TokenSet(torch.ones(1, 2, 3), [2]), TokenSet(torch.ones(2, 4, 3), [4, 3])])
        >>> both.tokens.shape, both.lengths.tolist()
        (torch.Size([3, 4, 3]), [2, 4, 3])
    """
    longest = max(s.tokens.shape[1] for s in sets)
    tokens = [torch.nn.functional.pad(s.tokens, (0, 0, 0, longest - s.tokens.shape[1])) for s in sets]
    with_globals = [s.globals is not None for s in sets]
    if any(with_globals) and not all(with_globals):
        raise ValueError("concat_token_sets: some sets carry separate global vectors and some do not")
    globals_ = torch.cat([s.globals for s in sets]) if all(with_globals) else None
    return TokenSet(torch.cat(tokens), torch.cat([s.lengths for s in sets]), globals_)


@torch.no_grad()
def encode_dev(model: TERAN, dev: DevSet, batch_size: int = 256) -> tuple[TokenSet, TokenSet]:
    """Encodes every dev image and caption in eval mode."""
    model.eval()
    img, cap = dev.images, dev.captions
    image_sets = [model.encode_images(img["features"][s:s + batch_size], img["boxes"][s:s + batch_size],
                                      img["n_regions"][s:s + batch_size]) for s in range(0, len(img["n_regions"]), batch_size)]
    caption_sets = [model.encode_captions(cap["input_ids"][s:s + batch_size], cap["lengths"][s:s + batch_size])
                    for s in range(0, len(cap["lengths"]), batch_size)]
    return concat_token_sets(image_sets), concat_token_sets(caption_sets)


def validate(model: TERAN, dev: DevSet) -> dict[str, float]:
    """Recall metrics on the dev set (reference: every epoch), scored as the model is trained to score:
    with its alignment mode, or by global vectors when the model has no alignment loss.
    """
    images, captions = encode_dev(model, dev)
    if model.config.alignment_weight > 0:
        scores = training_alignment_scores(images, captions, model.config)
    else:
        scores = images.global_vectors @ captions.global_vectors.T  # (n_images, n_captions)
    return retrieval_metrics(scores.numpy(), dev.caption_image_index)
