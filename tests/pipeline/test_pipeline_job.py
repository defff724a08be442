"""``teran pipeline`` on the S3 store: a driver killed between stages, and a rerun that skips what finished.

The job runs in its own process (one Ray per process); data, stage outputs and markers are on the store.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from process_helpers import kill_session

from teran_core.data.manifest import DatasetManifest
from teran_core.data.readers import read_shard
from teran_core.embedding_set import EmbeddingSet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = ["synth", "model", "encode", "build-index", "evaluate"]
TINY = [  # 64 images in 4 shards, 320 captions, a 16-wide model: the whole pipeline in about a minute
    "data.synth.images=64", "data.synth.test_images=32", "data.synth.images_per_shard=16", "data.synth.feature_dim=16",
    "model.untrained.feat_dim=16", "model.untrained.embed_size=16", "model.untrained.feedforward=32",
    "encode.batch_size=16", "encode.prepare_batch_size=16", "eval.k_sweep=[10]", "eval.latency_queries=5",
    "eval.in_memory=true", "two_stage.k_candidates=20", "ray.object_store_memory_mb=256",
]


def start(root, endpoint, *overrides: str) -> subprocess.Popen:
    """The job in a session of its own, so that killing it takes its local Ray along."""
    args = ["-m", "jobs.cli", "pipeline", "--config", "configs/pipeline.yaml", f"root={root.uri}",
            f"storage.endpoint_override={endpoint}", *TINY, *overrides]
    return subprocess.Popen([sys.executable, *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished_state(root) -> dict:
    """{file: (content, last modified)} of the finished stages' markers and of the files that mark their outputs done."""
    files = [root.join("pipeline", f"{s}.json") for s in ("synth", "model", "encode")]
    files += [root.join("dataset", "dataset.json"), root.join("model", "teran_config.json"), root.join("embeddings", "summary.json")]
    files += [root.join("embeddings", side, "_done", name) for side in ("images", "captions")
              for name in root.join("embeddings", side, "_done").list(".json")]
    return {f.uri: (f.read_text(), f.fs.info(f.path)["LastModified"]) for f in files}


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_killed_between_stages_the_rerun_skips_finished_stages(s3_server, s3_root):
    root = s3_root.join("run")
    driver = start(root, s3_server.endpoint)
    marker = root.join("pipeline", "encode.json")
    while driver.poll() is None and not marker.exists():
        time.sleep(0.2)
    kill_session(driver.pid)  # encode has its marker; build-index has at most started
    out, _ = driver.communicate()
    assert driver.returncode == -signal.SIGKILL, out[-3000:]
    assert not root.join("pipeline", "evaluate.json").exists()
    before = finished_state(root)

    rerun = start(root, s3_server.endpoint)
    log, _ = rerun.communicate(timeout=500)
    assert rerun.returncode == 0, log[-4000:]

    for number, name in enumerate(STAGES[:3], 1):
        assert f"[pipeline] stage {number}/5: {name} skipped, finished earlier" in log
    assert "stage 4/5: build-index\n" in log and "stage 5/5: evaluate\n" in log
    assert finished_state(root) == before  # finished stages were neither recomputed nor rewritten
    summary = json.loads(root.join("pipeline", "summary.json").read_text())
    assert list(summary["stages"]) == STAGES
    assert [s["skipped"] for s in summary["stages"].values()] == [True, True, True, False, False]
    for name, stage in summary["stages"].items():
        assert stage["wall_s"] > 0 and stage["driver_rss_peak"] > 0 and stage["tree_pss_peak"] > 0, name
        assert stage["spilled_bytes"] == 0, name  # measured (not None), and nothing spilled at this size
    assert summary["stages"]["encode"]["items"] == 64 + 320
    assert summary["stages"]["encode"]["bytes_read"] > 0 and summary["stages"]["build-index"]["bytes_written"] > 0
    assert {r["evaluator"] for r in summary["recall"]} == {"exhaustive", "global", "two-stage"}
    assert "two-stage" in log.split("[pipeline] summary:")[0].rsplit("evaluator", 1)[1]  # the printed table

    dataset = DatasetManifest.load(root.join("dataset"))
    for kind, column in (("images", "image_id"), ("captions", "caption_id")):
        inputs = [i for k in range(len(dataset.shards[kind])) for i in read_shard(dataset, kind, k, [column]).column(0).to_pylist()]
        embedded = collections.Counter(EmbeddingSet.open(root.join("embeddings", kind), kind=kind).read_ids())
        assert embedded == collections.Counter(inputs) and max(embedded.values()) == 1, kind  # every id exactly once


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_compressed_token_store_runs_end_to_end_and_keeps_every_item_once(s3_server, s3_root):
    root = s3_root.join("run")
    job = start(root, s3_server.endpoint, "token_store=compressed", "two_stage.union_with=centroids",
                "index.parts=[images-global,captions-global,images-centroids,captions-centroids]")
    log, _ = job.communicate(timeout=500)
    assert job.returncode == 0, log[-4000:]

    summary = json.loads(root.join("pipeline", "summary.json").read_text())
    assert list(summary["stages"]) == ["synth", "model", "encode", "compress", "build-index", "evaluate"]
    assert summary["stages"]["compress"]["items"] == 64 + 320
    assert summary["stages"]["compress"]["bytes_read"] == summary["stages"]["encode"]["bytes_written"]
    index = json.loads(root.join("index", "index.json").read_text())
    assert set(index["parts"]) == {"images-global", "captions-global", "images-centroids", "captions-centroids"}
    assert {r["evaluator"] for r in summary["recall"]} == {"exhaustive", "global", "two-stage"}
    for kind in ("images", "captions"):
        fp16 = EmbeddingSet.open(root.join("embeddings", kind), kind=kind)
        compressed = EmbeddingSet.open(root.join("embeddings-compressed", kind), kind=kind)
        assert compressed.manifest["codec"]["nbits"] == 2, kind
        ids = compressed.read_ids()
        assert sorted(ids) == sorted(fp16.read_ids()) and len(set(ids)) == len(ids), kind  # every item, once
