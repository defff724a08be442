"""Scale study: the whole pipeline (``teran pipeline``) at growing N on this machine, stage by stage.

    python benchmarks/scale.py                                  # 10K and 100K images (5 captions each)
    python benchmarks/scale.py --sizes 10000 100000 1000000     # 1M runs only if its estimate fits
    python benchmarks/scale.py --token-store compressed --checkpoint demo_output/models/distilled

Each size is one pipeline job in a fresh process (a fresh local Ray with a fixed 1 GiB object store):
synth -> untrained model (or --checkpoint) -> encode both sides [-> compress, with ``--token-store
compressed``: centroid ids + residual bits, centroid lists in place of the IVF-Flat token parts,
candidates from global + centroid interaction] -> build-index -> evaluate, on a local folder. Before each size after the first, its wall time and disk are estimated from the size before
(seconds and bytes per image x N) and the size is not started when they exceed --time-budget-s or the
free disk: the reason is printed instead. At the end: one table (N, stage, wall, time per item, peak
RSS of the driver and of the largest Ray process, PSS of the whole tree, spill, the MiB each stage
wrote, the disk of the whole run), the recall rows
(exhaustive on a query sample, global-only, two-stage), and the ratios against the targets: time per
item at the largest N within 1.3x of the smallest for every stage, also as CPU seconds of every process
per item, which other load on the machine does not inflate (evaluate's items: the collection its fixed
query sample is scored against; each evaluator's time per query is printed after the ratios); peak memory at the largest N within 1.5x
of the size before, for the driver and the largest Ray process (the PSS of all processes together is
printed beside them: it includes the index pages the searchers map, which grow with the collection on
one machine); no spilling. ``--report scale.json`` prints them again from a finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jobs.pipeline_plan import recall_row  # noqa: E402
from teran_core.index.config import COMPRESSED_SET_PARTS  # noqa: E402
from teran_core.model.config import TeranConfig  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="N images per run, ascending")
    p.add_argument("--root", help="folder for every run's output (default: a fresh temporary folder)")
    p.add_argument("--feature-dim", type=int, default=256, help="F of the synthetic region features (float16)")
    p.add_argument("--embed-size", type=int, default=128, help="D of every output token")
    p.add_argument("--checkpoint", default="", help="a trained teran checkpoint (its F and D replace --feature-dim and --embed-size); default: an untrained model")
    p.add_argument("--images-per-shard", type=int, default=2000)
    p.add_argument("--token-store", choices=["fp16", "compressed"], default="fp16",
                   help="compressed: the pipeline's compress stage (2 bits), centroid lists and centroid candidates")
    p.add_argument("--queries", type=int, default=50, help="sampled test-split captions that query the whole collection")
    p.add_argument("--image-queries", type=int, default=10, help="sampled test-split images that query it (an exhaustive image "
                   "query scores 5N captions, a caption query N images)")
    p.add_argument("--k-primes", type=int, nargs=2, default=[100, 200], metavar=("K1", "K2"),
                   help="two-stage K' (text->image candidates; image->text takes 5x as many): both are evaluated, "
                   "the larger is the headline whose single-query latency is timed")
    p.add_argument("--index-choice", choices=["auto", "ivf"], default="auto",
                   help="the global parts' FAISS index: auto, what teran build-index chooses by default (Flat up to 1M "
                   "vectors, then IVF); ivf forces IVF at every N")
    p.add_argument("--searcher-max-mb", type=int, default=512, help="index MiB per searcher actor (eval.searcher_max_bytes): "
                   "the index is spread over more searchers as it grows, so no process holds more than this of it")
    p.add_argument("--time-budget-s", type=float, default=3600, help="do not start a size whose estimated wall time exceeds this")
    p.add_argument("--keep", action="store_true", help="keep each size's output (default: removed after its summary is read)")
    p.add_argument("--report", help="print the tables and ratios of an earlier run's scale.json, run nothing")
    return p.parse_args(argv)


def benchmark_model(args):
    """The checkpoint's model, or the reduced one: reference structure, small widths, one layer each,
    the first MiniLM layer frozen."""
    if args.checkpoint:
        from teran_core.checkpoint import load_checkpoint

        return load_checkpoint(args.checkpoint)
    from teran_core.model.teran import TERAN

    return TERAN(TeranConfig(feat_dim=args.feature_dim, embed_size=args.embed_size, visual_layers=1, joint_layers=1, heads=4,
                             feedforward=2 * args.embed_size, bert_layers=1, fine_tune=False))


def pipeline_config(args, cfg: TeranConfig, n: int, root: str) -> dict:
    config = {
        "root": root,
        "data": {"synth": {"images": n, "seed": 0, "feature_dim": cfg.feat_dim, "test_images": 1000, "dev_images": 0,
                           "images_per_shard": args.images_per_shard}},
        "model": {"checkpoint": args.checkpoint, "untrained": dataclasses.asdict(cfg)},
        "encode": {"batch_size": 256, "actors": 1, "num_gpus": 0, "cpus_per_actor": 0.5, "torch_threads": 2,
                   "precision": "float32", "prepare_batch_size": 256, "progress_interval_s": 60},
        # auto: a user's defaults. ivf: IVF for every part at every N (nlist ~ 4 sqrt(vectors), shards share the
        # quantizer); it costs the distilled head about half its candidate recall at 100K (docs/distill.md).
        "index": {"use_gpu": False} if args.index_choice == "auto" else {"use_gpu": False, "flat_max": 0, "hnsw_max": 0},
        # a query sample against the whole collection; the store is held in RAM as eval.in_memory's auto decides
        "eval": {"protocol": "all", "queries": args.queries, "image_queries": args.image_queries, "actors": 1,
                 "k_sweep": sorted(args.k_primes), "latency_queries": 20, "max_exhaustive_pairs": 10**10,
                 "searcher_max_bytes": args.searcher_max_mb * 2**20},
        "two_stage": {"k_candidates": max(args.k_primes), "padding": "masked"},
        "ray": {"num_cpus": os.cpu_count(), "object_store_memory_mb": 1024},
        "token_store": args.token_store,
    }
    if args.token_store == "compressed":  # centroid lists replace the token parts; candidates: global + centroid interaction
        config["index"]["parts"] = list(COMPRESSED_SET_PARTS)
        config["two_stage"]["union_with"] = "centroids"
        config["compress"] = {"train_task_cpus": os.cpu_count()}  # k-means runs alone: every core
    return config


def run_size(args, cfg: TeranConfig, n: int, root: Path) -> dict:
    """One pipeline job in a child process; its summary.json, with the disk it used."""
    out = root / f"n{n}"
    path = root / f"n{n}.yaml"
    path.write_text("# teran pipeline --config " + str(path) + "\n" + yaml.safe_dump(pipeline_config(args, cfg, n, str(out)), sort_keys=False))
    log = root / f"n{n}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with open(log, "w") as f:
        code = subprocess.run([sys.executable, "-m", "jobs.pipeline", "--config", str(path)], cwd=REPO, env=env,
                              stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if code:
        raise RuntimeError(f"pipeline at N={n} failed with exit code {code}; see {log}")
    summary = json.loads((out / "pipeline" / "summary.json").read_text())
    summary["disk_bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    results = json.loads((out / "eval" / "results.json").read_text())
    summary["queries"] = results["queries"]
    summary["evaluator_s"] = {name: r["seconds"] for name, r in results["evaluators"].items()}
    summary["sweep"] = [recall_row(f"K'={r['k_candidates']}", r) for r in results["sweep"]]
    summary["latency_ms"] = results.get("latency_ms")
    if not args.keep:
        shutil.rmtree(out)
    return summary


def too_big(previous: tuple[int, dict], n: int, args, root: Path) -> str | None:
    """Why size ``n`` is not started (its estimate from the size before exceeds the time or the disk), or None."""
    m, summary = previous
    wall = stages_wall(summary) * n / m
    disk = summary["disk_bytes"] * n / m
    free = shutil.disk_usage(root).free
    reasons = []
    if wall > args.time_budget_s:
        reasons.append(f"time: {stages_wall(summary):.0f} s at N={m:,} x {n // m} = {wall / 3600:.1f} h estimated "
                       f"> the budget {args.time_budget_s / 3600:.1f} h")
    if disk > free:
        reasons.append(f"disk: {summary['disk_bytes'] / m / 1e3:.1f} kB per image x {n:,} = {disk / 1e9:.0f} GB estimated "
                       f"> {free / 1e9:.0f} GB free")
    return "; ".join(reasons) or None


def stages_wall(summary: dict) -> float:
    """Seconds of every stage, as measured when it ran (a rerun that skips finished stages reports theirs)."""
    return sum(s["wall_s"] for s in summary["stages"].values())


def per_item_basis(summary: dict, stage: str) -> dict:
    """A stage's measurements with the items its cost is proportional to: evaluate scores a fixed query
    sample against the whole collection, so its items are the collection's (encode's images + captions)."""
    row = summary["stages"][stage]
    return {**row, "items": summary["stages"]["encode"]["items"]} if stage == "evaluate" else row


def mib(n) -> str:
    return "?" if n is None else f"{n / 2**20:.0f}"


def print_table(runs: dict[int, dict]) -> None:
    print(f"\n{'N':>9} {'stage':<12} {'wall s':>8} {'items':>10} {'us/item':>9} {'driver MiB':>10} "
          f"{'largest Ray process MiB':>32} {'tree PSS MiB':>12} {'spill MiB':>9} {'CPU s':>8} {'wrote MiB':>9}")
    for n, summary in runs.items():
        for name, s in summary["stages"].items():
            process, rss = s["largest_process"]
            per_item = f"{1e6 * s['wall_s'] / s['items']:.1f}" if s["items"] else "-"
            print(f"{n:>9,} {name:<12} {s['wall_s']:>8.1f} {s['items']:>10,} {per_item:>9} {mib(s['driver_rss_peak']):>10} "
                  f"{mib(rss):>6} {process[:25]:<25} {mib(s['tree_pss_peak']):>12} {mib(s['spilled_bytes']):>9} {s['cpu_s']:>8.0f} {mib(s['bytes_written']):>9}")
        print(f"{n:>9,} {'total':<12} {stages_wall(summary):>8.1f}   disk {summary['disk_bytes'] / 2**30:.2f} GiB")
    print(f"\n{'N':>9} {'queries':>16} {'evaluator':<11} {'t2i R@1':>8} {'t2i R@10':>8} {'i2t R@1':>8} {'i2t R@10':>8} "
          f"{'rsum':>7} {'pairs scored %':>14}")
    for n, summary in runs.items():
        queries = f"{summary['queries']['captions']} c + {summary['queries']['images']} i"
        sweep = summary.get("sweep", [])
        seconds_of = dict(summary["evaluator_s"])
        if sweep:  # the two-stage evaluator ran at the largest K' (pipeline_config): its row is that sweep row
            seconds_of[sweep[-1]["evaluator"]] = seconds_of.pop("two-stage", None)
        for r in [*(r for r in summary["recall"] if not (sweep and r["evaluator"] == "two-stage")), *sweep]:
            seconds = seconds_of.get(r["evaluator"])
            print(f"{n:>9,} {queries:>16} {r['evaluator']:<11} {r['t2i_r1']:>8.1f} {r['t2i_r10']:>8.1f} {r['i2t_r1']:>8.1f} "
                  f"{r['i2t_r10']:>8.1f} {r['rsum']:>7.1f} {100 * r['pairs_fraction']:>14.4f}"
                  + ("" if seconds is None else f"   {1000 * seconds / sum(summary['queries'].values()):.0f} ms/query (batched)"))


def print_ratios(runs: dict[int, dict]) -> None:
    sizes = sorted(runs)
    if len(sizes) < 2:
        return
    small, before, large = sizes[0], sizes[-2], sizes[-1]
    print(f"\nratios (targets: time per item at N={large:,} <= 1.3 x N={small:,}; peak memory at N={large:,} <= 1.5 x N={before:,}; no spill)")
    for name in runs[large]["stages"]:
        a, b = (per_item_basis(runs[n], name) for n in (small, large))
        if a["items"] and b["items"]:
            ratio = (b["wall_s"] / b["items"]) / (a["wall_s"] / a["items"])
            cpu = (b["cpu_s"] / b["items"]) / (a["cpu_s"] / a["items"]) if a["cpu_s"] else float("nan")
            print(f"  {name:<12} time per item {ratio:5.2f} {'ok' if ratio <= 1.3 else 'MISSED':<6} (CPU s per item {cpu:5.2f})", end="")
        else:
            print(f"  {name:<12} time per item     -                            ", end="")
        p, q = runs[before]["stages"][name], runs[large]["stages"][name]
        memory = {"driver": (p["driver_rss_peak"], q["driver_rss_peak"]), "largest Ray process": (p["largest_process"][1], q["largest_process"][1])}
        tree = q["tree_pss_peak"] / p["tree_pss_peak"] if p["tree_pss_peak"] else float("nan")
        print("   memory " + ", ".join(f"{what} {y / x:4.2f}{' ok' if y <= 1.5 * x else ' MISSED'}" for what, (x, y) in memory.items() if x)
              + f" (all processes' PSS {tree:4.2f})")
    print(f"  query latency at N={large:,} / N={small:,} (collection x{large / small:g}; exhaustive grows with it, an index should not):")
    for name in runs[large]["evaluator_s"]:
        a, b = (runs[n]["evaluator_s"][name] / sum(runs[n]["queries"].values()) for n in (small, large))
        print(f"    {name:<12} {1000 * a:8.1f} -> {1000 * b:8.1f} ms/query  x{b / a:.2f}")
    latency = {n: runs[n].get("latency_ms") for n in (small, large)}
    if all(latency.values()):
        a, b = (latency[n]["p50"] for n in (small, large))
        print(f"  two-stage t2i latency, one query at a time, K'={latency[large]['k_candidates']}, median of {latency[large]['queries']}: "
              f"{a:.1f} -> {b:.1f} ms  x{b / a:.2f} {'ok' if b <= 3 * a else 'MISSED'} (target <= 3x)")
    exhaustive = next((r for r in runs[large]["recall"] if r["evaluator"] == "exhaustive"), None)
    for r in runs[large].get("sweep", []) if exhaustive else []:
        ratios = [r[m] / exhaustive[m] if exhaustive[m] else float("nan") for m in ("t2i_r10", "i2t_r10")]
        print(f"  two-stage {r['evaluator']:<8} R@10 / exhaustive at N={large:,}: t2i {ratios[0]:.2f}, i2t {ratios[1]:.2f} "
              f"{'ok' if min(ratios) >= 0.97 else 'MISSED'} (target >= 0.97 both directions)")
    spill = {n: sum(s["spilled_bytes"] or 0 for s in r["stages"].values()) for n, r in runs.items()}
    unknown = [n for n, r in runs.items() if any(s["spilled_bytes"] is None for s in r["stages"].values())]
    print(f"  spilled bytes per N: {spill}" + (f" (not measured for N in {unknown})" if unknown else "") +
          f"  {'ok' if not any(spill.values()) else 'MISSED'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        runs = {int(n): r for n, r in json.loads(Path(args.report).read_text()).items()}
        print_table(runs)
        print_ratios(runs)
        return 0
    root = Path(args.root or tempfile.mkdtemp(prefix="teran-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    model = benchmark_model(args)
    cfg, params = model.config, sum(p.numel() for p in model.parameters())
    del model  # only its config and size are needed here: each size's pipeline loads it again
    print(f"sizes: N images x 5 captions, F = {cfg.feat_dim} float16 region features (<= 36 regions), images per shard "
          f"{args.images_per_shard}; model {'from ' + args.checkpoint if args.checkpoint else 'untrained'}: D = {cfg.embed_size}, "
          f"{cfg.visual_layers} region layer + {cfg.joint_layers} joint layer(s), feed-forward {cfg.feedforward}, text backbone "
          f"the first {cfg.bert_layers} layer(s) of all-MiniLM-L6-v2 ({'fine-tuned' if cfg.fine_tune else 'frozen'}), {params / 1e6:.1f} M parameters; "
          f"{args.queries} caption + {args.image_queries} image queries from the 1K test split; {os.cpu_count()} cores, "
          f"Ray object store 1 GiB; output under {root}; load average {os.getloadavg()[0]:.1f}", flush=True)
    runs: dict[int, dict] = {}
    for n in sorted(args.sizes):
        if runs:
            reason = too_big(max(runs.items()), n, args, root)
            if reason:
                print(f"N={n:,} not started: {reason}", flush=True)
                break
        started = time.time()
        runs[n] = run_size(args, cfg, n, root)
        print(f"N={n:,}: {stages_wall(runs[n]):.0f} s, {runs[n]['disk_bytes'] / 2**30:.2f} GiB on disk, "
              f"load average {os.getloadavg()[0]:.1f} at the end (started {time.strftime('%H:%M', time.gmtime(started))} UTC)", flush=True)
    print_table(runs)
    print_ratios(runs)
    (root / "scale.json").write_text(json.dumps({str(n): r for n, r in runs.items()}, indent=1))
    print(f"\nper-size summaries: {root / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
