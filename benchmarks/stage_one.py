"""Stage-one sources on encoded embeddings: token kNN, centroid interaction (PLAID), global, union; one run.

    python benchmarks/stage_one.py --sizes 2000 --checkpoint demo_output/models/teran   # a trained checkpoint
    python benchmarks/stage_one.py --embeddings /data/emb/coco                            # reuse an fp16 embedding set

Per size: a grounded synthetic dataset (``teran synth``) encoded by ``teran encode`` with the given
checkpoint (default: an untrained reduced model, which measures cost and stage-one agreement with
exhaustive scoring, not retrieval quality), or a given fp16 embedding set. Ground truth comes from
the synthetic ids (caption ``<image_id>-<k>``). Then, in this process: ``compress`` (shared
centroids + residual bits, docs/engine.md), an index over the fp16 set (global + token
parts, today's) and one over the compressed set (global + centroid lists).

Printed, on the same sampled queries, one query at a time:
- exhaustive R@1/5/10 on the fp16 and on the compressed store: every query scored against blocks of
  the collection (one pass over it; the rankings are kept in the workdir for a rerun), and its latency:
  the same blocked scoring run on the first ``--exhaustive-latency-queries`` of each direction, one
  query at a time, over the same store the two-stage rows fetch from (``--tokens-in``: held in RAM as
  stored, the default, or read from the shards on every fetch);
- per stage-one source and K' (both directions): candidate recall@K' (share of the exhaustive
  top-10 inside the candidates), two-stage R@1/5/10, pairs scored per query, latency per query
  (both stages) and the speed-up over exhaustive;
- bytes per token of each store, the disk use of each whole setup and, in RAM, the bytes each store holds.
Sources: ``tokens`` (fp16 store, today's), ``centroids`` (compressed store), ``centroids-fp16``
(the same candidates scored on the fp16 store: what compression costs stage two), ``global`` and
``union`` (global + centroids), both on the compressed store. The distilled global head, where it
has landed, is what the ``global`` column holds.

``benchmarks/two_stage.py`` keeps model-free synthetic token sets as a fast check; this is the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teran_core.alignment import TokenSet, alignment_scores  # noqa: E402
from teran_core.compress.run import CompressSection, compress  # noqa: E402
from teran_core.embedding_set import EmbeddingSet, InMemoryTokens, from_table  # noqa: E402
from teran_core.index.catalog import TeranIndex  # noqa: E402
from teran_core.index.config import COMPRESSED_SET_PARTS, IndexSection  # noqa: E402
from teran_core.index.run import build_index  # noqa: E402
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever, torch_threads  # noqa: E402
from teran_core.storage import resolve  # noqa: E402

K_PRIMES = (50, 100, 200, 500, 1000)
SOURCES = ("tokens", "centroids", "centroids-fp16", "global", "union")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="images per synthetic collection (5 captions each)")
    p.add_argument("--embeddings", help="an fp16 embedding set to reuse (synthetic ids) instead of synth + encode")
    p.add_argument("--checkpoint", default="", help="a trained teran checkpoint (default: an untrained reduced model)")
    p.add_argument("--feature-dim", type=int, default=64, help="F of the synthetic features (untrained model only)")
    p.add_argument("--embed-size", type=int, default=128, help="D (untrained model only)")
    p.add_argument("--t2i-queries", type=int, default=200)
    p.add_argument("--i2t-queries", type=int, default=50)
    p.add_argument("--k-primes", type=int, nargs="+", default=list(K_PRIMES), help="K' per direction")
    p.add_argument("--nbits", type=int, default=2, choices=[1, 2])
    p.add_argument("--residual", default="product", choices=["buckets", "product"],
                   help="the compressed store's residual codec (compress.residual): product sets live in emb-res-product and index-res-product, buckets sets in emb-res and index-res")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES,
                   help="without tokens, the fp16 index has no IVF-Flat token parts (their build is the long one at 100K)")
    p.add_argument("--exhaustive-latency-queries", type=int, default=10,
                   help="queries per direction timed one at a time for exhaustive latency (the rankings score all queries per block)")
    p.add_argument("--exhaustive-stores", nargs="+", default=["fp16", "res"], choices=["fp16", "res"],
                   help="stores scored exhaustively; fp16 is the reference every ratio uses, so it is always scored")
    p.add_argument("--index-choice", choices=["auto", "ivf"], default="auto",
                   help="auto: each FAISS part as teran build-index chooses by default (Flat to 1M vectors, then IVF); "
                        "ivf: IVF for every part (its default nprobe costs global recall)")
    p.add_argument("--tokens-in", choices=["memory", "storage"], default="memory",
                   help="memory: each store's shards held in RAM as stored (compressed stays compressed; PLAID keeps its index "
                        "resident) and decoded per fetch; storage: every fetch reads the shards")
    p.add_argument("--workdir", help="where everything goes (default: a temporary folder)")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def run_job(module: str, config: dict, path: Path) -> None:
    path.write_text(f"# python -m jobs.{module} --config {path}\n" + yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(path.with_suffix(".log"), "w") as log:
        code = subprocess.run([sys.executable, "-m", f"jobs.{module}", "--config", str(path)], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code:
        raise RuntimeError(f"jobs.{module} failed ({code}); see {path.with_suffix('.log')}")


@contextmanager
def timed(seconds: dict, phase: str):
    """Adds the wall time of the block to ``seconds[phase]`` and prints it."""
    start = time.perf_counter()
    yield
    seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
    print(f"[{phase}] {seconds[phase]:.0f} s", flush=True)


def encode_collection(args, n: int, work: Path) -> Path:
    """synth + encode (a fresh local Ray each); returns the fp16 embedding set folder."""
    checkpoint = args.checkpoint
    if not checkpoint:
        from teran_core.checkpoint import save_checkpoint
        from teran_core.model.config import TeranConfig
        from teran_core.model.teran import TERAN

        checkpoint = str(work / "untrained")
        cfg = TeranConfig(feat_dim=args.feature_dim, embed_size=args.embed_size, visual_layers=1, joint_layers=1, heads=4,
                          feedforward=2 * args.embed_size, bert_layers=1, fine_tune=False)
        save_checkpoint(TERAN(cfg), checkpoint)
    from teran_core.checkpoint import load_checkpoint

    feature_dim = load_checkpoint(checkpoint).config.feat_dim
    ray = {"num_cpus": os.cpu_count(), "object_store_memory_mb": 1024}
    if not (work / "dataset" / "dataset.json").exists():  # a finished dataset is kept, so a rerun resumes encode
        run_job("synth", {"synth": {"images": n, "seed": 0, "feature_dim": feature_dim, "test_images": min(1000, n), "dev_images": 0},
                          "output": {"uri": str(work / "dataset"), "overwrite": True}, "ray": ray}, work / "synth.yaml")
    run_job("encode", {"input": {"dataset": str(work / "dataset")}, "model": {"checkpoint": checkpoint},
                       "output": {"uri": str(work / "emb-fp16")},
                       "encode": {"batch_size": 256, "cpus_per_actor": 0.5, "torch_threads": os.cpu_count(),
                                  "precision": "float32", "progress_interval_s": 60},
                       "ray": ray}, work / "encode.yaml")
    return work / "emb-fp16"


def blocks(target, block_items: int):
    """(first item, table) of consecutive blocks of a store: from RAM by fetch, from storage one shard read at a time."""
    if isinstance(target, InMemoryTokens):
        for start in range(0, len(target), block_items):
            yield start, target.fetch_table(np.arange(start, min(start + block_items, len(target))))
        return
    first = 0
    for _, table in target.iter_shards():
        for start in range(0, table.num_rows, block_items):
            yield first + start, table.slice(start, block_items)
        first += table.num_rows


def exhaustive_top(side: str, queries, target, k: int, config: TwoStageConfig, block_items: int = 1024) -> np.ndarray:
    """(Q, k) best items of the other side for every query, scoring all queries against blocks of the collection.

    The same ranking as stage two over every item, reading the collection once for all queries.
    """
    query = TokenSet(queries.tokens, queries.lengths)
    best_items = np.full((len(queries.lengths), 0), -1, np.int64)
    best_scores = np.full((len(queries.lengths), 0), -np.inf)
    with torch_threads(os.cpu_count()):
        for first, table in blocks(target, block_items):
            fetched = from_table(table)
            block = np.arange(first, first + len(fetched.lengths))
            others = TokenSet(fetched.tokens, fetched.lengths)
            pair = (query, others) if side == "images" else (others, query)
            scores = alignment_scores(*pair, mode=config.mode, padding=config.padding).numpy().astype(np.float64)
            scores = scores if side == "images" else scores.T  # (Q, B)
            items = np.concatenate([best_items, np.broadcast_to(block, scores.shape)], 1)
            scores = np.concatenate([best_scores, scores], 1)
            order = np.lexsort((items, -scores))[:, :k]  # score descending, then item ascending, as stage two ranks
            best_items, best_scores = np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)
    return best_items


def saved_exhaustive_top(saved: Path, side: str, queries: np.ndarray, batch, target) -> np.ndarray:
    """Exhaustive top 10 of ``queries`` (fetched as ``batch``) from ``saved``, when it holds the same queries; else
    computed with stage two's mode and padding and saved there, so a rerun reuses the rankings."""
    earlier = np.load(saved) if saved.exists() else None
    if earlier is not None and np.array_equal(earlier["queries"], queries):
        return earlier["top"]
    top = exhaustive_top(side, batch, target, 10, TwoStageConfig())
    np.savez(saved, queries=queries, top=top)
    return top


