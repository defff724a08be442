"""The encode pipeline against the same model in a plain loop, and its peak memory at N and 4N images.

    python benchmarks/encode_throughput.py                  # defaults: a few minutes on 2 cores
    python benchmarks/encode_throughput.py --images 500     # a quick look

One run prints: the sizes; images/s of the plain loop (the model over batches already in memory,
one process, every core), measured before and after the pipeline runs (the machine is shared, the
better of the two is used); images/s of the whole pipeline (S3 store -> read + validate -> encode
actor -> write parts -> finalise -> S3 store, each run in a fresh Ray) for N and 4N images; their
ratio, also per CPU second (CPU time of every process involved: a figure that other load on the
machine does not distort); and the pipeline's peak memory (PSS of the driver and every Ray process,
sampled) for N and 4N.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pyarrow.compute as pc  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from teran_core import TERAN, TeranConfig, save_checkpoint  # noqa: E402
from teran_core.data import collate_images, read_shard  # noqa: E402
from teran_core.data.schema import shard_name  # noqa: E402
from teran_core.data.synth import SynthConfig, generate_dataset  # noqa: E402
from teran_core.data.writer import write_parquet  # noqa: E402
from teran_core.procmon import TreeSampler  # noqa: E402
from teran_core.storage import resolve  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="N; the memory check also runs 4N (N copied 4 times under new ids)")
    p.add_argument("--feature-dim", type=int, default=256, help="F of the synthetic region features (float16)")
    p.add_argument("--embed-size", type=int, default=256, help="D, and the width of the joint transformers")
    p.add_argument("--visual-layers", type=int, default=4, help="layers of the region transformer (at width F)")
    p.add_argument("--batch-size", type=int, default=64, help="images per encoder call, in both measurements")
    p.add_argument("--actors", type=int, default=1, help="encoder actors")
    p.add_argument("--threads", type=int, default=2, help="torch threads per actor (the plain loop uses every core)")
    p.add_argument("--images-per-shard", type=int, default=250)
    p.add_argument("--pipeline", help=argparse.SUPPRESS)  # internal: run one pipeline job from this config and report
    return p.parse_args(argv)


# --- the two measurements ------------------------------------------------------------------------
def plain_loop(model: TERAN, dataset, batch_size: int) -> tuple[float, float]:
    """Images per second and per CPU second of encode_images over padded batches already in memory."""
    tables = [read_shard(dataset, "images", k) for k in range(len(dataset.shards["images"]))]
    batches = [collate_images(t.slice(s, batch_size)) for t in tables for s in range(0, t.num_rows, batch_size)]
    torch.set_num_threads(os.cpu_count())
    with torch.inference_mode():
        model.encode_images(batches[0]["features"], batches[0]["boxes"], batches[0]["n_regions"])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            tokens = model.encode_images(b["features"], b["boxes"], b["n_regions"]).tokens.to(torch.float16).numpy()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert tokens.shape[-1] == model.config.embed_size
    images = sum(len(b["n_regions"]) for b in batches)
    return images / elapsed, images / cpu


def run_pipeline(config: str) -> dict:
    """Runs in a child process: a fresh local Ray, one encode job; its summary, peak memory and CPU seconds."""
    from jobs.config import EncodeJobConfig
    from jobs.encode import RayRunner
    from jobs.ray_runtime import init_ray
    from teran_core.config import load_config
    from teran_core.encode import run_encode

    cfg = load_config(EncodeJobConfig, config)
    sampler = TreeSampler()
    sampler.start()
    started = time.perf_counter()
    init_ray(cfg.ray)
    ray_init_s = time.perf_counter() - started
    sampler.sample()
    cpu_before = dict(sampler.cpu)  # the job's CPU is counted from here, as its wall time
    runner = RayRunner(cfg)
    summary = run_encode(cfg, runner.pipeline, runner.submit)
    sampler.stop()
    by_process: dict[str, float] = {}
    for pid, seconds in sampler.cpu.items():
        name = sampler.names.get(pid, "?")
        by_process[name] = by_process.get(name, 0.0) + seconds - cpu_before.get(pid, 0.0)
    cpu_s = sum(by_process.values())
    return {"items": summary["items"], "wall_s": summary["wall_s"], "first_items_s": summary["first_items_s"],
            "ray_init_s": ray_init_s, "encoders": summary["encoders"]["images"], "peak_pss_bytes": sampler.peak,
            "cpu_s": cpu_s, "cpu_by_process": by_process, "complete": summary["complete"]}


def pipeline_in_child(root, dataset, checkpoint: str, args, name: str, env: dict) -> dict:
    config = {
        "input": {"dataset": dataset.location.uri, "kinds": "images"},
        "model": {"checkpoint": checkpoint},
        "output": {"uri": root.join(name).uri},
        "encode": {"batch_size": args.batch_size, "actors": args.actors, "torch_threads": args.threads,
                   "cpus_per_actor": 0.5, "prepare_batch_size": args.batch_size, "finalizers": 1, "progress_interval_s": 30},
        "storage": {"endpoint_override": root.storage.endpoint_override},
        "ray": {"num_cpus": os.cpu_count(), "object_store_memory_mb": 1024},
    }
    path = os.path.join(tempfile.mkdtemp(), f"{name}.yaml")
    Path(path).write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, __file__, "--pipeline", path], env=env, cwd=REPO,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pipeline run {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def replicate(dataset, root, copies: int):
    """``copies`` x the dataset under new ids (copy k prefixes every id with "k-"): distinct items, no generation cost."""
    shards = {kind: [] for kind in ("images", "captions")}
    for k in range(copies):
        for kind, id_columns in (("images", ["image_id"]), ("captions", ["caption_id", "image_id"])):
            for i in range(len(dataset.shards[kind])):
                table = read_shard(dataset, kind, i)
                for column in id_columns:
                    renamed = pc.binary_join_element_wise(f"{k}-", table.column(column), "")
                    table = table.set_column(table.schema.get_field_index(column), column, renamed)
                name = shard_name(kind, k * len(dataset.shards[kind]) + i)
                shards[kind].append(write_parquet(root.join(kind, name), table, table.schema))
    copy = dataclasses.replace(dataset, shards=shards, splits={}, rejects={}, location=None)
    copy.save(root)
    return copy


def start_store():
    """The test suite's SeaweedFS S3 store on loopback, with throwaway credentials."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "teran-bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", os.urandom(16).hex())
    os.environ.setdefault("AWS_REGION", "us-east-1")
    spec = importlib.util.spec_from_file_location("teran_test_store", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SeaweedS3(tempfile.mkdtemp(prefix="weed-bench-"))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.pipeline:
        print(json.dumps(run_pipeline(args.pipeline)))
        return 0
    store = start_store()
    try:
        root = resolve("s3://bench", store.storage())
        root.fs.mkdir(root.path)
        model_cfg = TeranConfig(feat_dim=args.feature_dim, embed_size=args.embed_size, visual_layers=args.visual_layers,
                                joint_layers=2, heads=4, feedforward=4 * args.embed_size, bert_layers=1)
        model = TERAN(model_cfg).eval()
        save_checkpoint(model, root.join("checkpoint").uri, store.storage())
        synth = SynthConfig(images=args.images, feature_dim=args.feature_dim, test_images=0, dev_images=0,
                            images_per_shard=args.images_per_shard)
        start = time.perf_counter()
        small = generate_dataset(synth, root.join("data-n"))
        large = replicate(small, root.join("data-4n"), copies=4)
        print(f"sizes: N = {args.images} images ({len(small.shards['images'])} shards), 4N = {4 * args.images}; "
              f"regions <= 36 x F = {args.feature_dim} float16; model D = {args.embed_size}, {args.visual_layers} region "
              f"layers, 2 joint layers, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters; "
              f"batch {args.batch_size}; {args.actors} actor(s) x {args.threads} thread(s); {os.cpu_count()} cores "
              f"(data written in {time.perf_counter() - start:.0f} s)", flush=True)
        plain_before, plain_cpu = plain_loop(model, small, args.batch_size)
        print(f"plain loop, data in memory:              {plain_before:8.1f} images/s, {plain_cpu:.1f} images per CPU second",
              flush=True)
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": store.endpoint, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        runs = {}
        for name, dataset in (("N", small), ("4N", large)):
            runs[name] = run = pipeline_in_child(root, dataset, root.join("checkpoint").uri, args, f"emb-{name}", env)
            assert run["complete"], run
            rate = run["items"] / run["wall_s"]
            steady = run["items"] / (run["wall_s"] - run["first_items_s"])
            busy = sum(e["items"] for e in run["encoders"].values()) / sum(e["busy_s"] for e in run["encoders"].values())
            print(f"pipeline {name:>2} ({run['items']} images): {rate:8.1f} images/s over the whole job, {run['wall_s']:.1f} s "
                  f"(+{run['ray_init_s']:.1f} s ray.init); start-up {run['first_items_s']:.1f} s, then {steady:.1f} images/s; "
                  f"encoder {busy:.1f} images/s while busy; {run['items'] / run['cpu_s']:.1f} images per CPU second "
                  f"(every Ray process); peak memory {run['peak_pss_bytes'] / 2**20:.0f} MiB", flush=True)
            top = sorted(run["cpu_by_process"].items(), key=lambda kv: -kv[1])[:6]
            print("    CPU seconds by process: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in top), flush=True)
        plain_after, plain_cpu_after = plain_loop(model, small, args.batch_size)
        plain = max(plain_before, plain_after)  # the machine is shared: compare with the better of the two
        plain_cpu = max(plain_cpu, plain_cpu_after)
        print(f"plain loop again, after the pipeline:    {plain_after:8.1f} images/s, {plain_cpu_after:.1f} images per CPU second")
        four = runs["4N"]
        print(f"ratio pipeline 4N / plain loop, images/s, whole job:       {four['items'] / four['wall_s'] / plain:.2f}   (target >= 0.9)")
        print(f"ratio pipeline 4N / plain loop, images/s, after start-up:  {four['items'] / (four['wall_s'] - four['first_items_s']) / plain:.2f}")
        print(f"ratio pipeline 4N / plain loop, images per CPU second:     {four['items'] / four['cpu_s'] / plain_cpu:.2f}   "
              "(insensitive to other load on the machine)")
        print(f"peak memory 4N / N:                                        {four['peak_pss_bytes'] / runs['N']['peak_pss_bytes']:.2f}   (target <= 1.2)")
    finally:
        store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
