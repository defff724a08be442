"""FAST CHECK, model-free: two-stage retrieval against exhaustive exact TERAN, and index build scaling, in one run.

Not a headline: its token sets are synthetic vectors (no model), which cluster unlike trained
TERAN tokens. The stage-one figures on encoded embeddings, every source including centroid
interaction over the compressed store, come from ``benchmarks/stage_one.py`` (docs/engine.md).

    python benchmarks/two_stage.py                       # 100K images / 500K captions
    python benchmarks/two_stage.py --images 5000 --t2i-queries 50 --i2t-queries 10 --k-candidates 10 25   # a quick look

Candidates: global kNN united with token-level kNN in both directions (caption words search the
region index, image regions search the word index, ColBERT-style), re-ranked by exact MrSw.

Embeddings: grounded synthetic token sets (``teran_core.index.synthetic``; no model: the
procedure is in that module's docstring, the spec is printed). Prints exhaustive R@1/5/10 on a
sample of queries against the whole collection, two-stage R@1/5/10 on the same queries, the R@10
ratio two-stage / exhaustive, the fraction of image-caption pairs scored exactly, and the index
build time for N and 4N region vectors (same index type and training sample).
Targets (issue 6): R@10 ratio >= 0.99 with <= 1% of pairs scored; 4N build <= 4.4x the N build.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np

from teran_core.embedding_set import EmbeddingSet
from teran_core.index.build import build_part, vectors_per_item
from teran_core.index.catalog import TeranIndex, write_index_manifest, write_side_ids
from teran_core.index.config import IndexSection
from teran_core.index.layout import PartSpec
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings
from teran_core.recall import CollectionEvaluator, EvalSection, GroundTruth, evaluate_collection, local_mapper
from teran_core.retrieval import TwoStageConfig
from teran_core.storage import resolve

# FAISS's 4*sqrt(N) would give 8192 lists for 3.6M region vectors; 2048 lists with an HNSW coarse
# quantizer keep k-means and adds within a few minutes on 2 cores. Training: 39 points per list.
REGIONS_FACTORY = "IVF2048_HNSW32,Flat"
TRAIN_POINTS = 39 * 2048


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])  # the FAST CHECK label comes first
    p.add_argument("--images", type=int, default=100_000, help="images in the collection (5 captions each)")
    p.add_argument("--dim", type=int, default=64, help="embedding size D")
    p.add_argument("--t2i-queries", type=int, default=200, help="caption queries (exhaustive: each scores every image)")
    p.add_argument("--i2t-queries", type=int, default=40, help="image queries (exhaustive: each scores every caption)")
    p.add_argument("--k-candidates", type=int, nargs="+", default=[50, 100, 250, 500],
                   help="text->image K' per candidate source (image->text: 5x); the last is the headline (<= 1%% of pairs at 500)")
    p.add_argument("--regions-factory", default=REGIONS_FACTORY, help="FAISS factory of the region index")
    p.add_argument("--nprobe", type=int, default=32, help="IVF lists probed per token query")
    p.add_argument("--hits", type=int, default=1024, help="token-index neighbours per query token")
    p.add_argument("--i2t-candidates", default="union", choices=["global", "tokens", "union"],  # centroids need a compressed set: benchmarks/stage_one.py
                   help="image->text candidate source (tokens/union build the captions-words index)")
    p.add_argument("--workdir", default=None, help="where embeddings and indexes go (default: a temporary folder)")
    return p.parse_args()


def subset(emb: EmbeddingSet, n_shards: int) -> EmbeddingSet:
    """The first ``n_shards`` shards of an embedding side, as an embedding side of their own."""
    return EmbeddingSet(emb.location, {**emb.manifest, "shards": emb.manifest["shards"][:n_shards]})


def build(emb, spec, section, root, train_points=None) -> tuple[dict, float, float]:
    """Builds one part; returns it with its wall and CPU seconds (CPU time is steadier on a shared machine)."""
    choice = section.choose(int(vectors_per_item(emb, spec).sum()), emb.dim)
    if train_points:
        choice = dataclasses.replace(choice, train_points=train_points)
    start, cpu = time.perf_counter(), time.process_time()
    part = build_part(emb, spec, choice, root.join(spec.name), use_gpu=False)
    return part, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    args = parse_args()
    root = resolve(args.workdir or tempfile.mkdtemp(prefix="teran-bench-"))
    spec = GroundedSpec(images=args.images, dim=args.dim, images_per_shard=max(1, args.images // 8))
    print("FAST CHECK on model-free synthetic token sets (not a headline; see benchmarks/stage_one.py)")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(f"embeddings: grounded synthetic, no model (teran_core.index.synthetic): {dataclasses.asdict(spec)}")
    start = time.perf_counter()
    owner = write_grounded_embeddings(root.join("emb"), spec)
    sides = {side: EmbeddingSet.open(root.join("emb", side)) for side in ("images", "captions")}
    print(f"collection: {len(sides['images'])} images, {len(sides['captions'])} captions, D={args.dim} "
          f"(written in {time.perf_counter() - start:.1f} s)")

    auto = IndexSection(hnsw_max=0)  # 500K captions: IVF, not HNSW (an HNSW graph build takes minutes on 2 cores)
    regions = IndexSection(factory=args.regions_factory, nprobe=args.nprobe)
    index_root = root.join("index")
    parts, seconds, cpu = {}, {}, {}
    plan = [(PartSpec("images", "global"), auto, None), (PartSpec("captions", "global"), auto, None),
            (PartSpec("images", "tokens"), regions, TRAIN_POINTS)]
    if args.i2t_candidates != "global":
        plan.append((PartSpec("captions", "tokens"), regions, TRAIN_POINTS))
    for part_spec, section, train in plan:
        parts[part_spec.name], seconds[part_spec.name], cpu[part_spec.name] = build(
            sides[part_spec.side], part_spec, section, index_root, train)
        print(f"index {part_spec.name}: {parts[part_spec.name]['factory']} ({parts[part_spec.name]['reason']}), "
              f"{parts[part_spec.name]['ntotal']} vectors, built in {seconds[part_spec.name]:.1f} s")
    quarter = subset(sides["images"], 2)
    small, small_seconds, small_cpu = build(quarter, PartSpec("images", "tokens"), regions, root.join("scaling"), TRAIN_POINTS)
    full, full_seconds, full_cpu = parts["images-regions"], seconds["images-regions"], cpu["images-regions"]
    adds = [sum(s["seconds"] for s in p["shards"]) for p in (small, full)]
    print(f"build time, {args.regions_factory}, {TRAIN_POINTS} training points: N={small['ntotal']} vectors {small_seconds:.1f} s wall "
          f"/ {small_cpu:.1f} s CPU (train {small['train']['seconds']:.1f} s, add {adds[0]:.1f} s); 4N={full['ntotal']} vectors "
          f"{full_seconds:.1f} s wall / {full_cpu:.1f} s CPU (train {full['train']['seconds']:.1f} s, add {adds[1]:.1f} s)")
    print(f"build ratio 4N/N: wall {full_seconds / small_seconds:.2f}, CPU {full_cpu / small_cpu:.2f} (target <= 4.4); "
          f"adds alone (wall) {adds[1] / adds[0]:.2f}")
    for emb in sides.values():
        for shard in emb.shards:
            write_side_ids(emb, shard, index_root)
    write_index_manifest(index_root, root.join("emb").uri, sides, parts)

    start = time.perf_counter()
    config = TwoStageConfig(k_candidates=args.k_candidates[-1], i2t_candidates=args.i2t_candidates, hits_per_token=args.hits)
    evaluator = CollectionEvaluator(TeranIndex.open(index_root), config, in_memory=True)
    print(f"token stores loaded into memory in {time.perf_counter() - start:.1f} s")
    gt = GroundTruth(np.arange(len(sides["images"])), np.arange(len(sides["captions"])), owner)
    section = EvalSection(queries=args.t2i_queries, image_queries=args.i2t_queries, k_sweep=args.k_candidates,
                          global_k=1000, latency_queries=20, chunk_queries=1000)
    results = evaluate_collection(section, config, gt, {s: len(e) for s, e in sides.items()}, local_mapper(evaluator))
    report(results)


def report(results: dict) -> None:
    ex = results["evaluators"]["exhaustive"]
    print(f"\nqueries: {results['queries']['captions']} captions (t2i), {results['queries']['images']} images (i2t), "
          f"against the whole collection; exhaustive scored {ex['pairs']} pairs in {ex['seconds']:.1f} s")
    rows = [("exhaustive", ex), ("global-only (k=1000)", results["evaluators"]["global"])]
    rows += [(f"two-stage K'={r['k_candidates']}", r) for r in results["sweep"]]
    print(f"{'evaluator':24s} {'t2i R@1/5/10':>20s} {'i2t R@1/5/10':>20s} {'R@10 ratio t2i/i2t/both':>26s} "
          f"{'pairs scored':>13s} {'qps':>8s}")
    for name, r in rows:
        m = r["metrics"]
        both = (m["t2i_r10"] + m["i2t_r10"]) / (ex["metrics"]["t2i_r10"] + ex["metrics"]["i2t_r10"])
        ratio = f"{r['r10_ratio']['t2i']:.3f}/{r['r10_ratio']['i2t']:.3f}/{both:.3f}"
        print(f"{name:24s} {m['t2i_r1']:6.1f}{m['t2i_r5']:7.1f}{m['t2i_r10']:7.1f} {m['i2t_r1']:6.1f}{m['i2t_r5']:7.1f}"
              f"{m['i2t_r10']:7.1f} {ratio:>26s} {r['pairs_fraction']:12.3%} {r['qps']:8.1f}")
    lat = results["latency_ms"]
    print(f"two-stage latency, t2i one query at a time, K'={lat['k_candidates']}: p50 {lat['p50']:.1f} ms, "
          f"p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms ({lat['queries']} queries)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
