"""TERAN alignment scores between image and caption token sets (reference ``models/loss.py``).

Shape notation: N images, M captions, D embedding size; per image n_i = length - 1 scored regions
(slot 0, the global slot, is dropped); per caption m_c = length - 3 scored word pieces ([CLS], the
last word piece and [SEP] are dropped, as the reference does). A[r, t] = <region_r, word_t>.

The kernel sorts both sides by length and cuts them into blocks whose (regions x words) grid fits
``max_block_bytes``. Each image-caption block is computed once, by one GEMM over the captions' true
word pieces packed back to back (images are padded to the longest of their block: none with a fixed
36 regions), then reduced per run of equal-length captions as dense views. Padding semantics:

- ``"masked"``: padded cells never win a max; means are over valid cells only.
- ``"reference"``: the reference *evaluation* values: it 0-fills padded cells of a grid padded to
  36 regions (37 image slots) by 85 words (88 caption slots), so a max over regions is clamped at
  0 when n_i < 36 and a max over words when m_c < 85, and ``mean`` divides by 36 x 85. Longer items,
  which the reference cannot store, are padded to their own length.

``sum`` and ``scan-sentences`` are the same under both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TokenSet", "content_slots", "alignment_scores", "word_alignment", "WordAlignment", "REFERENCE_IMAGE_SLOTS", "REFERENCE_CAPTION_SLOTS"]

REFERENCE_IMAGE_SLOTS = 37  # evaluation.encode_data stores images in 37 slots: 36 regions + slot 0
REFERENCE_CAPTION_SLOTS = 88  # and captions in 88: 85 scored pieces + [CLS], the last piece, [SEP]
_PADDINGS = ("reference", "masked")
# Block-sized float32 tensors a mode holds at once: the grid A plus its reductions and temporaries.
_WORKSPACE_COPIES = {"sum": 1, "mean": 1, "MrSw": 2, "MrAVGw": 2, "MwSr": 3, "symm": 3, "scan-sentences": 6}
_DEFAULT_BLOCK_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}


def content_slots(kind: str) -> tuple[int, int]:
    """(first slot, trailing slots to drop) of the content tokens of a side.

    These are the tokens TERAN's alignment scores (reference ``models/loss.py``): images, the regions
    1..L-1 (slot 0 is the global slot); captions, the word pieces 1..L-3 ([CLS], the last word piece
    and [SEP] dropped). Token indexes and token queries use exactly these slots.

    Example:
        >>> content_slots("images"), content_slots("captions")
        ((1, 0), (1, 2))
    """
    if kind not in ("images", "captions"):
        raise ValueError(f"side {kind!r}: expected one of ('images', 'captions')")
    return (1, 0) if kind == "images" else (1, 2)


@dataclasses.dataclass
class TokenSet:
    """B token sets padded to a common length; slots at or past an item's length are ignored.

    Example:
        >>> ts = TokenSet(np.zeros((2, 5, 4), np.float16), np.array([5, 3]))
        >>> ts.tokens.dtype, ts.lengths.tolist(), len(ts)
        (torch.float16, [5, 3], 2)
    """

    tokens: torch.Tensor  # (B, L, D) L2-normalised; slot 0 = global vector unless ``globals`` is given
    lengths: torch.Tensor  # (B,) int64, slot 0 included
    globals: torch.Tensor | None = None  # (B, G) global vectors of another width than D (a prototype head's)

    def __post_init__(self):
        self.tokens = torch.as_tensor(self.tokens)
        self.lengths = torch.as_tensor(self.lengths, device=self.tokens.device).long()
        if self.tokens.dim() != 3 or self.lengths.shape != self.tokens.shape[:1]:
            raise ValueError(
                f"TokenSet: tokens {tuple(self.tokens.shape)} and lengths {tuple(self.lengths.shape)} do not fit; "
                "expected tokens (B, L, D) and lengths (B,)"
            )
        if self.globals is not None:
            self.globals = torch.as_tensor(self.globals)
            if self.globals.dim() != 2 or self.globals.shape[0] != self.tokens.shape[0]:
                raise ValueError(f"TokenSet: globals {tuple(self.globals.shape)} do not fit tokens {tuple(self.tokens.shape)}; "
                                 "expected (B, G)")

    @property
    def global_vectors(self) -> torch.Tensor:
        return self.tokens[:, 0] if self.globals is None else self.globals  # (B, D) or (B, G)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, index) -> "TokenSet":
        """The sets at ``index`` (a slice, or an index tensor/array)."""
        index = index if isinstance(index, slice) else torch.as_tensor(index, device=self.tokens.device)
        return TokenSet(self.tokens[index], self.lengths[index], None if self.globals is None else self.globals[index])


def _scored_counts(ts: TokenSet, dropped: int, what: str) -> torch.Tensor:
    counts = ts.lengths.cpu() - dropped
    bad = torch.nonzero(counts < 1).flatten()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{what} {i} has length {int(ts.lengths[i])}: nothing left to align after dropping {dropped} slot(s) "
            f"({len(bad)} such {what}s); expected lengths >= {dropped + 1}; reject them before scoring"
        )
    if int(ts.lengths.max()) > ts.tokens.shape[1]:
        raise ValueError(f"{what} lengths go up to {int(ts.lengths.max())} but tokens hold {ts.tokens.shape[1]} slots")
    return counts


def _plan(counts: torch.Tensor, budget: int, padded: bool) -> list[torch.Tensor]:
    """Splits the items, sorted by count, into consecutive runs within ``budget`` slots: the run's
    items x its longest count when ``padded``, else the sum of its counts (at least one item each)."""
    order = torch.argsort(counts, stable=True)
    blocks, start, total = [], 0, 0
    for stop, count in enumerate(counts[order].tolist(), 1):
        total += count
        if (stop - start) * count > budget if padded else total > budget:
            blocks.append(order[start:stop - 1])
            start, total = stop - 1, count
    blocks.append(order[start:])
    return blocks


def _budgets(max_block_bytes: int, copies: int, dim: int, rows: int, longest: tuple[int, int]) -> tuple[int, int]:
    """Row (region) and column (word) budgets with copies*rows*cols + 2*dim*(rows+cols) floats <= the limit.

    Square blocks suit GEMMs best; with few image rows in all (``rows``) the columns get the rest.
    """
    floats = max_block_bytes // 4
    side = int((-4 * dim + math.sqrt(16 * dim * dim + 4 * copies * floats)) / (2 * copies))
    cols_for = lambda row_budget: (floats - 2 * dim * row_budget) // (copies * row_budget + 2 * dim)
    row_budget = min(rows, max(side, longest[0]))
    if cols_for(row_budget) < longest[1]:  # the longest caption needs wider blocks: take fewer images
        row_budget = longest[0]
    col_budget = cols_for(row_budget)
    if col_budget < longest[1]:
        need = 4 * (copies * longest[0] * longest[1] + 2 * dim * sum(longest))
        raise ValueError(f"max_block_bytes={max_block_bytes} cannot hold even one image-caption pair; use >= {need}")
    return row_budget, col_budget


def _padded_regions(tokens: torch.Tensor, index: torch.Tensor, counts: torch.Tensor, width: int, padded: bool):
    """(n, width, D) float32 regions (slots 1..count) of the images at ``index``, zero past each count,
    and the (n, width) mask of those padded slots (None when ``padded`` is False: every count is ``width``)."""
    block = tokens[index, 1:1 + width].float()
    if not padded:  # a fixed number of regions (features_36): nothing to mask, skip the passes
        return block, None
    pad = torch.arange(width, device=block.device)[None, :] >= counts[:, None]  # True = pad
    return torch.where(pad[:, :, None], 0.0, block), pad


class _CaptionBlock(NamedTuple):
    """Captions of one block, sorted by word count, with what the kernel needs on the device."""

    index: torch.Tensor  # (m,) caption positions
    counts: torch.Tensor  # (m,) scored word pieces per caption
    item: torch.Tensor  # (W,) caption of every packed word piece
    slot: torch.Tensor  # (W,) its token slot
    runs: list[tuple[int, int, int]]  # (first packed column, captions, words each) per run of equal length


def _caption_block(index: torch.Tensor, counts: torch.Tensor, device: torch.device) -> _CaptionBlock:
    """Plans the packed gather of the captions at ``index`` (CPU tensors; sorted by ``counts``)."""
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(int(counts.sum())) - torch.repeat_interleave(starts, counts) + 1  # slots 1..count
    lengths, sizes = torch.unique_consecutive(counts, return_counts=True)
    first = (torch.cumsum(lengths * sizes, 0) - lengths * sizes).tolist()
    return _CaptionBlock(index.to(device), counts.to(device), torch.repeat_interleave(index, counts).to(device),
                         slot.to(device), list(zip(first, sizes.tolist(), lengths.tolist())))


def _scan_sentences(A, regions, region_pad, words):
    """SCAN-style attention of each region over a caption's words, then sum of cos(region, attended words).

    A (n, R, m, T) for m captions of T words each (words (m, T, D)); padded regions' cells are 0.
    """
    rel = F.normalize(A.clamp_min(0), dim=1)  # relu, unit norm over regions
    w = torch.softmax(rel, dim=3)  # (n, R, m, T): each region's weights over the words
    # cos(region_r, a_r) with a_r = sum_t w_rt word_t, without holding a_r (n, R, m, D):
    # region_r . a_r = sum_t w_rt A_rt, and |a_r|^2 = w_r^T G w_r with G the caption's word Gram matrix.
    dot = (w * A).sum(3)  # (n, R, m)
    gram = words @ words.transpose(1, 2)  # (m, T, T)
    sq_norm = (torch.einsum("nrmt,mts->nrms", w, gram) * w).sum(3)  # (n, R, m)
    norms = regions.norm(dim=2)[:, :, None] * sq_norm.clamp_min(0).sqrt()
    cos = dot / norms.clamp_min(1e-8)
    return _drop_padded(cos, region_pad).sum(1)  # (n, m)


def _drop_padded(x: torch.Tensor, region_pad: torch.Tensor | None) -> torch.Tensor:
    """x (n, R, m) with padded regions' entries set to 0."""
    return x if region_pad is None else x.masked_fill(region_pad[:, :, None], 0.0)


