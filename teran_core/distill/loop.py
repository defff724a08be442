"""Distilling a global head over a frozen TERAN, as plain PyTorch (``jobs/distill.py`` adds Ray Train).

The frozen TERAN runs in eval mode, so each item's token set is the same every epoch: it is computed
once and cached (float16), and later epochs cost only the head. Shape notation: B pairs per batch,
P pool items, L token slots, D embedding size.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from teran_core.alignment import TokenSet
from teran_core.distill.agreement import agreement
from teran_core.distill.loss import DistillLossConfig, hardest_items, listnet_loss, teacher_scores
from teran_core.model.prototype_head import content_mask
from teran_core.model.teran import TERAN
from teran_core.recall.evaluation import retrieval_metrics
from teran_core.train.loop import DevSet, concat_token_sets, encode_dev

__all__ = ["FrozenTokens", "HeadPair", "TokenPool", "distill_step", "DevAgreement", "content_tokens"]


class FrozenTokens:
    """The frozen TERAN's token sets of a batch of pairs, each item computed once and cached up to ``max_mb``.

    Example:
        >>> from teran_core.model.config import TeranConfig
        >>> model = TERAN(TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=16, visual_layers=1,
        ...                           joint_layers=1, bert_layers=1))
        >>> frozen = FrozenTokens(model, max_mb=1)
        >>> batch = {"image_id": ["a", "a"], "features": torch.rand(2, 2, 8), "boxes": torch.rand(2, 2, 4),
        ...          "n_regions": torch.tensor([2, 2]), "caption_id": ["c1", "c2"],
        ...          "input_ids": torch.tensor([[101, 7, 9, 102], [101, 8, 102, 0]]), "lengths": torch.tensor([4, 3])}
        >>> images, captions = frozen(batch)
        >>> images.tokens.shape, captions.lengths.tolist(), sorted(frozen.entries)
        (torch.Size([2, 3, 8]), [4, 3], [('captions', 'c1'), ('captions', 'c2'), ('images', 'a')])
    """

    def __init__(self, model: TERAN, max_mb: int):
        if model.global_head is not None:
            raise ValueError("FrozenTokens: the teacher TERAN must not have a global head (detach it first)")
        self.model = model.eval().requires_grad_(False)
        self.max_bytes = max_mb * 2**20
        self.used = 0
        self.entries: dict[tuple[str, str], torch.Tensor] = {}

    def _cached(self, kind: str, ids: list[str], encode) -> TokenSet:
        """Token sets of ``ids``; ``encode(rows)`` computes the missing rows as one TokenSet."""
        missing = list(dict.fromkeys(i for i, item in enumerate(ids) if (kind, item) not in self.entries))
        fresh = {}
        if missing:
            with torch.no_grad():
                computed = encode(torch.as_tensor(missing))
            for row, i in enumerate(missing):
                entry = computed.tokens[row, : int(computed.lengths[row])].cpu()
                fresh[ids[i]] = entry
                if self.used + entry.numel() * 2 <= self.max_bytes:
                    self.entries[(kind, ids[i])] = entry.to(torch.float16)
                    self.used += entry.numel() * 2
        sets = [fresh[item] if item in fresh else self.entries[(kind, item)].float() for item in ids]
        longest = max(s.shape[0] for s in sets)
        tokens = torch.stack([F.pad(s.float(), (0, 0, 0, longest - s.shape[0])) for s in sets])  # (B, L, D)
        return TokenSet(tokens.to(self.model.device), torch.tensor([s.shape[0] for s in sets]))

    def __call__(self, batch: dict) -> tuple[TokenSet, TokenSet]:
        """A collated batch of pairs (``collate_pairs``) -> (images, captions) frozen token sets."""
        m = self.model
        ids, lengths = torch.as_tensor(batch["input_ids"]), torch.as_tensor(batch["lengths"])
        f, b, n = (torch.as_tensor(batch[k]) for k in ("features", "boxes", "n_regions"))
        images = self._cached("images", list(batch["image_id"]), lambda rows: m.encode_images(f[rows], b[rows], n[rows]))
        captions = self._cached("captions", list(batch["caption_id"]), lambda rows: m.encode_captions(ids[rows], lengths[rows]))
        return images, captions


class HeadPair(torch.nn.Module):
    """The head over both sides in one ``forward`` call, so a DistributedDataParallel wrapper sees one pass."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def forward(self, images: TokenSet, captions: TokenSet) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(images, "images"), self.head(captions, "captions")  # (N, G), (M, G)


@dataclasses.dataclass
class _Side:
    items: TokenSet
    ids: list[str]


class TokenPool:
    """The frozen token sets of the last ``batches`` batches: where hard negatives are mined (docs/distill.md)."""

    def __init__(self, batches: int):
        self.batches: collections.deque = collections.deque(maxlen=batches)

    def add(self, images: TokenSet, image_ids: list[str], captions: TokenSet, caption_ids: list[str]) -> None:
        self.batches.append({"images": _Side(images, list(image_ids)), "captions": _Side(captions, list(caption_ids))})

    def side(self, kind: str) -> _Side | None:
        parts = [b[kind] for b in self.batches]
        if not parts:
            return None
        return _Side(concat_token_sets([p.items for p in parts]), [i for p in parts for i in p.ids])


