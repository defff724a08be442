"""Two-stage retrieval with a distilled head's global candidates alone, at scale, against exhaustive TERAN.

    python benchmarks/global_head.py --work /work/so100k/n100000 --checkpoint /work/ckpt-proto \\
        --t2i-queries 1000 --i2t-queries 200 --t2i-k-primes 100 200 --i2t-k-primes 200 1000

``--work`` is a workdir of ``benchmarks/stage_one.py``: its ``emb-fp16`` set was encoded by the TERAN
of ``--checkpoint``, and its ``exhaustive-fp16-<side>.npz`` hold exhaustive top-10s (reused when
they are for the same queries, else computed and saved). The checkpoint's distilled head (either
kind, docs/distill.md) reads TERAN's final tokens, which is what the set stores, so the benchmark
applies it to the stored tokens instead of encoding again. It writes the set with the head's
``global`` column to ``<work>/emb-head-<name>`` and builds Flat global parts there.

It prints, per direction and K′:
- R@10 of two-stage with ``global`` candidates only, re-ranked exactly on the fp16 tokens;
- the ratio to exhaustive R@10 on the same queries;
- the share of exhaustive's top 10 among the candidates;
- per-query latency, one query at a time, against exhaustive's on ``--latency-queries`` of the same
  queries, in the same process.

No Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from stage_one import exhaustive_ms, ground_truth, queries_of, recall_at, saved_exhaustive_top  # noqa: E402

from teran_core.alignment import TokenSet  # noqa: E402
from teran_core.checkpoint import load_checkpoint  # noqa: E402
from teran_core.data import DatasetManifest, collate_images, read_shard  # noqa: E402
from teran_core.embedding_set import EmbeddingSet, EmbeddingSideWriter, from_table  # noqa: E402
from teran_core.index.build import build_part  # noqa: E402
from teran_core.index.factory import choose_index  # noqa: E402
from teran_core.index.layout import PartSpec  # noqa: E402
from teran_core.index.search import ShardedIndex  # noqa: E402
from teran_core.retrieval import TwoStageConfig, TwoStageRetriever  # noqa: E402
from teran_core.storage import resolve  # noqa: E402

SIDES = ("images", "captions")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a benchmarks/stage_one.py workdir (emb-fp16, exhaustive-fp16-*.npz)")
    p.add_argument("--checkpoint", required=True, help="that TERAN with its distilled head (teran distill's export)")
    p.add_argument("--t2i-queries", type=int, default=1000)
    p.add_argument("--i2t-queries", type=int, default=200)
    p.add_argument("--t2i-k-primes", type=int, nargs="+", default=[100, 200])
    p.add_argument("--i2t-k-primes", type=int, nargs="+", default=[200, 1000])
    p.add_argument("--latency-queries", type=int, nargs=2, default=[100, 50], metavar=("T2I", "I2T"),
                   help="two-stage queries timed one at a time; exhaustive is timed on a tenth of them")
    p.add_argument("--batch-items", type=int, default=2048, help="items the head reads at once")
    return p.parse_args(argv)


def check_same_teran(model, work: Path, items: int = 8) -> None:
    """Exits unless ``model`` encodes the dataset's first images into the tokens the set stores (fp16 tolerance)."""
    dataset = DatasetManifest.load(resolve(str(work / "dataset")))
    table = read_shard(dataset, "images", 0).slice(0, items)
    batch = collate_images(table)
    with torch.no_grad():
        encoded = model.encode_images(batch["features"], batch["boxes"], batch["n_regions"])
    stored = EmbeddingSet.open(resolve(str(work / "emb-fp16" / "images")), kind="images").fetch(np.arange(items))
    worst = max(float(np.abs(stored.tokens[i, 1:n] - encoded.tokens[i, 1:n].numpy()).max()) for i, n in enumerate(stored.lengths))
    if worst > 2e-3:
        raise SystemExit(f"the checkpoint's TERAN did not encode {work / 'emb-fp16'}: its tokens differ by up to {worst:.3f}")


