"""Peak memory and time of ``teran synth`` at several sizes: memory must not grow with the dataset.

    python benchmarks/synth_memory.py --images 10000 100000 --out /tmp/synth-bench

Each size runs the real job (``python -m jobs.synth``, a local Ray instance) in a subprocess while
this script samples, every ``--interval`` seconds, every process of its tree from /proc: the driver,
the Ray workers (``ray::`` processes) and Ray's own daemons. It prints per size the peak RSS of the
driver, of the largest worker and of all workers together, the peak total PSS of the whole tree
(shared pages counted once), the wall time and time per 10K images, and the CPU seconds the workers
spent per 10K images (what the time per 10K would be on one idle core; it does not depend on how
busy the machine is). Datasets are deleted after each size unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

MIB = 2**20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree(root: int) -> list[int]:
    children, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _sample(pid: int) -> tuple[str, int, int, float] | None:
    """(role, RSS bytes, PSS bytes, CPU seconds so far) of one process; None when it has gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split(":")[0] in ("Rss", "Pss")}
        with open(f"/proc/{pid}/stat") as f:
            utime, stime = f.read().rsplit(")", 1)[1].split()[11:13]
    except (OSError, ValueError):
        return None
    role = "driver" if "jobs.synth" in cmdline else "worker" if cmdline.startswith("ray::") else "ray"
    return role, fields.get("Rss", 0), fields.get("Pss", 0), (int(utime) + int(stime)) / CLOCK_TICKS


def measure(images: int, out: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "jobs.synth", "--out", out, "--images", str(images), "--seed", "0",
               f"synth.feature_dim={args.feature_dim}", f"ray.num_cpus={args.num_cpus}", "output.overwrite=true"]
    peaks = {"driver": 0, "worker_max": 0, "workers": 0, "tree_pss": 0}
    worker_cpu: dict[int, float] = {}  # pid -> CPU seconds at its last sample (a process that ends loses < one interval)
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, f"synth-{images}.log"), "w+")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        samples = {pid: m for pid in _tree(proc.pid) if (m := _sample(pid)) is not None}
        workers = [rss for role, rss, _, _ in samples.values() if role == "worker"]
        peaks["driver"] = max(peaks["driver"], sum(rss for role, rss, _, _ in samples.values() if role == "driver"))
        peaks["worker_max"] = max(peaks["worker_max"], max(workers, default=0))
        peaks["workers"] = max(peaks["workers"], sum(workers))
        peaks["tree_pss"] = max(peaks["tree_pss"], sum(pss for _, _, pss, _ in samples.values()))
        worker_cpu.update({pid: cpu for pid, (role, _, _, cpu) in samples.items() if role == "worker"})
        time.sleep(args.interval)
    wall = time.time() - start
    if proc.returncode:
        log.seek(0)
        raise SystemExit(f"teran synth --images {images} failed with exit code {proc.returncode}:\n{log.read()[-3000:]}")
    log.close()
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    return {"images": images, "wall_s": wall, "per_10k_s": wall / images * 10000, "dataset_gib": size / 2**30,
            "cpu_per_10k_s": sum(worker_cpu.values()) / images * 10000, **peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10000, 100000], help="dataset sizes to run, in order")
    parser.add_argument("--out", default="/tmp/synth-bench", help="local folder for the datasets (each size in its own subfolder)")
    parser.add_argument("--feature-dim", type=int, default=2048, help="F; 2048 is the reference's bottom-up feature size")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance (= parallel shard tasks)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    parser.add_argument("--keep", action="store_true", help="keep the datasets")
    args = parser.parse_args()
    print(f"teran synth, F={args.feature_dim} float16, {args.num_cpus} Ray CPUs; memory in MiB (RSS; PSS for the whole tree)")
    print(f"{'images':>8} {'wall s':>8} {'s/10K':>7} {'CPU s/10K':>9} {'GiB':>6} {'driver':>7} {'worker':>7} {'workers':>8} {'tree PSS':>9}")
    for images in args.images:
        out = os.path.join(args.out, str(images))
        r = measure(images, out, args)
        print(f"{images:>8} {r['wall_s']:>8.1f} {r['per_10k_s']:>7.1f} {r['cpu_per_10k_s']:>9.1f} {r['dataset_gib']:>6.2f} {r['driver'] / MIB:>7.0f} "
              f"{r['worker_max'] / MIB:>7.0f} {r['workers'] / MIB:>8.0f} {r['tree_pss'] / MIB:>9.0f}", flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
