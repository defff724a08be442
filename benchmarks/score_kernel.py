"""MrSw scoring speed: teran's block kernel vs a plain matmul (the machine's practical peak) and vs
the reference evaluation's way (pad images to 37 and captions to 88 slots, score every pair twice).

    python benchmarks/score_kernel.py [--images 200 --captions 1000 --device cpu]

All figures come from this one run; the kernel and the matmuls are timed ``--repeats`` times,
interleaved, keeping the best of each (the machine may be shared). The padded baseline is timed on
``--baseline-queries`` queries per direction and scaled to all pairs (its cost per query is
constant); its scores are checked against the kernel's.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import teran_core.alignment as alignment
from teran_core import TokenSet, alignment_scores

REGIONS = 36  # bottom-up features_36: every COCO image has 36 regions (37 slots with the global one)
SCORED_WORDS_MEAN, SCORED_WORDS_SD = 11.0, 2.5  # word pieces per COCO caption after dropping 3 slots (an estimate: COCO captions average about 14 word pieces with [CLS]/[SEP])


def timed(fn) -> tuple[float, object]:
    """(seconds, result) of one call of ``fn``."""
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def with_block_shapes(run):
    """Runs ``run()`` once, recording the (region rows, word columns) of every GEMM block the kernel makes."""
    blocks, score_block = [], alignment._score_block

    def recording(regions, n_regions, region_pad, words, *rest):
        blocks.append((regions.shape[0] * regions.shape[1], words.shape[0]))  # words are packed (W, D)
        return score_block(regions, n_regions, region_pad, words, *rest)

    alignment._score_block = recording
    try:
        return run(), blocks
    finally:
        alignment._score_block = score_block


def make_sets(n_images: int, n_captions: int, dim: int, device: str) -> tuple[TokenSet, TokenSet]:
    words = torch.normal(SCORED_WORDS_MEAN, SCORED_WORDS_SD, (n_captions,)).round().clamp(4, 40).long()
    images = F.normalize(torch.randn(n_images, REGIONS + 1, dim, device=device), dim=2)
    captions = F.normalize(torch.randn(n_captions, int(words.max()) + 3, dim, device=device), dim=2)
    return TokenSet(images, torch.full((n_images,), REGIONS + 1)), TokenSet(captions, words + 3)


def padded_storage(ts: TokenSet, slots: int, dropped_tail: int) -> torch.Tensor:
    """The scored slots as the reference evaluation sees them: stored zero-padded to ``slots``, slot 0
    and the last ``dropped_tail`` slots cut, invalid cells 0 (zero tokens give exactly its 0-fill)."""
    out = torch.zeros(len(ts), slots, ts.tokens.shape[2], device=ts.tokens.device)
    position = torch.arange(ts.tokens.shape[1], device=ts.tokens.device)[None]
    scored = (position >= 1) & (position < ts.lengths[:, None] - dropped_tail)
    out[:, :ts.tokens.shape[1]] = torch.where(scored[..., None], ts.tokens, 0)
    return out[:, 1:slots - dropped_tail]


def padded_i2t(images: torch.Tensor, captions: torch.Tensor, image: int) -> torch.Tensor:
    """One image query against every caption over full 36 x 85 zero-padded grids (padding is 0 already)."""
    grid = captions.reshape(-1, captions.shape[2]) @ images[image].T  # (M * 85, 36)
    return grid.view(captions.shape[0], captions.shape[1], -1).amax(2).sum(1)  # max over regions, sum words


def padded_t2i(images: torch.Tensor, captions: torch.Tensor, first: int) -> torch.Tensor:
    """The 5 captions of one image against every image, as the reference's t2i (5 queries per call)."""
    query = captions[first:first + 5]
    grid = images.reshape(-1, images.shape[2]) @ query.reshape(-1, query.shape[2]).T  # (N * 36, 5 * 85)
    return grid.view(images.shape[0], images.shape[1], 5, -1).amax(1).sum(2)  # (N, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images scored (captions: 5 per image by default)")
    parser.add_argument("--captions", type=int, default=1000, help="captions scored")
    parser.add_argument("--dim", type=int, default=1024, help="embedding size D (TERAN: 1024)")
    parser.add_argument("--max-block-mb", type=int, help="the kernel's max_block_bytes in MiB; default: its own (CPU 256, CUDA 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings of kernel and matmul; the best of each is kept")
    parser.add_argument("--baseline-queries", type=int, default=10, help="padded-baseline queries timed per direction")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.manual_seed(0)

    images, captions = make_sets(args.images, args.captions, args.dim, args.device)
    n_regions, n_words = images.lengths - 1, captions.lengths - 3
    pairs = args.images * args.captions
    useful_flop = 2 * args.dim * float(n_regions.sum()) * float(n_words.sum())
    print(f"device {args.device}, {torch.get_num_threads()} threads; {args.images} images x {args.captions} captions, "
          f"D={args.dim}, {REGIONS} regions, scored word pieces mean {n_words.float().mean():.1f} (min {n_words.min()}, max {n_words.max()})")

    block_bytes = args.max_block_mb * 2**20 if args.max_block_mb else None
    kernel = lambda: alignment_scores(images, captions, "MrSw", "reference", max_block_bytes=block_bytes)
    scores, blocks = with_block_shapes(kernel)
    operands = {shape: (torch.randn(shape[0], args.dim, device=args.device), torch.randn(shape[1], args.dim, device=args.device))
                for shape in set(blocks)}

    def matmuls():  # the kernel's GEMMs alone, same shapes and order; each result dropped at once, as the kernel's
        for shape in blocks:
            a, b = operands[shape]
            torch.mm(a, b.T)

    kernel_s, matmul_s = float("inf"), float("inf")
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
        kernel_s, matmul_s = min(kernel_s, timed(kernel)[0]), min(matmul_s, timed(matmuls)[0])
    kernel_gflops = useful_flop / kernel_s / 1e9
    gemm_flop = 2 * args.dim * sum(r * c for r, c in blocks)  # includes padding to each block's longest item
    matmul_gflops = gemm_flop / matmul_s / 1e9

    padded_images, padded_captions = padded_storage(images, 37, 0), padded_storage(captions, 88, 2)
    queries = range(min(args.baseline_queries, args.images))
    i2t_s, i2t = timed(lambda: [padded_i2t(padded_images, padded_captions, k) for k in queries])
    t2i_s, t2i = timed(lambda: [padded_t2i(padded_images, padded_captions, 5 * k) for k in queries])
    baseline_s = i2t_s / len(queries) * args.images + t2i_s / len(queries) * (args.captions / 5)
    baseline_flop = 2 * (2 * args.dim * REGIONS * 85) * pairs
    for k in queries:
        torch.testing.assert_close(i2t[k], scores[k], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(t2i[k], scores[:, 5 * k:5 * k + 5], atol=1e-3, rtol=1e-4)

    largest = max(blocks, key=lambda b: b[0] * b[1])
    print(f"block kernel : {kernel_s:.2f} s, {pairs / kernel_s:,.0f} pairs/s, {kernel_gflops:.1f} GFLOP/s useful (true lengths); "
          f"{len(blocks)} blocks, largest {largest[0]} x {largest[1]}, "
          f"GEMM work +{100 * (gemm_flop / useful_flop - 1):.1f}% block padding")
    print(f"torch.matmul : {matmul_s:.2f} s, {matmul_gflops:.1f} GFLOP/s for the kernel's {len(blocks)} GEMM shapes alone")
    print(f"padded x2    : {baseline_s:.2f} s for all pairs ({len(queries)} queries per direction timed, scaled), "
          f"{pairs / baseline_s:,.0f} pairs/s, {baseline_flop / baseline_s / 1e9:.1f} GFLOP/s")
    print(f"ratios       : kernel / matmul peak = {kernel_gflops / matmul_gflops:.2f} (target >= 0.6); "
          f"speed-up over padded x2 = {baseline_s / kernel_s:.1f}x (target >= 10x) = "
          f"{baseline_flop / useful_flop:.1f}x less work x {kernel_gflops / (baseline_flop / baseline_s / 1e9):.1f}x faster GFLOP/s")
    print(f"COCO 5K (5,000 x 25,000 pairs, computed once) at this rate: {125e6 / (pairs / kernel_s):,.1f} s")

if __name__ == "__main__":
    main()
