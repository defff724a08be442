"""Reliability on real Ray and the S3 store: a worker node lost mid-job, and a driver killed mid-job.

Each job runs in its own process (one Ray per process); the data and the output are on the S3 store.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from encode_helpers import assert_exactly_once, assert_matches_model, direct_tokens, make_dataset
from process_helpers import fresh_machine, fresh_machine_env, kill_once_marked, shard_state

HERE = os.path.dirname(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))


def write_config(root, dataset, checkpoint, kinds):
    config = {
        "input": {"dataset": dataset.location.uri, "kinds": kinds},
        "model": {"checkpoint": checkpoint},
        "output": {"uri": root.join("emb").uri},
        "encode": {"batch_size": 4, "prepare_batch_size": 4, "actors": 1, "progress_interval_s": 2},
        "storage": {"endpoint_override": root.storage.endpoint_override},
        "ray": {"num_cpus": 2, "object_store_memory_mb": 512},
    }
    location = root.join("job.yaml")  # the job reads its config from the store too
    location.write_text(yaml.safe_dump(config))
    return location.uri


def run(endpoint, tmpdir, *args, **kwargs):
    """Starts a process in its own session, as on a machine that never ran Ray, with ``TMPDIR=tmpdir``; the
    standard AWS variable points it (and its config) at the store."""
    env, _ = fresh_machine_env({**os.environ, "PYTHONPATH": os.pathsep.join([REPO, HERE]), "AWS_ENDPOINT_URL_S3": endpoint},
                               tmpdir)
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.fixture
def fresh_tmpdir():
    """A ``TMPDIR`` for the test's processes; in the end it must hold nothing but their own Ray folders."""
    with fresh_machine() as (_, folder):
        yield folder


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_losing_a_worker_node_mid_job_loses_and_duplicates_nothing(s3_root, tiny_checkpoint, tiny_model, fresh_tmpdir):
    dataset = make_dataset(s3_root.join("data"), images=96, per_shard=4)  # 24 shards: the node goes after the first
    config = write_config(s3_root, dataset, tiny_checkpoint, "both")
    proc = run(s3_root.storage.endpoint_override, fresh_tmpdir, os.path.join(HERE, "cluster_encode.py"), config,
               s3_root.join("emb", "images").uri)
    out, _ = proc.communicate(timeout=840)
    lines = [line for line in out.splitlines() if line.startswith('{"')]  # Ray's shutdown may log after it
    assert lines, out[-5000:]
    result = json.loads(lines[-1])

    assert result["rc"] == 0, out[-3000:]
    assert result["job_alive"] and result["removed_encoder_node"], result
    assert result["markers_at_removal"] < len(dataset.shards["images"]), result
    summary = json.loads(s3_root.join("emb", "summary.json").read_text())
    assert summary["complete"] and summary["items"] == 96 + 480
    for kind in ("images", "captions"):
        embedded, _ = assert_exactly_once(dataset, s3_root.join("emb"), kind)
        assert_matches_model(embedded, direct_tokens(tiny_model, dataset, kind))


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_killed_driver_resumes_encoding_only_unfinished_shards(s3_root, tiny_checkpoint, tiny_model, fresh_tmpdir):
    dataset = make_dataset(s3_root.join("data"), images=64, per_shard=4)
    config = write_config(s3_root, dataset, tiny_checkpoint, "images")
    output = s3_root.join("emb")
    driver = run(s3_root.storage.endpoint_override, fresh_tmpdir, "-m", "jobs.encode", "--config", config)
    kill_once_marked(driver, output.join("images", "_done"))
    before = shard_state(output, "images")
    assert 3 <= len(before) < len(dataset.shards["images"]), "the job must be killed half-way"

    rerun = run(s3_root.storage.endpoint_override, fresh_tmpdir, "-m", "jobs.encode", "--config", config)
    log, _ = rerun.communicate(timeout=700)
    assert rerun.returncode == 0, log[-3000:]

    after = shard_state(output, "images")
    assert len(after) == len(dataset.shards["images"])
    assert {stem: after[stem] for stem in before} == before  # finished shards were neither rewritten nor re-marked
    summary = json.loads(output.join("summary.json").read_text())
    side = summary["sides"]["images"]
    assert (side["skipped"], side["finished"]) == (len(before), len(after) - len(before))
    assert summary["items"] == sum(dataset.shards["images"][i].rows for i, s in enumerate(dataset.shards["images"])
                                   if s.name[:-8] not in before)
    staging = output.join("images", "_staging")
    assert [p for p in staging.fs.find(staging.path) if p.endswith(".parquet")] == []  # the killed run's parts are gone
    embedded, _ = assert_exactly_once(dataset, output, "images")
    assert_matches_model(embedded, direct_tokens(tiny_model, dataset, "images"))
