"""Token-level candidates: with every hit found, the approximate score is exactly TERAN's MrSw."""

import numpy as np
import torch

from teran_core.alignment import TokenSet, alignment_scores
from teran_core.index.build import build_part
from teran_core.index.candidates import aggregate_token_hits, global_candidates, token_candidates
from teran_core.index.factory import choose_index
from teran_core.index.layout import PartSpec
from teran_core.index.search import ShardedIndex
from teran_core.storage import resolve


def build(emb, spec, root):
    n = 10**4  # small: Flat
    build_part(emb, spec, choose_index(n, emb.dim, 2**30), root)
    return ShardedIndex.open(root)


def test_exhaustive_token_hits_rank_items_by_mrsw(tmp_path, make_side):
    root = resolve(str(tmp_path))
    images, img_tokens, img_lengths = make_side(root.join("images"), "images", [7, 6], dim=8, seed=1)
    _, cap_tokens, cap_lengths = make_side(root.join("captions"), "captions", [5], dim=8, max_len=8, seed=2)
    regions = build(images, PartSpec("images", "tokens"), root.join("idx", "images-regions"))
    words = [cap_tokens[q, 1:n - 2] for q, n in enumerate(cap_lengths)]  # the slots MrSw sums over
    got = token_candidates(regions, words, k=13, hits_per_token=regions.ntotal, words_from="query")
    exact = alignment_scores(TokenSet(torch.from_numpy(img_tokens), torch.from_numpy(img_lengths)),
                             TokenSet(torch.from_numpy(cap_tokens), torch.from_numpy(cap_lengths)), "MrSw", "masked").numpy()
    for q in range(5):
        assert got[q].tolist() == np.lexsort((np.arange(13), -exact[:, q])).tolist()


def test_image_queries_group_hits_by_caption_word(tmp_path, make_side):
    root = resolve(str(tmp_path))
    _, img_tokens, img_lengths = make_side(root.join("images"), "images", [4], dim=8, seed=3)
    captions, cap_tokens, cap_lengths = make_side(root.join("captions"), "captions", [6, 5], dim=8, max_len=8, seed=4)
    words = build(captions, PartSpec("captions", "tokens"), root.join("idx", "captions-words"))
    regions = [img_tokens[i, 1:n] for i, n in enumerate(img_lengths)]
    got = token_candidates(words, regions, k=11, hits_per_token=words.ntotal, words_from="hits")
    exact = alignment_scores(TokenSet(torch.from_numpy(img_tokens), torch.from_numpy(img_lengths)),
                             TokenSet(torch.from_numpy(cap_tokens), torch.from_numpy(cap_lengths)), "MrSw", "masked").numpy()
    for i in range(4):
        assert got[i].tolist() == np.lexsort((np.arange(11), -exact[i])).tolist()


def test_few_hits_keep_the_best_items_and_global_candidates_drop_padding(tmp_path, make_side):
    from teran_core.index.idmap import pack_token_ids

    ids = pack_token_ids(np.array([2, 2, 9, -0]), np.array([1, 3, 1, 2]))
    ids[3] = -1  # FAISS found fewer hits than asked
    assert aggregate_token_hits(np.array([0.4, 0.8, 0.5, 0.99]), ids, np.array([0, 1, 0, 1]), 5).tolist() == [2, 9]
    images, tokens, _ = make_side(resolve(str(tmp_path)).join("images"), "images", [3], dim=8)
    part = build(images, PartSpec("images", "global"), resolve(str(tmp_path / "g")))
    found = global_candidates(part, tokens[:2, 0], k=10)
    assert [f.tolist()[0] for f in found] == [0, 1] and all(len(f) == 3 for f in found)
