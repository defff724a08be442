"""The distill job on real Ray Train: a killed run resumes from its last registered checkpoint and exports TERAN + head."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from process_helpers import registered_checkpoints

from teran_core import TERAN, load_checkpoint, save_checkpoint
from teran_core.alignment import alignment_scores


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_killed_distillation_resumes_and_exports_teran_with_its_head(tiny_dataset, tiny_model_config, tmp_path):
    torch.manual_seed(0)
    teacher = TERAN(tiny_model_config).eval()
    save_checkpoint(teacher, str(tmp_path / "teacher"))
    cfg = {
        "teacher": {"checkpoint": str(tmp_path / "teacher")},
        "head": {"layers": 1, "heads": 2, "dropout": 0.0},
        "loss": {"hard_negatives": 2, "pool_batches": 2},
        "distill": {"cache_tokens_mb": 16},
        "data": {"dataset": os.path.relpath(tiny_dataset), "dev_images": 8, "shuffle_buffer": 64},
        "optim": {"lr": 1e-3, "epochs": 2, "batch_size": 16},
        "run": {"name": "distill", "storage_path": str(tmp_path / "runs"), "export": str(tmp_path / "export")},
        "ray": {"num_cpus": 2, "object_store_memory_mb": 256},
    }
    config = tmp_path / "distill.yaml"
    config.write_text(yaml.safe_dump(cfg))
    command = [sys.executable, "-m", "jobs.cli", "distill", "--config", str(config)]
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 400
        while not registered_checkpoints(tmp_path / "runs" / "distill") and first.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert registered_checkpoints(tmp_path / "runs" / "distill"), (tmp_path / "first.log").read_text()[-3000:]
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started, mid-run
        first.wait()
    time.sleep(2)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert "resuming at epoch" in output and "top-10 overlap with the teacher" in output, output[-3000:]
    history = json.loads((tmp_path / "export" / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    steps = [row["step"] for row in history]
    assert steps == [steps[0], 2 * steps[0]]  # the steps continue where the first run stopped
    assert all(0 <= row["top10_overlap"] <= 1 and row["teacher_rsum"] > 0 for row in history)
    distilled = load_checkpoint(str(tmp_path / "export"))
    assert distilled.global_head is not None and distilled.global_head.config.layers == 1
    with torch.no_grad():  # the frozen TERAN is untouched: only slot 0 differs, and no score
        ours = distilled.encode_texts(["a red car left of a dog", "two cats"])
        theirs = teacher.encode_texts(["a red car left of a dog", "two cats"])
        images = teacher.encode_images(torch.rand(2, 3, 16), torch.rand(2, 3, 4), torch.tensor([3, 2]))
    assert torch.equal(ours.tokens[:, 1:], theirs.tokens[:, 1:])
    assert torch.equal(alignment_scores(images, ours, "MrSw", "masked"), alignment_scores(images, theirs, "MrSw", "masked"))