def _hard_negatives(pool_side: _Side | None, batch_ids: list[str], scores_fn, per_query: int) -> TokenSet | None:
    """The pool items among some batch query's ``per_query`` hardest by the teacher (``scores_fn(pool items)``
    -> (B, P)), leaving out the batch's own items."""
    if pool_side is None or per_query == 0:
        return None
    own = set(batch_ids)
    exclude = torch.tensor([i in own for i in pool_side.ids])
    picked = hardest_items(scores_fn(pool_side.items), per_query, exclude)
    return pool_side.items[picked] if len(picked) else None


def distill_step(pair: torch.nn.Module, teacher_config, images: TokenSet, captions: TokenSet,
                 optimizer: torch.optim.Optimizer, lr: float, grad_clip: float, loss_config: DistillLossConfig,
                 pool: TokenPool | None = None, ids: tuple[list[str], list[str]] | None = None) -> dict[str, float]:
    """One optimisation step of the head on a batch's frozen token sets; returns loss, list length, grad norm.

    With ``loss_config.hard_negatives`` > 0, a ``pool`` and the batch's (image ids, caption ids), each
    query's list also holds the teacher's hardest pool items; the batch then joins the pool. ``pair``
    is a :class:`HeadPair` or its DDP wrapper.

    Example:
        >>> from teran_core.model.config import TeranConfig
        >>> from teran_core.model.global_head import GlobalHead, GlobalHeadConfig
        >>> head = GlobalHead(GlobalHeadConfig(layers=1, heads=2), embed_size=4)
        >>> opt = torch.optim.Adam(head.parameters())
        >>> img = TokenSet(F.normalize(torch.randn(3, 4, 4), dim=2), torch.tensor([4, 3, 2]))
        >>> cap = TokenSet(F.normalize(torch.randn(3, 6, 4), dim=2), torch.tensor([6, 5, 4]))
        >>> sorted(distill_step(HeadPair(head), TeranConfig(), img, cap, opt, 1e-3, 2.0, DistillLossConfig()))
        ['grad_norm', 'list_length', 'loss']
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    all_images, all_captions = images, captions
    if pool is not None and loss_config.hard_negatives and ids is not None:
        image_ids, caption_ids = ids
        n = loss_config.hard_negatives
        hard_images = _hard_negatives(pool.side("images"), image_ids, lambda p: teacher_scores(p, captions, teacher_config).T, n)
        hard_captions = _hard_negatives(pool.side("captions"), caption_ids, lambda p: teacher_scores(images, p, teacher_config), n)
        all_images = concat_token_sets([images, hard_images]) if hard_images is not None else images
        all_captions = concat_token_sets([captions, hard_captions]) if hard_captions is not None else captions
        pool.add(images, image_ids, captions, caption_ids)
    teacher = teacher_scores(all_images, all_captions, teacher_config)  # (N, M), N, M >= B
    image_vectors, caption_vectors = pair(all_images, all_captions)
    student = image_vectors @ caption_vectors.T  # (N, M) cosines (transformer head) or approximate MrSw sums (prototypes)
    loss = listnet_loss(student, teacher, loss_config, queries=len(images))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    optimizer.step()
    return {"loss": float(loss.detach()), "list_length": float(teacher.shape[1]), "grad_norm": float(grad_norm)}


class DevAgreement:
    """Held-out dev items, encoded by the frozen TERAN once with their teacher score matrix.

    ``measure(head)`` gives the student's top-k overlap and Spearman with the teacher, and the
    recall of the head's vectors alone (rsum: the checkpoint score) next to the teacher's.
    """

    def __init__(self, teacher: TERAN, dev: DevSet, k: int = 10):
        self.images, self.captions = encode_dev(teacher, dev)
        self.teacher = teacher_scores(self.images, self.captions, teacher.config)  # (n_images, n_captions)
        self.caption_image_index = dev.caption_image_index
        self.teacher_rsum = retrieval_metrics(self.teacher.cpu().numpy(), self.caption_image_index)["rsum"]
        self.k = k

    @torch.no_grad()
    def measure(self, head: torch.nn.Module) -> dict[str, float]:
        was_training = head.training
        head.eval()
        student = head(self.images, "images") @ head(self.captions, "captions").T  # (n_images, n_captions)
        head.train(was_training)
        metrics = retrieval_metrics(student.cpu().numpy(), self.caption_image_index)
        return {**agreement(student, self.teacher, self.k), "rsum": metrics["rsum"], "t2i_r10": metrics["t2i_r10"],
                "i2t_r10": metrics["i2t_r10"], "teacher_rsum": self.teacher_rsum}


def content_tokens(teacher: TERAN, sample: DevSet) -> np.ndarray:
    """(T, D) float32: the regions and scored words of ``sample``'s items, as the frozen ``teacher`` encodes them
    (what a prototype head's k-means starts from, :meth:`PrototypeHead.init_from`)."""
    images, captions = encode_dev(teacher, sample)
    parts = [images.tokens[content_mask(images, "images")], captions.tokens[content_mask(captions, "captions")]]
    return torch.cat(parts).float().cpu().numpy()