def _zero_fill_floor(counts: torch.Tensor, padded_to: int) -> torch.Tensor:
    """Per item, the value the reference's 0-filled cells add to a max: 0 if its grid had any, else -inf."""
    return torch.where(counts < padded_to, 0.0, float("-inf"))


def _per_caption(x: torch.Tensor, runs: list[tuple[int, int, int]], reduce) -> torch.Tensor:
    """Applies ``reduce(view, dim=-1)`` to each caption's word columns of x (..., W) -> (..., m)."""
    return torch.cat([reduce(x[..., s:s + m * T].unflatten(-1, (m, T)), dim=-1) for s, m, T in runs], dim=-1)


def _score_block(regions, n_regions, region_pad, words, n_words, runs, mode: str, padding: str) -> torch.Tensor:
    """(n, m) scores of one block: regions (n, R, D) zero where region_pad (or None: no padding);
    words (W, D) packed for m captions sorted by n_words, in ``runs``. One GEMM over the true word
    count; reductions over regions run on the whole grid at once, over words on views of each run."""
    n, R, D = regions.shape
    A = (regions.reshape(n * R, D) @ words.T).view(n, R, -1)  # (n, R, W): the only GEMM
    reference = padding == "reference"
    if mode == "scan-sentences":  # padded regions are zero vectors: their cells are 0
        return torch.cat([_scan_sentences(A[:, :, s:s + m * T].unflatten(2, (m, T)), regions, region_pad,
                                          words[s:s + m * T].unflatten(0, (m, T))) for s, m, T in runs], dim=1)
    if mode in ("sum", "mean"):
        total = _per_caption(A.sum(1), runs, torch.sum)  # (n, m)
        if mode == "sum":
            return total
        if reference:  # the reference averages over its whole padded 36 x 85 grid
            n_regions, n_words = n_regions.clamp_min(REFERENCE_IMAGE_SLOTS - 1), n_words.clamp_min(REFERENCE_CAPTION_SLOTS - 3)
        return total / (n_regions[:, None] * n_words[None, :])
    if region_pad is not None:
        A.masked_fill_(region_pad[:, :, None], float("-inf"))  # padded regions never win a max
    score = 0.0
    if mode in ("MrSw", "MrAVGw", "symm"):
        best = A.amax(1)  # (n, W): best region per word, for the whole block at once
        if reference:
            best = torch.maximum(best, _zero_fill_floor(n_regions, REFERENCE_IMAGE_SLOTS - 1)[:, None])
        score = _per_caption(best, runs, torch.sum) / (n_words[None, :] if mode == "MrAVGw" else 1)
    if mode in ("MwSr", "symm"):
        best = _per_caption(A, runs, torch.amax)  # (n, R, m): best word per region
        if reference:
            best = torch.maximum(best, _zero_fill_floor(n_words, REFERENCE_CAPTION_SLOTS - 3)[None, None, :])
        score = score + _drop_padded(best, region_pad).sum(1)
    return score