def exhaustive_ms(side: str, store, queries: np.ndarray, target) -> float:
    """Mean ms of the same exhaustive scoring, one query of ``store`` at a time."""
    latency = []
    for query in queries:
        began = time.perf_counter()
        exhaustive_top(side, store.fetch([query]), target, 10, TwoStageConfig())
        latency.append(time.perf_counter() - began)
    return 1000 * float(np.mean(latency))


def ground_truth(images: EmbeddingSet, captions: EmbeddingSet) -> tuple[np.ndarray, list[set]]:
    """(each caption's image (M,), each image's captions) of a synthetic set, whose caption ids are ``<image_id>-<k>``."""
    position = {image_id: i for i, image_id in enumerate(images.read_ids())}
    owner = np.array([position[c.rsplit("-", 1)[0]] for c in captions.read_ids()])
    captions_of = [set() for _ in position]
    for c, i in enumerate(owner):
        captions_of[i].add(c)
    return owner, captions_of


def store_folder(store: str, args) -> str:
    """``fp16``, ``res`` or ``res-product``: the name a store's folders carry in the workdir."""
    return f"{store}-product" if store == "res" and args.residual == "product" else store


def index_folder(work: Path, store: str, args) -> Path:
    """``index-fp16`` / ``index-res`` / ``index-res-product``, with ``-ivf`` for indexes whose every FAISS part is IVF."""
    return work / (f"index-{store_folder(store, args)}" + ("-ivf" if args.index_choice == "ivf" else ""))


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_bytes(emb: EmbeddingSet) -> tuple[int, int]:
    """(shard bytes, token slots) of one side."""
    size = sum(emb.location.join(s.name).size() for s in emb.shards)
    tokens = sum(int(t.column("length").to_numpy().sum()) for _, t in emb.iter_shards(["length"]))
    return size, tokens


