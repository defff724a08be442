"""The local rehearsal: synth -> encode -> build-index -> evaluate on a simulated GPU cluster.

The cluster (``rehearsal_cluster.py``, in its own process: one Ray per process) has the shape the
manifests give a real one: a head with ``CPU: 0`` and two workers with ``GPU: 1`` each, here Ray's
logical resource only. Every job is its own driver process with ``RAY_ADDRESS`` set to that cluster
and runs the very config the manifests run (``cluster/configs/*.yaml``) plus only the overrides this
machine needs, each saying why; build-index goes through the job server with ``ray job submit``, as
docs/cluster.md runs it. The data, the checkpoint and every output live on the S3 test store.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_helpers import fresh_machine

from jobs.config import BuildIndexJobConfig
from teran_core import TERAN, TeranConfig, save_checkpoint
from teran_core.config import load_config
from teran_core.data import DatasetManifest, read_shard
from teran_core.embedding_set import EmbeddingSet
from teran_core.index.catalog import TeranIndex
from teran_core.recall.config import EVALUATORS
from teran_core.recall.evaluation import METRIC_KEYS
from teran_core.storage import Location

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_BIN = os.path.dirname(sys.executable)
IMAGES, TEST_IMAGES, IMAGES_PER_SHARD, FEATURE_DIM = 64, 16, 32, 16
TINY = TeranConfig(feat_dim=FEATURE_DIM, embed_size=16, heads=2, feedforward=16, visual_layers=1, joint_layers=1, bert_layers=1)
ID_COLUMN = {"images": "image_id", "captions": "caption_id"}
SUBMISSION_ID = "teran-build-index-rehearsal"  # deterministic, as the manifests' teran-<job>-<run>
JOB_TIMEOUT_S = 600  # a hung job ends here with its log, unless the test's own timeout comes first


@dataclasses.dataclass
class SimulatedCluster:
    address: str  # the GCS address drivers connect to (RAY_ADDRESS)
    dashboard: str  # the dashboard / job server URL, on 127.0.0.1
    env: dict  # the environment every job process gets
    logs: Path  # one log file per job


def session_pids(session: int) -> list[int]:
    """Processes of ``session``: a job or the cluster started in its own session keeps every child in it."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(entry)) == session:
                pids.append(int(entry))
        except (ProcessLookupError, PermissionError):
            pass
    return pids


