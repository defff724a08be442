"""``teran encode`` on the command line: clear errors before Ray starts, and a finished job's rerun without Ray."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from encode_helpers import job_config, make_dataset

from teran_core.config import to_yaml
from teran_core.encode import run_encode
from teran_core.storage import resolve

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def teran_encode(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "encode", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def error_message(result: subprocess.CompletedProcess) -> str:
    """The error and what follows it (the resolved config is logged before it)."""
    assert "Traceback" not in result.stderr
    return result.stderr[result.stderr.index("teran encode: error: "):]


def test_the_shipped_config_names_the_three_locations_a_run_needs():
    result = teran_encode("--config", "configs/encode.yaml")
    assert result.returncode == 2
    message = error_message(result)
    assert message.startswith("teran encode: error: config configs/encode.yaml is not valid (3 problem(s))")
    for key in ("input.dataset", "model.checkpoint", "output.uri"):
        assert f"{key}: missing; set it, e.g. {key}=s3://" in message


@pytest.mark.integration
def test_a_finished_job_reruns_without_ray_and_another_dtype_is_refused(tmp_path, tiny_checkpoint):
    root = resolve(str(tmp_path))
    dataset = make_dataset(root.join("data"), images=8)
    cfg = job_config(dataset.location, tiny_checkpoint, root.join("emb"))
    with ThreadPoolExecutor(1) as pool:
        run_encode(cfg, lambda stages: stages.iter_local(), pool.submit)
    config = tmp_path / "encode.yaml"
    config.write_text(to_yaml(cfg))

    rerun = teran_encode("--config", str(config))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["items"] == 0 and "Ray instance" not in rerun.stderr  # nothing to do: no Ray

    other = teran_encode("--config", str(config), "output.dtype=float32")
    assert other.returncode == 2
    message = error_message(other)
    assert message.startswith(f"teran encode: error: {root.join('emb', 'images').uri} holds images embeddings of another encode job")
    assert "dtype: was 'float16', now 'float32'" in message and "output.overwrite=true" in message
