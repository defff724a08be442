"""alignment_scores: hand-computed cases, and the block kernel against direct re-statements of both semantics."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import teran_core.alignment as alignment
from teran_core import TokenSet, alignment_scores
from teran_core.model.config import ALIGNMENT_MODES

MODES = ALIGNMENT_MODES


def image(*regions, dim=2):
    """An image token set: slot 0 (global, never scored) then the regions."""
    return torch.tensor([[9.0] * dim, *regions])


def caption(*words, dim=2):
    """A caption token set: [CLS], the scored words, the last word piece and [SEP] (the last three never scored)."""
    return torch.tensor([[9.0] * dim, *words, [7.0] * dim, [5.0] * dim])


def stack(items):
    """Pads with garbage (never zeros) to show that padded slots are ignored."""
    longest = max(len(t) for t in items)
    tokens = torch.full((len(items), longest, items[0].shape[1]), 3.0)
    for i, t in enumerate(items):
        tokens[i, :len(t)] = t
    return TokenSet(tokens, torch.tensor([len(t) for t in items]))


# One image with regions r1 = (1, 0), r2 = (0, 1).
# Caption 0: words w1 = (0.6, 0.8), w2 = (-0.28, -0.96): A = [[0.6, -0.28], [0.8, -0.96]] (rows r, columns t).
#   best region per word: 0.8 and -0.28 (negative!); best word per region: 0.6 and 0.8.
# Caption 1: one word w = (-0.6, -0.8): A = [[-0.6], [-0.8]]: every alignment is negative.
IMAGES = stack([image([1.0, 0.0], [0.0, 1.0])])
CAPTIONS = stack([caption([0.6, 0.8], [-0.28, -0.96]), caption([-0.6, -0.8])])


def scan_by_hand(a, b, word1, word2, region):
    """cos(region, softmax([a, b]) . [word1, word2]) for a region attending over two words."""
    p = math.exp(a) / (math.exp(a) + math.exp(b))
    v = [p * x + (1 - p) * y for x, y in zip(word1, word2)]
    return sum(r * x for r, x in zip(region, v)) / math.hypot(*v)


# relu(A) of caption 0 is [[0.6, 0], [0.8, 0]]; unit norm over regions keeps column 1 = (0.6, 0.8) and
# column 2 = 0; so region 1 weighs the words by softmax([0.6, 0]) and region 2 by softmax([0.8, 0]).
SCAN_0 = scan_by_hand(0.6, 0, (0.6, 0.8), (-0.28, -0.96), (1, 0)) + scan_by_hand(0.8, 0, (0.6, 0.8), (-0.28, -0.96), (0, 1))
HAND = {  # mode: (masked, reference) scores of [caption 0, caption 1]
    "MrSw": ([0.8 - 0.28, -0.6], [0.8 + 0.0, 0.0]),  # reference: max over regions clamped at 0 (2 < 36 regions)
    "MrAVGw": ([(0.8 - 0.28) / 2, -0.6], [0.8 / 2, 0.0]),
    "MwSr": ([0.6 + 0.8, -0.6 - 0.8], [0.6 + 0.8, 0.0]),  # reference: max over words clamped at 0 (< 85 words)
    "symm": ([0.52 + 1.4, -0.6 - 1.4], [0.8 + 1.4, 0.0]),
    "sum": ([0.6 - 0.28 + 0.8 - 0.96, -1.4], [0.16, -1.4]),
    "mean": ([0.16 / 4, -1.4 / 2], [0.16 / (36 * 85), -1.4 / (36 * 85)]),
    "scan-sentences": ([SCAN_0, -0.6 - 0.8], [SCAN_0, -1.4]),  # one word: weight 1, cos = the dot product
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", ["masked", "reference"])
def test_hand_computed_scores(mode, padding):
    expected = HAND[mode][padding == "reference"]
    got = alignment_scores(IMAGES, CAPTIONS, mode, padding=padding)
    assert got.dtype == torch.float32 and got.shape == (1, 2)
    torch.testing.assert_close(got, torch.tensor([expected]), atol=1e-6, rtol=1e-5)


def test_items_at_the_reference_padding_size_are_not_clamped():
    # 36 regions fill the reference's region axis, so MrSw is an exact max even under "reference";
    # a 1-word caption leaves 84 zero-filled word cells, so MwSr is clamped there.
    images = stack([image(*[[-1.0, 0.0]] * 36)])
    captions = stack([caption([1.0, 0.0])])
    for padding, mwsr in (("masked", -36.0), ("reference", 0.0)):
        assert alignment_scores(images, captions, "MrSw", padding=padding).item() == -1.0
        assert alignment_scores(images, captions, "MwSr", padding=padding).item() == mwsr


# --- direct re-statements -------------------------------------------------------------------------------
def reference_evaluation(images: TokenSet, captions: TokenSet, mode: str) -> torch.Tensor:
    """The reference evaluation, restated: zero-padded storage (37 / 88 slots), slots dropped,
    every pair's full 36 x 85 grid, invalid cells 0-filled, then the mode's formula."""
    def store(ts, slots):
        out = torch.zeros(len(ts), slots, ts.tokens.shape[2])
        for i, n in enumerate(ts.lengths.tolist()):
            out[i, :n] = ts.tokens[i, :n]
        return out

    im, s = store(images, 37)[:, 1:], store(captions, 88)[:, 1:-2]  # (N, 36, D), (M, 85, D)
    n_i, m_c = images.lengths - 1, captions.lengths - 3
    A = torch.einsum("nrd,mtd->nmrt", im, s)
    invalid = (torch.arange(36)[None, None, :, None] >= n_i[:, None, None, None]) | (
        torch.arange(85)[None, None, None, :] >= m_c[None, :, None, None])
    A = A.masked_fill(invalid, 0)
    if mode == "scan-sentences":
        w = torch.softmax(F.normalize(A.relu(), dim=2).masked_fill(invalid, float("-inf")), dim=3)
        attended = torch.einsum("nmrt,mtd->nmrd", w, s)
        cos = F.cosine_similarity(im[:, None], attended, dim=3)
        return cos.masked_fill(invalid[..., 0], 0).sum(2)
    mrsw, mwsr = A.max(2).values.sum(2), A.max(3).values.sum(2)
    return {"MrSw": mrsw, "MrAVGw": mrsw / m_c[None].float(), "MwSr": mwsr, "symm": mrsw + mwsr,
            "sum": A.sum((2, 3)), "mean": A.mean((2, 3))}[mode]


def masked_pair(regions: torch.Tensor, words: torch.Tensor, mode: str) -> torch.Tensor:
    """The clean definition for one pair, on exactly the valid regions (n, D) and words (m, D)."""
    A = regions @ words.T
    if mode == "scan-sentences":
        w = torch.softmax(F.normalize(A.relu(), dim=0), dim=1)
        return F.cosine_similarity(regions, w @ words, dim=1).sum()
    return {"MrSw": A.max(0).values.sum(), "MrAVGw": A.max(0).values.mean(), "MwSr": A.max(1).values.sum(),
            "symm": A.max(0).values.sum() + A.max(1).values.sum(), "sum": A.sum(), "mean": A.mean()}[mode]


def masked_loop(images: TokenSet, captions: TokenSet, mode: str) -> torch.Tensor:
    return torch.stack([
        torch.stack([masked_pair(images.tokens[i, 1:ni], captions.tokens[c, 1:mc - 2], mode)
                     for c, mc in enumerate(captions.lengths.tolist())])
        for i, ni in enumerate(images.lengths.tolist())
    ])


def random_sets(n_images=7, n_captions=11, dim=8):
    """Unit tokens; image regions 1..36 (some exactly 36), caption word pieces 1..85, garbage padding."""
    region_counts = torch.tensor([36, 1, 5, 36, 12, 3, 30][:n_images])
    word_counts = torch.tensor([1, 9, 14, 2, 85, 11, 6, 20, 3, 12, 8][:n_captions])
    images = torch.randn(n_images, 37, dim) * 5
    captions = torch.randn(n_captions, 88, dim) * 5
    return (TokenSet(F.normalize(images, dim=2), region_counts + 1),
            TokenSet(F.normalize(captions, dim=2), word_counts + 3))


@pytest.mark.parametrize("mode", MODES)
def test_reference_padding_equals_the_reference_evaluation(mode):
    images, captions = random_sets()
    got = alignment_scores(images, captions, mode, padding="reference", max_block_bytes=2**20)
    torch.testing.assert_close(got, reference_evaluation(images, captions, mode), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_masked_padding_equals_the_clean_per_pair_definition(mode):
    images, captions = random_sets()
    got = alignment_scores(images, captions, mode, padding="masked", max_block_bytes=2**20)
    torch.testing.assert_close(got, masked_loop(images, captions, mode), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_small_blocks_give_the_same_scores_and_respect_the_memory_bound(mode, monkeypatch):
    images, captions = random_sets()
    limit, dim, blocks = 120_000, 8, []
    score_block = alignment._score_block

    def recording(regions, n_regions, region_pad, words, *args):
        blocks.append((regions.shape[0] * regions.shape[1], words.shape[0]))  # words are packed (W, D)
        return score_block(regions, n_regions, region_pad, words, *args)

    monkeypatch.setattr(alignment, "_score_block", recording)
    small = alignment_scores(images, captions, mode, max_block_bytes=limit)
    copies = alignment._WORKSPACE_COPIES[mode]
    assert len(blocks) >= 2
    assert all(4 * (copies * rows * cols + 2 * dim * (rows + cols)) <= limit for rows, cols in blocks)
    torch.testing.assert_close(small, alignment_scores(images, captions, mode), atol=1e-6, rtol=1e-6)


def test_float16_numpy_shards_score_in_float32():
    images, captions = random_sets()
    stored_images = TokenSet(images.tokens.numpy().astype(np.float16), images.lengths.numpy())
    stored_captions = TokenSet(captions.tokens.numpy().astype(np.float16), captions.lengths.numpy())
    got = alignment_scores(stored_images, stored_captions, "MrSw")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, alignment_scores(images, captions, "MrSw"), atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_the_per_pair_definition(mode):
    images, captions = random_sets(4, 5)
    images.tokens.requires_grad_(True)
    captions.tokens.requires_grad_(True)
    weights = torch.randn(4, 5)
    grads = [torch.autograd.grad((f(images, captions) * weights).sum(), [images.tokens, captions.tokens])
             for f in (lambda i, c: alignment_scores(i, c, mode, padding="masked"), lambda i, c: masked_loop(i, c, mode))]
    for ours, direct in zip(*grads):
        torch.testing.assert_close(ours, direct, atol=1e-5, rtol=1e-4)


def test_token_sets_check_their_shapes():
    with pytest.raises(ValueError, match=r"tokens \(2, 5, 4\) and lengths \(3,\) do not fit"):
        TokenSet(torch.zeros(2, 5, 4), torch.tensor([5, 5, 5]))
    with pytest.raises(ValueError, match="caption lengths go up to 9 but tokens hold 5 slots"):
        alignment_scores(IMAGES, TokenSet(torch.zeros(1, 5, 2), torch.tensor([9])))


def test_empty_sets_give_an_empty_matrix():
    images, captions = random_sets()
    assert alignment_scores(images[:0], captions).shape == (0, 11)


@pytest.mark.parametrize(
    ("images", "captions", "kwargs", "message"),
    [
        (IMAGES, stack([caption([1.0, 0.0]), torch.zeros(3, 2)]), {}, "caption 1 has length 3"),
        (stack([torch.zeros(1, 2)]), CAPTIONS, {}, "image 0 has length 1"),
        (IMAGES, TokenSet(torch.zeros(1, 5, 3), torch.tensor([5])), {}, "images have D=2 but captions D=3"),
        (IMAGES, CAPTIONS, {"mode": "max"}, "mode 'max'"),
        (IMAGES, CAPTIONS, {"padding": "zero"}, "padding 'zero'"),
        (IMAGES, CAPTIONS, {"max_block_bytes": 50}, "cannot hold even one image-caption pair"),
    ],
    ids=["short-caption", "image-without-regions", "dims", "mode", "padding", "tiny-block"],
)
def test_bad_input_is_refused_with_a_clear_error(images, captions, kwargs, message):
    with pytest.raises(ValueError, match=message):
        alignment_scores(images, captions, **kwargs)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    images, captions = random_sets()
    got = alignment_scores(images, captions, mode, device="cuda")
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), alignment_scores(images, captions, mode), atol=1e-4, rtol=1e-4)


@needs_cuda
@pytest.mark.parametrize("mode", MODES)
def test_cuda_working_memory_stays_within_max_block_bytes(mode):
    n_images, n_captions, dim, limit = 300, 1500, 256, 8 * 2**20
    words = torch.randint(1, 41, (n_captions,))
    images = TokenSet(F.normalize(torch.randn(n_images, 37, dim, device="cuda"), dim=2).half(), torch.full((n_images,), 37))
    captions = TokenSet(F.normalize(torch.randn(n_captions, 43, dim, device="cuda"), dim=2).half(), words + 3)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    scores = alignment_scores(images, captions, mode, max_block_bytes=limit)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before - scores.numel() * 4 - 16 * int(words.sum())  # result, gather indices
    assert extra <= limit, f"{mode}: {extra / 2**20:.1f} MiB of working memory, limit {limit / 2**20:.0f} MiB"


@pytest.mark.parametrize("padding", ["masked", "reference"])
def test_word_alignment_adds_up_to_the_mrsw_score(padding):
    from teran_core.alignment import word_alignment

    gen = torch.Generator().manual_seed(3)
    images = TokenSet(F.normalize(torch.randn(1, 9, 8, generator=gen), dim=2), torch.tensor([6]))  # 5 regions, padded slots after
    captions = TokenSet(F.normalize(torch.randn(1, 12, 8, generator=gen), dim=2), torch.tensor([10]))  # 7 scored pieces
    aligned = word_alignment(images, captions, padding)
    assert aligned.region.shape == aligned.contribution.shape == (7,)
    assert aligned.contribution.sum() == pytest.approx(float(alignment_scores(images, captions, "MrSw", padding)[0, 0]), abs=1e-5)
    grid = images.tokens[0, 1:6] @ captions.tokens[0, 1:8].T  # (regions, words)
    for word, region in enumerate(aligned.region):
        if region >= 0:
            assert grid[region, word] == grid[:, word].max()
        else:  # only the reference's 0-filled cells beat a word whose every region is negative
            assert padding == "reference" and grid[:, word].max() < 0