def recall_at(ranked_items: np.ndarray, truth: list[set]) -> dict:
    hits = [next((r for r, item in enumerate(row) if item in t), None) for row, t in zip(ranked_items, truth)]
    return {f"R@{k}": float(np.mean([h is not None and h < k for h in hits])) for k in (1, 5, 10)}


def queries_of(side: EmbeddingSet, n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(len(side), size=min(n, len(side)), replace=False))


def run_size(args, emb_root: Path, work: Path, seconds: dict) -> dict:
    res_root = work / f"emb-{store_folder('res', args)}"
    if not (res_root / "captions" / "manifest.json").exists():
        with timed(seconds, "compress"):
            compress(resolve(str(emb_root)), resolve(str(res_root)),
                     CompressSection(nbits=args.nbits, residual=args.residual, train_task_cpus=os.cpu_count()))
    section = dict(use_gpu=False) if args.index_choice == "auto" else dict(flat_max=0, hnsw_max=0, use_gpu=False)
    token_parts = ["images-regions", "captions-words"] if "tokens" in args.sources else []
    for name, root, parts in (("fp16", emb_root, ["images-global", "captions-global", *token_parts]),
                              ("res", res_root, list(COMPRESSED_SET_PARTS))):
        index_root = index_folder(work, name, args)
        if (index_root / "index.json").exists() and not set(parts) <= set(TeranIndex.open(str(index_root)).part_names):
            raise SystemExit(f"{index_root} lacks some of {parts}: remove it to rebuild")
        if not (index_root / "index.json").exists():
            with timed(seconds, f"build-index {name}"):
                build_index(resolve(str(root)), resolve(str(index_root)), IndexSection(parts=parts, **section))
    indexes = {name: TeranIndex.open(str(index_folder(work, name, args))) for name in ("fp16", "res")}
    sets = {name: {side: idx.embeddings(side) for side in ("images", "captions")} for name, idx in indexes.items()}
    stores = sets
    if args.tokens_in == "memory":
        with timed(seconds, "load into RAM"):
            stores = {name: {side: emb.load() for side, emb in pair.items()} for name, pair in sets.items()}
    parts = {name: idx.parts() for name, idx in indexes.items()}
    images, captions = sets["fp16"]["images"], sets["fp16"]["captions"]
    owner, captions_of = ground_truth(images, captions)
    directions = {"captions": queries_of(captions, args.t2i_queries, 0), "images": queries_of(images, args.i2t_queries, 1)}
    truth = {"captions": [{int(owner[q])} for q in directions["captions"]], "images": [captions_of[q] for q in directions["images"]]}
    out = {"images": len(images), "captions": len(captions), "tokens_in": args.tokens_in, "exhaustive": {}, "sources": {},
           "store": {}, "seconds": seconds}

    query_batches = {side: stores["fp16"][side].fetch(directions[side]) for side in directions}  # as the encoder gave them (fp16)

    def search(config, store, part_set, side):
        retriever = TwoStageRetriever(config, images=store["images"], captions=store["captions"], parts=part_set)
        batch = query_batches[side]
        ranked = retriever.search(side, batch, k=10)
        one = [slice(start, start + 1) for start in range(len(batch))]
        cands = [c for q in one for c in retriever.candidates(
            side, batch.tokens[q], batch.lengths[q], batch.global_vectors[q])]
        return ranked, cands

    top_of_exhaustive = {}
    with timed(seconds, "exhaustive"):
        for store_name in sorted({"fp16", *args.exhaustive_stores}):
            for side in ("captions", "images"):
                target = stores[store_name]["images" if side == "captions" else "captions"]
                saved = work / f"exhaustive-{store_folder(store_name, args)}-{side}.npz"
                top = saved_exhaustive_top(saved, side, directions[side], query_batches[side], target)
                latency_queries = directions[side][: args.exhaustive_latency_queries]  # the same scoring, one query at a time
                out["exhaustive"][f"{store_name}/{side}"] = {
                    **recall_at(top, truth[side]), "pairs": len(target),
                    "latency_ms": exhaustive_ms(side, stores["fp16"][side], latency_queries, target), "latency_queries": len(latency_queries)}
                if store_name == "fp16":
                    top_of_exhaustive[side] = top
                print(f"exhaustive {store_name:5s} {side:8s} {out['exhaustive'][f'{store_name}/{side}']}", flush=True)
    with timed(seconds, "stage-one sources"):
        for source in args.sources:
            for k_prime in args.k_primes:
                store_name = "fp16" if source in ("tokens", "centroids-fp16") else "res"
                part_set = parts["fp16"] if source == "tokens" else parts["res"]
                name = {"centroids-fp16": "centroids", "union": "union"}.get(source, source)
                config = TwoStageConfig(k_candidates=k_prime, i2t_k_factor=1.0, t2i_candidates=name, i2t_candidates=name,
                                        union_with="centroids", query_batch=1, ndocs=max(k_prime, 256))
                for side in ("captions", "images"):
                    ranked, cands = search(config, stores[store_name], part_set, side)
                    inside = np.mean([len(set(top[top >= 0]) & set(c)) / max(1, (top >= 0).sum()) for top, c in zip(top_of_exhaustive[side], cands)])
                    row = {**recall_at(ranked.items, truth[side]), "candidate_recall": float(inside),
                           "pairs": float(np.mean(ranked.n_scored)), "latency_ms": 1000 * float(np.mean(ranked.batch_seconds))}
                    row["speedup"] = out["exhaustive"][f"fp16/{side}"]["latency_ms"] / row["latency_ms"]
                    out["sources"][f"{source}/{side}/{k_prime}"] = row
                    print(f"{source:15s} {side:8s} K'={k_prime:5d} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    for name in ("fp16", "res"):
        sizes = [store_bytes(sets[name][side]) for side in ("images", "captions")]
        out["store"][name] = {"bytes_per_token": sum(s for s, _ in sizes) / sum(t for _, t in sizes),
                              "embeddings_bytes": disk(emb_root if name == "fp16" else res_root), "index_bytes": disk(index_folder(work, name, args))}
        out["store"][name]["total_bytes"] = out["store"][name]["embeddings_bytes"] + out["store"][name]["index_bytes"]
        if args.tokens_in == "memory":
            out["store"][name]["resident_bytes"] = sum(stores[name][side].nbytes for side in ("images", "captions"))
    out["store"]["fp16"]["token_parts"] = bool(token_parts)
    out["store"]["codec"] = {k: v for k, v in sets["res"]["images"].manifest["codec"].items() if k in ("residual", "nbits", "n_centroids", "dim")}
    return out


def print_tables(n: int, result: dict) -> None:
    print(f"\n== N = {result['images']} images, {result['captions']} captions ==")
    for key, row in result["exhaustive"].items():
        print(f"exhaustive {key:18s} R@1 {row['R@1']:.3f} R@5 {row['R@5']:.3f} R@10 {row['R@10']:.3f}  "
              f"{row['latency_ms']:8.1f} ms/query (mean of {row['latency_queries']}, one at a time)")
    print(f"{'source/direction/K':34s} {'cand@K':>7s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'R@10/exh':>8s} {'pairs':>8s} {'ms/q':>8s} {'speedup':>8s}")
    for key, row in result["sources"].items():
        side = key.split("/")[1]
        exhaustive = result["exhaustive"][f"fp16/{side}"]["R@10"]
        ratio = f"{row['R@10'] / exhaustive:8.3f}" if exhaustive else f"{'n/a':>8s}"  # an untrained model can score 0
        print(f"{key:34s} {row['candidate_recall']:7.3f} {row['R@1']:6.3f} {row['R@5']:6.3f} {row['R@10']:6.3f} {ratio} "
              f"{row['pairs']:8.0f} {row['latency_ms']:8.1f} {row['speedup']:8.1f}")
    s = result["store"]
    print(f"bytes/token: fp16 {s['fp16']['bytes_per_token']:.1f}, compressed {s['res']['bytes_per_token']:.1f} "
          f"({s['fp16']['bytes_per_token'] / s['res']['bytes_per_token']:.2f}x smaller; codec {s['codec']})")
    fp16_index = "global and token parts" if s["fp16"]["token_parts"] else "global parts only"
    print(f"disk: fp16 set + {fp16_index} {s['fp16']['total_bytes'] / 2**20:.1f} MiB, compressed set + global and centroid parts "
          f"{s['res']['total_bytes'] / 2**20:.1f} MiB ({s['fp16']['total_bytes'] / s['res']['total_bytes']:.2f}x smaller)")
    if "resident_bytes" in s["res"]:
        print(f"in RAM (both sides, as stored): fp16 {s['fp16']['resident_bytes'] / 2**20:.1f} MiB, "
              f"compressed {s['res']['resident_bytes'] / 2**20:.1f} MiB")
    print("wall s: " + ", ".join(f"{phase} {sec:.0f}" for phase, sec in result["seconds"].items()))


def main(argv=None) -> int:
    args = parse_args(argv)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="stage-one-"))
    base.mkdir(parents=True, exist_ok=True)
    results = {}
    runs = [("given", Path(args.embeddings))] if args.embeddings else [(str(n), None) for n in args.sizes]
    for label, given in runs:
        work = base / f"n{label}"
        work.mkdir(exist_ok=True)
        seconds: dict = {}
        emb = given or work / "emb-fp16"
        if not (emb / "captions" / "manifest.json").exists():
            with timed(seconds, "synth + encode"):
                emb = encode_collection(args, int(label), work)
        results[label] = run_size(args, emb, work, seconds)
        print_tables(label, results[label])
    print(f"\nmodel: {args.checkpoint or 'untrained reduced model (cost and agreement with exhaustive only, not retrieval quality)'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