def write_headed_set(fp16: Path, out: Path, checkpoint: str, batch_items: int) -> None:
    """``fp16``'s tokens with the checkpoint head's vectors as ``global``, side by side; a finished side is kept."""
    model = load_checkpoint(checkpoint)
    head = model.global_head
    if head is None:
        raise SystemExit(f"{checkpoint} has no distilled head (teran distill exports one)")
    check_same_teran(model, fp16.parent)
    head.eval()
    for side in SIDES:
        if (out / side / "manifest.json").exists():
            continue
        emb = EmbeddingSet.open(resolve(str(fp16 / side)), kind=side)
        writer = EmbeddingSideWriter(resolve(str(out / side)), side, model={**emb.manifest.get("model", {}), "head": checkpoint})
        started = time.perf_counter()
        for _, table in emb.iter_shards():
            batch = from_table(table)
            with torch.no_grad():
                vectors = [head(TokenSet(torch.from_numpy(batch.tokens[s:s + batch_items]), torch.from_numpy(batch.lengths[s:s + batch_items])), side)
                           for s in range(0, len(batch), batch_items)]
            writer.add(batch.ids, batch.tokens, batch.lengths, torch.cat(vectors).numpy())
        writer.finish()
        print(f"{side}: {len(emb)} items, the head's vectors written in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    work = Path(args.work)
    out = work / f"emb-head-{Path(args.checkpoint).name}"
    write_headed_set(work / "emb-fp16", out, args.checkpoint, args.batch_items)
    sides = {side: EmbeddingSet.open(resolve(str(out / side)), kind=side) for side in SIDES}
    parts = {}
    for side, emb in sides.items():
        root = out / "index" / f"{side}-global"
        if not (root / "part.json").exists():  # Flat: exact kNN, so the head alone decides the candidates
            build_part(emb, PartSpec(side, "global"), choose_index(len(emb), emb.global_dim, 2**40), resolve(str(root)), use_gpu=False)
        parts[f"{side}-global"] = ShardedIndex.open(resolve(str(root)))
    stores = {side: emb.load() for side, emb in sides.items()}
    owner, captions_of = ground_truth(sides["images"], sides["captions"])
    print(f"{len(captions_of)} images, {len(owner)} captions; global vectors {sides['images'].global_dim} wide", flush=True)
    plan = (("captions", "t2i", args.t2i_queries, 0, args.t2i_k_primes, args.latency_queries[0]),
            ("images", "i2t", args.i2t_queries, 1, args.i2t_k_primes, args.latency_queries[1]))
    for side, name, n, seed, k_primes, timed in plan:
        queries = queries_of(sides[side], n, seed)  # stage_one.py's queries
        target = stores["images" if side == "captions" else "captions"]
        batch = stores[side].fetch(queries)
        top = saved_exhaustive_top(work / f"exhaustive-fp16-{side}.npz", side, queries, batch, target)
        truth = [{int(owner[q])} for q in queries] if side == "captions" else [captions_of[q] for q in queries]
        exhaustive = recall_at(top, truth)["R@10"]
        exhaustive_timed = queries[:max(1, timed // 10)]
        exhaustive_latency = exhaustive_ms(side, stores[side], exhaustive_timed, target)
        print(f"{name}: {len(queries)} queries, exhaustive R@10 {100 * exhaustive:.1f}, {exhaustive_latency:.0f} ms/query "
              f"({len(exhaustive_timed)} timed)", flush=True)
        for k_prime in k_primes:
            config = TwoStageConfig(k_candidates=k_prime, i2t_k_factor=1.0, t2i_candidates="global", i2t_candidates="global")
            retriever = TwoStageRetriever(config, images=stores["images"], captions=stores["captions"], parts=parts)
            ranked = retriever.search(side, batch, k=10)
            one = [slice(q, q + 1) for q in range(len(queries))]
            found = [retriever.candidates(side, batch.tokens[q], batch.lengths[q], batch.global_vectors[q])[0] for q in one]
            inside = np.mean([len(set(t.tolist()) & set(c.tolist())) / len(t) for t, c in zip(top, found)])
            one_at_a_time = TwoStageRetriever(dataclasses.replace(config, query_batch=1), images=stores["images"],
                                              captions=stores["captions"], parts=parts)
            two_stage_ms = 1000 * float(np.mean(one_at_a_time.search(side, stores[side].fetch(queries[:timed]), k=10).batch_seconds))
            r10 = recall_at(ranked.items, truth)["R@10"]
            print(f"{name} K'={k_prime}: R@10 {100 * r10:.1f} ({r10 / exhaustive:.3f} of exhaustive), exhaustive top 10 among "
                  f"the candidates {inside:.3f}, {two_stage_ms:.1f} ms/query ({exhaustive_latency / two_stage_ms:.0f}x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