def alignment_scores(
    images: TokenSet,
    captions: TokenSet,
    mode: str = "MrSw",
    padding: str = "reference",
    *,
    max_block_bytes: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """TERAN alignment scores of every image against every caption, computed once per pair.

    Args:
        images: N image token sets (slot 0 global, slots 1.. regions), e.g. from ``encode_images``.
        captions: M caption token sets ([CLS] w1 .. wn [SEP]), e.g. from ``encode_captions``.
        mode: "MrSw" (default), "MrAVGw", "MwSr", "symm", "sum", "mean" or "scan-sentences".
        padding: "reference" (the reference evaluation's values) or "masked" (see the module doc).
        max_block_bytes: bound on the working memory of one block: its float32 operands and
            alignment grid with its temporaries (1 to 6 grids, by mode); None: 256 MiB on CPU,
            2 GiB on CUDA (bigger GEMMs keep a GPU busy). The inputs, the (N, M) result and 16 bytes
            per caption word piece (gather indices) are extra.
        device: where to compute (the token sets are moved there once, in their own dtype, and cast
            to float32 block by block); None: the images' device.

    Returns:
        (N, M) float32 scores on ``device``; differentiable w.r.t. the tokens.

    Raises:
        ValueError: an unknown mode or padding, different D, a caption shorter than 4 slots or an
            image shorter than 2 (nothing left to align), or a block limit below one pair.

    Example:
        >>> img = TokenSet(torch.tensor([[[0., 1.], [1., 0.], [0.6, 0.8]]]), torch.tensor([3]))
        >>> cap = TokenSet(torch.tensor([[[1., 0.], [0., 1.], [1., 0.], [0., 0.]]]), torch.tensor([4]))
        >>> alignment_scores(img, cap, "MrSw", padding="masked")  # one word <0,1>: best region 0.8
        tensor([[0.8000]])
    """
    if mode not in _WORKSPACE_COPIES or padding not in _PADDINGS:
        raise ValueError(
            f"alignment_scores: mode {mode!r} / padding {padding!r}; expected mode in {tuple(_WORKSPACE_COPIES)} "
            f"and padding in {_PADDINGS}"
        )
    dim = images.tokens.shape[2]
    if captions.tokens.shape[2] != dim:
        raise ValueError(f"images have D={dim} but captions D={captions.tokens.shape[2]}; they must come from one model")
    device = torch.device(device) if device is not None else images.tokens.device
    out = torch.empty((len(images), len(captions)), dtype=torch.float32, device=device)
    if out.numel() == 0:
        return out
    n_regions, n_words = _scored_counts(images, 1, "image"), _scored_counts(captions, 3, "caption")
    img_tokens, cap_tokens = images.tokens.to(device), captions.tokens.to(device)
    longest = (int(n_regions.max()), int(n_words.max()))
    max_block_bytes = max_block_bytes or _DEFAULT_BLOCK_BYTES.get(device.type, _DEFAULT_BLOCK_BYTES["cpu"])
    row_budget, col_budget = _budgets(max_block_bytes, _WORKSPACE_COPIES[mode], dim, len(images) * longest[0], longest)
    # Everything the loop needs is planned up front and put on the device, so the loop never waits on it.
    caption_blocks = [_caption_block(index, n_words[index], device) for index in _plan(n_words, col_budget, padded=False)]
    n_regions_on_device = n_regions.to(device)
    for img_index in _plan(n_regions, row_budget, padded=True):
        counts = n_regions[img_index]
        width, padded, img_index = int(counts.max()), bool(counts.min() < counts.max()), img_index.to(device)
        regions, region_pad = _padded_regions(img_tokens, img_index, n_regions_on_device[img_index], width, padded)
        for cap in caption_blocks:
            words = cap_tokens[cap.item, cap.slot].float()  # (W, D)
            block = _score_block(
                regions, n_regions_on_device[img_index], region_pad, words, cap.counts, cap.runs, mode, padding
            )
            out[img_index[:, None], cap.index[None, :]] = block
    return out


class WordAlignment(NamedTuple):
    """Where each scored word piece of one caption aligns in one image, under MrSw."""

    region: np.ndarray  # (m_c,) 0-based region (token slot - 1) of each word's best region; -1: a padding cell won
    contribution: np.ndarray  # (m_c,) the word's term of the MrSw score: its similarity to that region


def word_alignment(image: TokenSet, caption: TokenSet, padding: str = "reference") -> WordAlignment:
    """The argmax region of every scored word piece, and its share of the MrSw score (the paper's qualitative figure).

    The slots are those :func:`alignment_scores` scores: regions 1..n_i, word pieces 1..m_c (without
    [CLS], the last piece and [SEP]); the contributions add up to the pair's MrSw score.

    Args:
        image: one image's token set (``len(image) == 1``).
        caption: one caption's token set.
        padding: as in :func:`alignment_scores`; under "reference" a word whose best region scores
            below 0 in an image of fewer than 36 regions aligns to a 0-filled cell (region -1, contribution 0).

    Example:
        >>> img = TokenSet(torch.tensor([[[0., 1.], [1., 0.], [0.6, 0.8]]]), torch.tensor([3]))
        >>> cap = TokenSet(torch.tensor([[[1., 0.], [0., 1.], [1., 0.], [0., 0.]]]), torch.tensor([4]))
        >>> a = word_alignment(img, cap, padding="masked")  # one word <0,1>: best is region 1 (slot 2), 0.8
        >>> a.region.tolist(), [round(float(c), 3) for c in a.contribution]
        ([1], [0.8])
    """
    if len(image) != 1 or len(caption) != 1:
        raise ValueError(f"word_alignment takes one image and one caption, got {len(image)} and {len(caption)}")
    n_regions = int(_scored_counts(image, 1, "image")[0])
    n_words = int(_scored_counts(caption, 3, "caption")[0])
    regions = image.tokens[0, 1:1 + n_regions].float()  # (n_i, D)
    words = caption.tokens[0, 1:1 + n_words].float()  # (m_c, D)
    best, region = (regions @ words.T).max(0)  # (m_c,) over regions, as MrSw
    if padding == "reference" and n_regions < REFERENCE_IMAGE_SLOTS - 1:
        region = torch.where(best < 0, -1, region)
        best = best.clamp_min(0.0)
    return WordAlignment(region.numpy(), best.numpy())
