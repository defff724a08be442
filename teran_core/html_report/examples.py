"""What the report shows of single queries: a seeded gallery of retrievals and word-region alignments.

The gallery draws a pool of split queries per direction (seeded), scores each against the whole
split with exact TERAN alignment, and keeps a dozen per direction, half of them failures (ground
truth not at rank 1) where the pool has that many. Each keeps its top 5 with scores. The alignment
view takes a success and a failure of the text-to-image gallery and, for the caption against its
top image, finds each word piece's argmax region (``teran_core.alignment.word_alignment``).

Everything is JSON-ready (``examples.json`` beside ``results.json``), so the demo's summary page can
show the gallery of an evaluation without scoring again.
"""

from __future__ import annotations

import numpy as np
import torch

from teran_core.alignment import TokenSet, word_alignment
from teran_core.recall.evaluation import ranks_in_lists
from teran_core.recall.truth import GroundTruth

__all__ = ["GALLERY_SIZE", "TOP_K", "POOL", "STOPWORDS", "pick_examples", "gallery", "caption_words", "alignment_view", "build_examples"]

GALLERY_SIZE = 12  # queries shown per direction
TOP_K = 5  # results shown per query
POOL = 64  # queries scored per direction to find failures among
IMAGE_BLOCK = 256  # split images per scoring call (as evaluate_protocol)
STOPWORDS = frozenset(
    "a an the of to in on at by for from with and or but is are was were be it its this that these those there "
    "while as into onto than then".split()
)


