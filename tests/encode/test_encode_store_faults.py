"""The encode job against a misbehaving object store: down for 20 s mid-job, and down past the deadline.

The job runs in its own process and reaches the SeaweedFS store through tests/fault_proxy.py, which
refuses connections while "down" as a stopped store does; the test itself talks to the store directly.
"""

import json
import subprocess
import sys
import time

import pytest
import yaml
from encode_helpers import assert_exactly_once, assert_matches_model, direct_tokens, make_dataset
from fault_proxy import FaultProxy, wait_for
from process_helpers import kill_session, shard_state
from test_encode_faults import REPO


def start_job(tmp_path, root, dataset, checkpoint, endpoint, **storage):
    config = {
        "input": {"dataset": dataset.location.uri, "kinds": "images"},
        "model": {"checkpoint": checkpoint},
        "output": {"uri": root.join("emb").uri},
        "encode": {"batch_size": 8, "prepare_batch_size": 8, "actors": 1, "progress_interval_s": 2},
        "storage": {"endpoint_override": endpoint, **storage},
        "ray": {"num_cpus": 2, "object_store_memory_mb": 256},
    }
    path = tmp_path / "encode.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", "encode", "--config", str(path)], cwd=REPO,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc.pid)  # the job's local Ray, had it outlived its driver
    return out


def writes_to(root):
    """A proxy stall/down trigger: the first PUT of the job's output (a staged part)."""
    return ("PUT /" + root.path + "/emb/").encode()


@pytest.mark.integration
@pytest.mark.timeout(480)
def test_encode_survives_the_store_down_for_20_s(tmp_path, s3_server, s3_root, tiny_checkpoint, tiny_model):
    dataset = make_dataset(s3_root.join("data"), images=24, per_shard=8)
    proxy = FaultProxy(s3_server.port)
    try:
        job = start_job(tmp_path, s3_root, dataset, tiny_checkpoint, proxy.endpoint)
        proxy.stall_pattern = writes_to(s3_root)
        wait_for(lambda: proxy.counts["stalled"] > 0 or job.poll() is not None, 200, "the job's first write")
        proxy.down()  # mid-job: the first part is on its way
        down_at = time.monotonic()
        time.sleep(20)
        proxy.up()
        out = finish(job, 240)
        report = proxy.report()
    finally:
        proxy.stop()
    print(f"\nencode, store down 20 s: {report}; the job finished {time.monotonic() - down_at:.0f} s after the store went down")
    assert job.returncode == 0, out[-3000:]
    assert report["stalled"] > 0
    embedded, _ = assert_exactly_once(dataset, s3_root.join("emb"), "images")
    assert_matches_model(embedded, direct_tokens(tiny_model, dataset, "images"))
    assert len(shard_state(s3_root.join("emb"), "images")) == len(dataset.shards["images"])


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_store_down_past_the_deadline_stops_with_one_line_and_the_rerun_redoes_only_unfinished(
        tmp_path, s3_server, s3_root, tiny_checkpoint, tiny_model):
    dataset = make_dataset(s3_root.join("data"), images=32, per_shard=8)  # 4 shards
    output = s3_root.join("emb")
    proxy = FaultProxy(s3_server.port)
    try:
        proxy.down_after(("PUT /" + output.join("images", "_done").path + "/").encode())  # and it stays down
        job = start_job(tmp_path, s3_root, dataset, tiny_checkpoint, proxy.endpoint, deadline_s=6, max_attempts=100)
        wait_for(lambda: proxy.is_down or job.poll() is not None, 200, "the first finished shard")
        out = finish(job, 120)
        failed_report = proxy.report()
        before = shard_state(output, "images")
        proxy.up()
        rerun = start_job(tmp_path, s3_root, dataset, tiny_checkpoint, proxy.endpoint, deadline_s=6, max_attempts=100)
        log = finish(rerun, 240)
        report = proxy.report()
    finally:
        proxy.stop()
    print(f"\nencode, store down past the deadline: {failed_report}; after the rerun: {report}")
    assert job.returncode == 3, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("teran encode: error:")]
    assert len(errors) == 1, out[-3000:]
    assert proxy.endpoint in errors[0] and "storage.deadline_s=6" in errors[0] and "rerun the same command" in errors[0]
    assert 1 <= len(before) < len(dataset.shards["images"]), "the store must go down half-way"
    assert rerun.returncode == 0, log[-3000:]
    after = shard_state(output, "images")
    assert len(after) == len(dataset.shards["images"])
    assert {stem: after[stem] for stem in before} == before  # finished shards were neither rewritten nor re-marked
    side = json.loads(output.join("summary.json").read_text())["sides"]["images"]
    assert (side["skipped"], side["finished"]) == (len(before), len(after) - len(before))
    embedded, _ = assert_exactly_once(dataset, output, "images")
    assert_matches_model(embedded, direct_tokens(tiny_model, dataset, "images"))
