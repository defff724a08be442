"""The ``teran`` console script: dispatches each subcommand to its job's ``main``."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with a main(argv) function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jobs.demo", "the whole pipeline on synthetic data, on this machine, in minutes"),
    "synth": ("jobs.synth", "write a grounded synthetic dataset"),
    "convert": ("jobs.convert", "convert COCO, Flickr30K or precomp data to shards"),
    "train": ("jobs.train", "train TERAN on Ray Train; rerunning a run name resumes it"),
    "distill": ("jobs.distill", "train a global head that ranks like TERAN's alignment over a frozen TERAN (Ray Train)"),
    "encode": ("jobs.encode", "encode a dataset's images and captions into embedding shards (Ray Data)"),
    "compress": ("jobs.compress", "compress an fp16 embedding set: shared centroids plus residual bits per token"),
    "build-index": ("jobs.build_index", "build a sharded FAISS index from an embedding set"),
    "evaluate": ("jobs.evaluate", "recall of exhaustive, global-only and two-stage retrieval"),
    "search": ("jobs.search", "top images for a caption, or captions for an image"),
    "pipeline": ("jobs.pipeline", "synth, encode, build-index and evaluate as one resumable job with one summary"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``teran <subcommand> --config FILE.yaml [section.key=value ...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="teran",
        description="TERAN image-text retrieval at scale: encode, index and evaluate on Ray.",
        epilog="Run 'teran <subcommand> --help' for the flags of one subcommand.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
