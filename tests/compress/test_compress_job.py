"""``teran compress`` on real Ray and the S3 store: a driver killed mid-job, then the same command again."""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from process_helpers import credential_leaks, kill_once_marked, shard_state

from jobs.config import CompressJobConfig
from teran_core.compress.run import CompressPaths
from teran_core.embedding_set import EmbeddingSet
from teran_core.index.synthetic import GroundedSpec, write_grounded_embeddings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
SPEC = GroundedSpec(images=120, dim=16, regions=6, words=(3, 5), images_per_shard=4)  # 30 shards a side


def run(endpoint, config):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]), "AWS_ENDPOINT_URL_S3": endpoint}
    return subprocess.Popen([sys.executable, "-m", "jobs.compress", "--config", config], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_killed_driver_resumes_with_the_same_centroids_and_compresses_each_shard_once(s3_root, tmp_path):
    write_grounded_embeddings(s3_root.join("fp16"), SPEC)
    output = s3_root.join("res")
    config = tmp_path / "compress.yaml"
    config.write_text(yaml.safe_dump({
        "paths": {"embeddings": s3_root.join("fp16").uri, "output": output.uri},
        "compress": {"nbits": 2, "shard_task_cpus": 1},
        "storage": {"endpoint_override": s3_root.storage.endpoint_override},
        "ray": {"num_cpus": 1, "object_store_memory_mb": 256},  # one shard task at a time: the kill lands mid-job
    }))
    endpoint = s3_root.storage.endpoint_override
    driver = run(endpoint, str(config))
    kill_once_marked(driver, output.join("images", "_done"))
    before = {kind: shard_state(output, kind) for kind in ("images", "captions")}
    assert 3 <= len(before["images"]) < 30, "the job must be killed half-way"
    assert not output.join("images", "manifest.json").exists()
    codec = {name: output.join("codec", name).read_bytes() for name in ("centroids.npy", "product.npz", "codec.json")}  # product: the default

    rerun = run(endpoint, str(config))
    log, _ = rerun.communicate(timeout=500)
    assert rerun.returncode == 0, log[-3000:]
    summary = json.loads(log[log.index("{\n"):log.rindex("}") + 1])

    assert summary["codec_reused"] is True
    assert {name: output.join("codec", name).read_bytes() for name in codec} == codec  # centroids and codebooks identical after the kill
    for kind in ("images", "captions"):
        after = shard_state(output, kind)
        assert len(after) == 30
        assert {stem: after[stem] for stem in before[kind]} == before[kind]  # finished shards neither rewritten nor re-marked
        side = summary["sides"][kind]
        assert (side["skipped"], side["finished"]) == (len(before[kind]), 30 - len(before[kind]))
        source, compressed = EmbeddingSet.open(s3_root.join("fp16", kind)), EmbeddingSet.open(output.join(kind))
        assert compressed.compressed and compressed.manifest["codec"]["centroids_sha256"] == json.loads(codec["codec.json"])["centroids_sha256"]
        ids = compressed.read_ids()
        assert collections.Counter(ids) == collections.Counter(source.read_ids()) and max(collections.Counter(ids).values()) == 1
        assert ids == source.read_ids()  # same item numbering as the fp16 set
        batch, reference = compressed.fetch(np.arange(len(ids))), source.fetch(np.arange(len(ids)))
        np.testing.assert_array_equal(batch.lengths, reference.lengths)

    again = run(endpoint, str(config))  # a finished job: every shard skipped, nothing retrained
    last_log, _ = again.communicate(timeout=500)
    assert again.returncode == 0, last_log[-3000:]
    assert {name: output.join("codec", name).read_bytes() for name in codec} == codec
    assert credential_leaks(output, {"rerun": log, "last run": last_log}) == []  # the credentials were in its environment


def test_the_output_must_differ_from_the_input():
    problems = CompressJobConfig(paths=CompressPaths(embeddings="s3://b/emb", output="s3://b/emb/")).missing()
    assert problems and "must differ" in problems[0]