def pick_examples(ranks: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of ``n`` queries: half failures (rank > 0) where there are enough, the rest successes, seeded.

    Example:
        >>> pick_examples(np.array([0, 3, 0, 0, 7, 0, np.inf]), 4, seed=0).tolist()
        [2, 3, 4, 6]
        >>> sorted(pick_examples(np.array([0, 0, 0]), 5, seed=0).tolist())
        [0, 1, 2]
    """
    order = np.random.default_rng(seed).permutation(len(ranks))
    failures, successes = order[ranks[order] > 0], order[ranks[order] == 0]
    take_failures = min(len(failures), max(n // 2, n - len(successes)))
    chosen = np.concatenate([failures[:take_failures], successes[: n - take_failures]])
    return np.sort(chosen)


def _scores(mapper, gt: GroundTruth, side: str, rows: np.ndarray) -> np.ndarray:
    """(Q, n other side) exact scores of the split rows ``rows`` of ``side`` against the whole split."""
    images, captions = gt.image_items, gt.caption_items
    if side == "captions":
        calls = [(images[a:a + IMAGE_BLOCK], captions[rows]) for a in range(0, len(images), IMAGE_BLOCK)]
        return np.concatenate(mapper("score_block", calls), axis=0).T
    calls = [(images[rows[a:a + IMAGE_BLOCK]], captions) for a in range(0, len(rows), IMAGE_BLOCK)]
    return np.concatenate(mapper("score_block", calls), axis=0)


def gallery(mapper, gt: GroundTruth, side: str, seed: int, n: int = GALLERY_SIZE, pool: int = POOL) -> list[dict]:
    """``n`` queries of ``side`` (split rows) with the rank of their answer and their top :data:`TOP_K`.

    Returns:
        [{"query": split row, "rank": 0-based rank of the best answer, "top": [(split row, score)],
          "answers": split rows of the other side that are correct}], in split order.

    Example (tests/html_report/report_helpers.py runs it on a 1K-image split)::

        mapper = local_mapper(CollectionEvaluator(index, TwoStageConfig(padding="masked")))
        gallery(mapper, gt, "captions", seed=0)[0]["top"]  # [(image row, score), ...] best first
    """
    rows = np.unique(gt.caption_image) if side == "images" else np.arange(len(gt.caption_items))
    rows = np.sort(np.random.default_rng([seed, side == "images"]).permutation(rows)[:pool])
    scores = _scores(mapper, gt, side, rows)  # (P, other side)
    if side == "captions":
        truth = np.arange(len(gt.image_items))[None, :] == gt.caption_image[rows][:, None]
    else:
        truth = gt.caption_image[None, :] == rows[:, None]
    ranks = ranks_in_lists(scores, truth)
    out = []
    for q in pick_examples(ranks, n, seed):
        top = np.argsort(-scores[q], kind="stable")[:TOP_K]
        out.append({"query": int(rows[q]), "rank": float(ranks[q]), "top": [(int(t), float(scores[q, t])) for t in top],
                    "answers": np.flatnonzero(truth[q]).tolist()})
    return out


def caption_words(text: str, length: int, tokenizer) -> list[dict]:
    """The word pieces TERAN scores in a caption embedded with ``length`` slots, and which are content words.

    The slots are [CLS], the pieces, [SEP] (``CaptionCollator``); alignment scores pieces 1..length-3,
    so the last piece (usually the full stop) is not among them.

    Raises:
        ValueError: ``length`` is not the caption's tokenization (cut at encode time, or another tokenizer).

    Example:
        >>> from teran_core.data.tokenizer import load_tokenizer
        >>> [(w["text"], w["content"]) for w in caption_words("A red dog on the grass.", 9, load_tokenizer())]
        [('a', False), ('red', True), ('dog', True), ('on', False), ('the', False), ('grass', True)]
    """
    pieces = tokenizer.tokenize(text)
    if length != len(pieces) + 2:
        raise ValueError(f"caption {text!r} is {len(pieces)} word pieces + [CLS] and [SEP], but its embedding has {length} slots: "
                         "it was cut at encode time or embedded with another tokenizer than bert-base-uncased WordPiece")
    return [{"text": p, "content": p.isalpha() and p not in STOPWORDS} for p in pieces[: length - 3]]


def alignment_view(image: TokenSet, caption: TokenSet, text: str, padding: str, tokenizer) -> list[dict]:
    """Per scored word piece: its text, content flag, argmax region (-1: none) and contribution to the MrSw score.

    Example:
        >>> from teran_core.data.tokenizer import load_tokenizer
        >>> image = TokenSet(torch.tensor([[[0., 0.], [1., 0.], [0., 1.]]]), torch.tensor([3]))
        >>> caption = TokenSet(torch.tensor([[[0., 0.], [0., 1.], [1., 0.], [0., 0.], [0., 0.]]]), torch.tensor([5]))
        >>> [(w["text"], w["region"], w["contribution"]) for w in alignment_view(image, caption, "red dog.", "masked", load_tokenizer())]
        [('red', 1, 1.0), ('dog', 0, 1.0)]
    """
    words = caption_words(text, int(caption.lengths[0]), tokenizer)
    aligned = word_alignment(image, caption, padding)
    return [dict(w, region=int(r), contribution=float(c)) for w, r, c in zip(words, aligned.region, aligned.contribution)]


def _token_set(embeddings, item: int) -> TokenSet:
    batch = embeddings.fetch([item])
    return TokenSet(torch.from_numpy(batch.tokens), torch.from_numpy(batch.lengths))


def build_examples(mapper, gt: GroundTruth, index, metadata, seed: int, padding: str, tokenizer) -> dict:
    """The gallery of both directions, two alignment views and what is needed to draw every image shown.

    Args:
        mapper: runs ``CollectionEvaluator.score_block`` calls (``teran_core.recall.run``).
        gt: the split's ground truth.
        index: the opened ``TeranIndex`` (ids and the embeddings the alignments are read from).
        metadata: ``(image ids, caption ids) -> {"images": id -> drawing data, "captions": id -> text}``,
            e.g. :func:`teran_core.html_report.scenes.dataset_metadata` bound to the dataset.
        seed: the query sample's seed.
        padding: the evaluation's padding ("masked" or "reference").
        tokenizer: the WordPiece tokenizer the captions were embedded with.

    Returns:
        JSON-ready {"t2i": [...], "i2t": [...], "alignments": [...], "images": {id: drawing data}}.

    Example (as ``jobs/evaluate.py`` calls it; tests/html_report/report_helpers.py runs it)::

        examples = build_examples(mapper, gt, index, lambda images, captions: dataset_metadata(dataset, images, captions),
                                  seed=0, padding="masked", tokenizer=load_tokenizer())
        examples["alignments"][0]["words"][1]  # {"text": "red", "content": True, "region": 4, "contribution": 0.61}
    """
    image_ids, caption_ids = index.id_map("images").item_ids, index.id_map("captions").item_ids
    image_id = lambda row: image_ids[int(gt.image_items[row])]
    caption_id = lambda row: caption_ids[int(gt.caption_items[row])]
    t2i_raw, i2t_raw = gallery(mapper, gt, "captions", seed), gallery(mapper, gt, "images", seed)
    pairs = [(wanted, next((e for e in t2i_raw if (e["rank"] == 0) == (wanted == "success")), None)) for wanted in ("success", "failure")]
    pairs = [(wanted, e) for wanted, e in pairs if e is not None]
    shown_images = {image_id(e["query"]) for e in i2t_raw} | {image_id(r) for e in t2i_raw for r, _ in e["top"]}
    shown_captions = {caption_id(e["query"]) for e in t2i_raw} | {caption_id(r) for e in i2t_raw for r, _ in e["top"]}
    meta = metadata(sorted(shown_images), sorted(shown_captions))
    caption = lambda row: {"id": caption_id(row), "text": meta["captions"][caption_id(row)]}
    t2i = [{"caption": caption(e["query"]), "rank": e["rank"],
            "top": [{"image": image_id(r), "score": s, "correct": r in e["answers"]} for r, s in e["top"]]} for e in t2i_raw]
    i2t = [{"image": image_id(e["query"]), "rank": e["rank"],
            "top": [dict(caption(r), score=s, correct=r in e["answers"]) for r, s in e["top"]]} for e in i2t_raw]
    alignments = []
    for wanted, e in pairs:  # the caption against its top image: why it ranked first
        image_row, score = e["top"][0]
        view = {"kind": wanted, "caption": caption(e["query"]), "image": image_id(image_row), "score": score,
                "correct": image_row in e["answers"]}
        try:
            view["words"] = alignment_view(_token_set(index.embeddings("images"), gt.image_items[image_row]),
                                           _token_set(index.embeddings("captions"), gt.caption_items[e["query"]]),
                                           view["caption"]["text"], padding, tokenizer)
        except ValueError as err:  # embeddings from another tokenizer: the page says why the view is missing
            view["error"] = str(err)
        alignments.append(view)
    return {"t2i": t2i, "i2t": i2t, "alignments": alignments, "images": meta["images"]}
