"""``teran search``: the top images for a caption, or the top captions for an image, from an index.

    teran search --index s3://bucket/index/coco "a red dog next to a blue car" two_stage.k_candidates=500
    teran search --index s3://bucket/index/coco --image-id 000000391895 --config configs/search.yaml

Two-stage retrieval (``teran_core.retrieval``): index candidates, then exact TERAN alignment on
the stored token embeddings. A text query is encoded with the model recorded in the index.
"""

from __future__ import annotations

import argparse
import re
import sys

from jobs.common import run_main
from teran_core.config import from_dict, load_config, parse_overrides
from teran_core.index.catalog import TeranIndex
from teran_core.retrieval import SearchConfig, TwoStageRetriever

PROG = "teran search"
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+=")  # section.key=value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Search an index built by teran build-index.")
    parser.add_argument("words", nargs="*", metavar="[caption] [section.key=value ...]",
                        help="a caption (prints the best-matching images), then config overrides as for every job, "
                             "e.g. two_stage.k_candidates=500 storage.endpoint_override=http://...")
    parser.add_argument("--index", help="index folder: a local path or s3:// URI (required)")
    parser.add_argument("--image-id", help="an indexed image id: prints its best-matching captions")
    parser.add_argument("--k", type=int, default=10, help="results to print (default 10)")
    parser.add_argument("--checkpoint", help="model to encode the text with (default: the one recorded in index.json)")
    parser.add_argument("--config", help="YAML with two_stage and storage sections (configs/search.yaml)")
    return parser


def split_words(words: list[str]) -> tuple[str | None, list[str]]:
    """The caption and the ``section.key=value`` overrides among the positional words.

    Example:
        >>> split_words(["a dog = a cat", "two_stage.k_candidates=500"])
        ('a dog = a cat', ['two_stage.k_candidates=500'])
    """
    overrides = [w for w in words if OVERRIDE.match(w)]
    texts = [w for w in words if not OVERRIDE.match(w)]
    if len(texts) > 1:
        raise ValueError(f"one caption at a time, got {len(texts)}: {texts} (quote a caption that has spaces)")
    return (texts[0] if texts else None), overrides


def _search(args) -> int:
    text, overrides = split_words(args.words)
    cfg = load_config(SearchConfig, args.config, overrides) if args.config else from_dict(
        SearchConfig, parse_overrides(overrides), source="<command line>")
    if not args.index or (text is None) == (args.image_id is None):
        print(f"{PROG}: error: give --index and either a caption text or --image-id", file=sys.stderr)
        return 2
    index = TeranIndex.open(args.index, cfg.storage)
    retriever = TwoStageRetriever.over(index, cfg.two_stage)
    if text is not None:
        try:
            model = index.load_model(args.checkpoint)
        except ValueError as err:  # no checkpoint recorded in the index
            print(f"{PROG}: error: {err} (--checkpoint URI)", file=sys.stderr)
            return 2
        query, side, shown = model.encode_texts([text]), "captions", "images"
    else:
        query, side, shown = index.embeddings("images").fetch(index.id_map("images").index_of([args.image_id])), "images", "captions"
    ranked = retriever.search(side, query, k=args.k)
    ids = index.id_map(shown)
    print(f"top {shown} for {text!r}" if text is not None else f"top captions for image {args.image_id}")
    for rank, (item, score) in enumerate(zip(ranked.items[0], ranked.scores[0]), 1):
        if item >= 0:
            print(f"{rank:3d}  {score:9.4f}  {ids.item_id(int(item))}")
    print(f"({int(ranked.n_scored[0])} candidates scored with exact TERAN alignment)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and searches; 0 done, 2 bad config or input (an unknown id, no model to encode with)."""
    args = _parser().parse_args(argv)

    def body() -> int:
        try:
            return _search(args)
        except (KeyError, ValueError) as err:
            if isinstance(err, ValueError) and type(err).__name__ == "ConfigError":
                raise
            print(f"{PROG}: error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
            return 2

    return run_main(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
