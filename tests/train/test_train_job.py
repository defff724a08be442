"""The training job on real Ray Train: it exports a loadable checkpoint, and a killed run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from job_output import own_output
from process_helpers import fresh_machine, registered_checkpoints

from teran_core.checkpoint import load_checkpoint


def _config(tmp_path, dataset: str, model: dict, epochs: int) -> str:
    cfg = {
        "model": model,
        "data": {"dataset": dataset, "dev_images": 8, "shuffle_buffer": 64},
        "optim": {"lr": 1e-3, "epochs": epochs, "batch_size": 16, "cache_backbone_mb": 16},
        "run": {"name": "resume", "storage_path": str(tmp_path / "runs"), "export": str(tmp_path / "export")},
        "ray": {"num_cpus": 2, "object_store_memory_mb": 256},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _checkpoints(tmp_path) -> list[str]:
    return registered_checkpoints(tmp_path / "runs" / "resume")


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_killed_training_resumes_from_its_last_checkpoint(tiny_dataset, tiny_model_kwargs, tmp_path):
    # a path relative to the driver's working directory, as a user types it: the workers run elsewhere
    config = _config(tmp_path, os.path.relpath(tiny_dataset), tiny_model_kwargs, epochs=3)
    command = [sys.executable, "-m", "jobs.train", "--config", config]
    with fresh_machine(os.environ) as (env, _):  # Ray Train's lock files too stay in each run's own Ray folder
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.time() + 400
            while not _checkpoints(tmp_path) and first.poll() is None and time.time() < deadline:
                time.sleep(0.5)
            assert _checkpoints(tmp_path), (tmp_path / "first.log").read_text()[-3000:]
            os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started, mid-run
            first.wait()
        time.sleep(2)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert "resuming at epoch" in output, output[-3000:]
    history = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    steps = [row["step"] for row in history]
    assert steps == [steps[0] * (k + 1) for k in range(3)]  # the steps continue where the first run stopped
    assert (tmp_path / "export" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    own = own_output(second.stdout)
    summary = json.loads(own[own.index("{"):])
    assert summary["export"] == str(tmp_path / "export")
    model = load_checkpoint(str(tmp_path / "export"))
    assert model.encode_texts(["a red car left of a dog"]).tokens.shape[-1] == tiny_model_kwargs["embed_size"]
