"""Ray Train's checkpoint upload to the S3 store, with its first requests failing.

Ray Train uploads a checkpoint with ``pyarrow.fs.copy_files`` and retries nothing itself; the
filesystem it is handed (``Location.pyarrow_filesystem``) is teran's retrying S3 client, so a
failed request of the upload is sent again and the checkpoint is registered as if nothing happened.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from fault_proxy import FaultProxy
from process_helpers import credential_leaks

from teran_core.checkpoint import load_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_failing_checkpoint_upload_is_retried(tiny_dataset, tiny_model_kwargs, tmp_path, s3_server, s3_root):
    runs = s3_root.join("runs")
    proxy = FaultProxy(s3_server.port, lifetime_s=850)
    proxy.fail_next(f"PUT /{runs.path}/faulty/checkpoint_".encode(), 503, "reset", 500)  # the first checkpoint's files
    config = {
        "model": tiny_model_kwargs,
        "data": {"dataset": os.path.abspath(tiny_dataset), "dev_images": 8, "shuffle_buffer": 64},
        "optim": {"lr": 1e-3, "epochs": 2, "batch_size": 16, "cache_backbone_mb": 16},
        "run": {"name": "faulty", "storage_path": runs.uri, "export": str(tmp_path / "export")},
        "storage": {"endpoint_override": proxy.endpoint},
        "ray": {"num_cpus": 2, "object_store_memory_mb": 256},
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    try:
        job = subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(tmp_path / "train.yaml")], cwd=REPO,
                             capture_output=True, text=True, timeout=800)
        report = proxy.report()
    finally:
        proxy.stop()
    print(f"\ntrain, first checkpoint upload failing 3 times: {report}")
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-3000:]
    assert report["faults"] == 3 and report["unrecovered"] == 0, report  # each failed request was sent again
    assert "resuming at epoch" not in output  # retried in place: no worker group restart
    snapshot = json.loads(runs.join("faulty", "checkpoint_manager_snapshot.json").read_text())
    registered = sorted(r["checkpoint_dir_name"] for r in snapshot["checkpoint_results"])
    assert len(registered) == 2
    for name in registered:
        assert runs.join("faulty", name).list(), name  # every registered checkpoint has its files
    history = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert load_checkpoint(str(tmp_path / "export")).encode_texts(["a dog"]).tokens.shape[-1] == tiny_model_kwargs["embed_size"]
    # the credentials were in the job's environment: none may reach its output, its checkpoints or its export
    exported = [p for p in (tmp_path / "export").rglob("*") if p.is_file()]
    assert credential_leaks(runs, {"output": output}, exported) == []
