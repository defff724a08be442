"""``teran pipeline`` (synth -> encode -> build-index -> evaluate) with 5% of its S3 requests failing.

Every request of the job, from the driver, Ray Data's readers and the encoders alike, goes through
tests/fault_proxy.py, which answers one in twenty with 503 SlowDown, 500 InternalError or a reset
connection. The job runs with the test run's credentials in its environment: none may reach any
file it writes or any line it prints.
"""

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "encode"))
from encode_helpers import assert_exactly_once, assert_matches_model, direct_tokens
from fault_proxy import FaultProxy
from process_helpers import credential_leaks, kill_session
from test_pipeline_job import REPO, STAGES, TINY, finished_state

from teran_core import load_checkpoint
from teran_core.data.manifest import DatasetManifest

STAGE_LINE = re.compile(r"\[pipeline\] +\d+s stage \d+/\d+: (\S+)$")


def run_pipeline(root, proxy) -> tuple[int, str, dict]:
    """Runs the job to its end; returns (exit code, output, {stage: what the proxy saw during it})."""
    args = ["-m", "jobs.cli", "pipeline", "--config", "configs/pipeline.yaml", f"root={root.uri}",
            f"storage.endpoint_override={proxy.endpoint}", *TINY]
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, marks = [], [("start", proxy.report())]
    try:
        for line in proc.stdout:  # the test's timeout bounds this
            lines.append(line)
            if stage := STAGE_LINE.search(line):
                marks.append((stage.group(1), proxy.report()))
        proc.wait()
    finally:
        kill_session(proc.pid)
    marks.append(("end", proxy.report()))
    per_stage = {name: {key: after[key] - before[key] for key in ("requests", "faults", "retries", "recovered")}
                 for (name, before), (_, after) in zip(marks[1:], marks[2:])}
    return proc.returncode, "".join(lines), per_stage


@pytest.mark.integration
@pytest.mark.timeout(1100)
def test_pipeline_with_5_percent_failing_requests_loses_duplicates_and_leaks_nothing(s3_server, s3_root):

    root = s3_root.join("run")
    proxy = FaultProxy(s3_server.port, fail_rate=0.05, lifetime_s=1000)
    try:
        code, log, per_stage = run_pipeline(root, proxy)
        report = proxy.report()
        before = finished_state(root)
        rerun_code, rerun_log, _ = run_pipeline(root, proxy)
        rerun_report = proxy.report()
    finally:
        proxy.stop()
    print(f"\npipeline, 5% failing requests: {report}; the rerun added "
          f"{rerun_report['requests'] - report['requests']} requests")
    for name, seen in per_stage.items():
        print(f"  {name}: {seen}")
    assert code == 0, log[-4000:]
    assert report["faults"] >= 10 and report["unrecovered"] == 0, report  # every fault was met and retried
    assert list(per_stage) == STAGES

    # every id exactly once, every marker describes a complete shard, each embedding what the model computes
    dataset = DatasetManifest.load(root.join("dataset"))
    model = load_checkpoint(root.join("model").uri, storage=root.storage)
    for kind in ("images", "captions"):
        embedded, _ = assert_exactly_once(dataset, root.join("embeddings"), kind)
        assert_matches_model(embedded, direct_tokens(model, dataset, kind))
        side = root.join("embeddings", kind)
        manifest = json.loads(side.join("manifest.json").read_text())
        markers = {n[:-5]: json.loads(side.join("_done", n).read_text()) for n in side.join("_done").list(".json")}
        assert {s["name"][:-8]: (s["rows"], s["sha256"]) for s in manifest["shards"]} == \
            {stem: (m["rows"], m["sha256"]) for stem, m in markers.items()}, kind
    results = json.loads(root.join("eval", "results.json").read_text())
    assert sum(results["queries"].values()) > 0
    summary = json.loads(root.join("pipeline", "summary.json").read_text())
    assert {r["evaluator"] for r in summary["recall"]} == {"exhaustive", "global", "two-stage"}
    assert summary["stages"]["encode"]["items"] == 64 + 320

    # the rerun redoes nothing
    assert rerun_code == 0, rerun_log[-4000:]
    for number, name in enumerate(STAGES, 1):
        assert f"[pipeline] stage {number}/5: {name} skipped, finished earlier" in rerun_log
    assert finished_state(root) == before

    # no credential in any file the job wrote, nor in anything it printed
    files = s3_root.fs.find(root.path)
    assert len(files) > 20 and any(f.endswith("results.json") for f in files) and any("/_done/" in f for f in files)
    assert credential_leaks(root, {"log": log, "rerun log": rerun_log}) == []