def end_session(session: int, grace_s: float = 30) -> None:
    """Gives the session's processes ``grace_s`` to exit on their own, then kills what is left."""
    deadline = time.time() + grace_s
    while (pids := session_pids(session)) and time.time() < deadline:
        time.sleep(0.5)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def gpu_cluster(tmp_path):
    """The simulated cluster, started as on a machine that never ran Ray (an empty TMPDIR of its own); shut
    down with every process it started when the test ends, leaving nothing outside its own Ray folder."""
    environ = {**os.environ,
               "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),  # `python` in a job entrypoint is this venv's
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # else a driver swaps 127.0.0.1 for the host's address
    environ.pop("RAY_ADDRESS", None)
    with fresh_machine(environ) as (env, _):
        with open(tmp_path / "cluster.log", "w") as log:
            helper = subprocess.Popen([sys.executable, str(HERE / "rehearsal_cluster.py")], cwd=REPO, env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        info = {}
        try:
            line = helper.stdout.readline()
            if not line:
                pytest.fail(f"the simulated cluster did not start:\n{(tmp_path / 'cluster.log').read_text()[-3000:]}")
            info = json.loads(line)
            yield SimulatedCluster(info["address"], info["dashboard"], {**env, "RAY_ADDRESS": info["address"]}, tmp_path)
        finally:
            helper.stdin.close()  # the helper shuts the cluster down
            try:
                helper.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pass
            end_session(helper.pid)
            helper.stdout.close()
            if info:  # Ray's last processes may still have written logs there after the helper removed it
                shutil.rmtree(info["temp_dir"], ignore_errors=True)


def run(cluster: SimulatedCluster, name: str, *args: str) -> tuple[int, str]:
    """Runs ``args`` in the repository, in its own session, against the cluster; (exit code, output)."""
    log_path = cluster.logs / f"{name}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=REPO, env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=JOB_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            end_session(proc.pid)
    return proc.returncode, log_path.read_text()


def job(cluster: SimulatedCluster, module: str, *args: str) -> str:
    """``python -m jobs.<module> args`` as a driver on the cluster; its output, or a failure showing the log."""
    rc, out = run(cluster, module, sys.executable, "-m", f"jobs.{module}", *args)
    assert rc == 0, f"jobs.{module} exited with {rc}; {cluster.logs / f'{module}.log'} ends:\n{out[-4000:]}"
    return out


def ids_in_dataset(dataset: DatasetManifest, kind: str) -> collections.Counter:
    return collections.Counter(item for k in range(len(dataset.shards[kind]))
                               for item in read_shard(dataset, kind, k, [ID_COLUMN[kind]]).column(0).to_pylist())


def assert_encoders_ran_on_gpu_nodes(dashboard: str, summary: dict) -> None:
    """Every encoder actor asked for the config's GPU and sat on a node owning one, the ones that wrote rows too.

    The state API keeps finished jobs' actors; an encoder's name in the summary is host:pid.
    """
    from ray.util.state import list_actors, list_nodes

    gpu_nodes = {n.node_id for n in list_nodes(address=dashboard, detail=True) if n.resources_total.get("GPU")}
    actors = [a for a in list_actors(address=dashboard, detail=True, limit=10_000) if "TeranEncoder" in a.class_name]
    assert len(gpu_nodes) == 2 and actors, (gpu_nodes, actors)
    assert all(a.required_resources.get("GPU") == 1 for a in actors), [a.required_resources for a in actors]
    placed = {a.node_id for a in actors if a.node_id}  # an actor still pending when the work ran out has no node
    assert placed and placed <= gpu_nodes, (placed, gpu_nodes)
    node_of_pid = {a.pid: a.node_id for a in actors}
    wrote = {name: node_of_pid.get(int(name.rsplit(":", 1)[1])) for side in summary["encoders"].values() for name in side}
    assert wrote and set(wrote.values()) <= gpu_nodes, (wrote, gpu_nodes)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_the_cluster_configs_run_the_whole_pipeline_on_a_simulated_gpu_cluster(s3_root: Location, gpu_cluster):
    data, checkpoint, emb, index, report = (s3_root.join(p) for p in ("data", "checkpoint", "emb", "index", "eval"))
    store = f"storage.endpoint_override={s3_root.storage.endpoint_override}"  # the S3 test store, not AWS

    with concurrent.futures.ThreadPoolExecutor(1) as background:  # the model loads its backbone while synth runs
        saved = background.submit(lambda: save_checkpoint(TERAN(TINY), checkpoint.uri, s3_root.storage))
        # synth: the cluster has no config of its own for it, so the shipped one, sized for 2 shared cores
        job(gpu_cluster, "synth", "--config", "configs/synth.yaml", "--out", data.uri, "--images", str(IMAGES), "--seed", "0",
            f"synth.feature_dim={FEATURE_DIM}",  # the tiny model's feat_dim
            f"synth.test_images={TEST_IMAGES}", "synth.dev_images=0",  # 1000-image splits do not fit 64 images
            f"synth.images_per_shard={IMAGES_PER_SHARD}",  # 2 a side (0: all in one), so shards merge as at scale
            store)
        saved.result()
    dataset = DatasetManifest.load(data)
    assert dataset.counts == {"images": IMAGES, "captions": 5 * IMAGES}

    job(gpu_cluster, "encode", "--config", "cluster/configs/encode.yaml",
        f"input.dataset={data.uri}", f"model.checkpoint={checkpoint.uri}", f"output.uri={emb.uri}",  # its "edit:" URIs
        store,
        "encode.actors=2",  # one per stand-in GPU; 16 one-GPU actors would wait for GPUs no autoscaler brings here
        "encode.batch_size=16",  # 1024 would bundle this whole 384-item dataset into one batch for one actor
        "encode.device=cpu")  # the stand-in GPUs are Ray resources only: no CUDA behind them
    summary = json.loads(emb.join("summary.json").read_text())
    assert summary["complete"], summary
    for kind in ("images", "captions"):
        side = EmbeddingSet.open(emb.join(kind), kind=kind)
        assert sorted(s["source"] for s in side.manifest["shards"]) == [s.name for s in dataset.shards[kind]]
        embedded, expected = collections.Counter(side.read_ids()), ids_in_dataset(dataset, kind)
        assert embedded == expected, f"{kind}: missing {sorted(expected - embedded)[:5]}, extra {sorted(embedded - expected)[:5]}"
        assert max(embedded.values()) == 1
    assert_encoders_ran_on_gpu_nodes(gpu_cluster.dashboard, summary)

    # build-index through the job server, exactly as docs/cluster.md submits it
    submit = [os.path.join(VENV_BIN, "ray"), "job", "submit", "--address", gpu_cluster.dashboard,
              "--submission-id", SUBMISSION_ID, "--working-dir", ".", "--",
              "python", "-m", "jobs.build_index", "--config", "cluster/configs/build_index.yaml",
              f"paths.embeddings={emb.uri}", f"paths.index={index.uri}", store]  # its "edit:" URIs
    rc, out = run(gpu_cluster, "build_index", *submit)
    assert rc == 0, f"ray job submit of build-index exited with {rc}:\n{out[-4000:]}"
    built = TeranIndex.open(index.uri, s3_root.storage).manifest  # index.json comes last, after every part
    parts = load_config(BuildIndexJobConfig, REPO / "cluster/configs/build_index.yaml").index.parts
    assert built["embeddings"] == emb.uri and sorted(built["parts"]) == sorted(parts), (built["parts"], parts)
    assert (built["parts"]["images-global"]["ntotal"], built["parts"]["captions-global"]["ntotal"]) == (IMAGES, 5 * IMAGES)
    rc, out = run(gpu_cluster, "build_index_again", *submit)
    assert rc != 0 and f"Job with submission_id {SUBMISSION_ID} already exists" in out, out[-3000:]

    job(gpu_cluster, "evaluate", "--config", "cluster/configs/evaluate.yaml",
        f"paths.dataset={data.uri}", f"paths.index={index.uri}", f"paths.output={report.uri}",  # its "edit:" URIs
        store,
        "eval.protocol=all",  # coco-1k needs the 5,000-image COCO test split; this one has 16 images
        "eval.actors=2")  # 28 one-CPU actors need the r6i.8xlarge; pending actors here would stall the pool
    results = json.loads(report.join("results.json").read_text())
    for name in EVALUATORS:
        metrics = results["evaluators"][name]["metrics"]
        assert set(METRIC_KEYS) <= set(metrics) and all(math.isfinite(metrics[k]) for k in METRIC_KEYS), (name, metrics)
    assert results["missing"] == {side: {"count": 0, "first": []} for side in ("images", "captions")}
