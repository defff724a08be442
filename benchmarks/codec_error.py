"""How much each residual codec of `teran compress` loses, on an fp16 embedding set's own tokens.

    python benchmarks/codec_error.py --embeddings /path/to/emb-fp16 --codec /path/to/emb-res

Samples content tokens (slot 0 left out) of both sides of the fp16 set, fits every residual codec
(``compress.residual``: ``buckets``, ColBERTv2's, and ``product``, OPQ + PQ) on one half with the same
centroids (``--codec``: those of an existing compressed set, so no k-means runs; else k-means on
the sample), and prints for the other half, per codec and ``--nbits``:

- the bytes a token takes;
- the squared error of the decoded residual, as a share of the residual's own energy;
- the dot error: the standard deviation of <q, decoded - x> over real query tokens of both sides,
  which is what moves a MaxSim score;
- the seconds to fit, encode and decode.

No Ray; one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from teran_core.compress import centroid_count, fit_codec, train_centroids  # noqa: E402
from teran_core.compress.store import read_codec  # noqa: E402
from teran_core.embedding_set import EmbeddingSet  # noqa: E402
from teran_core.storage import resolve  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", required=True, help="an fp16 embedding set (holding images/ and captions/)")
    p.add_argument("--codec", default=None, help="a compressed set whose centroids every codec reuses (default: k-means here)")
    p.add_argument("--items", type=int, nargs=2, default=[4000, 12000], metavar=("IMAGES", "CAPTIONS"),
                   help="items sampled per side; their content tokens are the sample")
    p.add_argument("--fit-tokens", type=int, default=60_000, help="tokens the codecs are fitted on; as many others are measured")
    p.add_argument("--queries", type=int, default=1000, help="query tokens for the dot error, half per side")
    p.add_argument("--nbits", type=int, nargs="+", default=[2], choices=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def content_tokens(emb: EmbeddingSet, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """(T, D) float32 unit content tokens of ``n_items`` random items."""
    batch = emb.fetch(np.sort(rng.choice(len(emb), min(n_items, len(emb)), replace=False)))
    tokens = np.concatenate([batch.tokens[i, 1:int(n)] for i, n in enumerate(batch.lengths)]).astype(np.float32)
    return tokens / np.linalg.norm(tokens, axis=1, keepdims=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    root = resolve(args.embeddings)
    sides = [content_tokens(EmbeddingSet.open(root.join(kind), kind=kind), n, rng) for kind, n in zip(("images", "captions"), args.items)]
    queries = np.concatenate([side[rng.choice(len(side), args.queries // 2)] for side in sides])
    tokens = np.concatenate(sides)[rng.permutation(sum(len(side) for side in sides))]
    fit, test = tokens[: args.fit_tokens], tokens[args.fit_tokens: 2 * args.fit_tokens]
    if args.codec:
        centroids = read_codec(resolve(args.codec)).centroids
    else:
        centroids = train_centroids(fit, centroid_count(len(tokens), len(fit)), args.seed)
    print(f"{len(tokens)} content tokens sampled (D = {tokens.shape[1]}); codecs fitted on {len(fit)}, measured on {len(test)}; "
          f"{len(centroids)} centroids; {len(queries)} query tokens", flush=True)
    energy = None
    for nbits in args.nbits:
        for residual in ("buckets", "product"):
            began = time.perf_counter()
            codec = fit_codec(centroids, fit, nbits, residual)
            fitted = time.perf_counter()
            codes, packed = codec.encode(test)
            encoded = time.perf_counter()
            decoded = codec.decode(codes, packed)
            done = time.perf_counter()
            if energy is None:
                energy = float(((test - codec.centroids[codes]) ** 2).sum(1).mean())
                print(f"residual energy per token (centroid error alone): {energy:.5f}", flush=True)
            error = decoded - test
            squared = float((error ** 2).sum(1).mean())
            dot = float((queries @ error[:20_000].T).std())
            print(f"{residual:8s} nbits {nbits}: {codec.bytes_per_token:3d} B/token, squared error {squared:.5f} "
                  f"({squared / energy:.3f} of the residual), dot error {dot:.5f}; fit {fitted - began:.1f} s, "
                  f"encode {encoded - fitted:.2f} s, decode {done - encoded:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
