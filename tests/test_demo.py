"""The demo end to end on the S3 store, shrunk to a few hundred items (the full size is `make demo`)."""

import json
import pathlib
import subprocess
import sys

import pytest
from job_output import own_output

from jobs.demo_config import DemoJobConfig
from jobs.demo_plan import MODELS, demo_plan
from jobs.demo_report import comparison_rows
from jobs.pipeline_plan import PipelineJobConfig, stages
from jobs.steps import check_plan
from teran_core.checkpoint import load_checkpoint
from teran_core.config import load_config

REPO = pathlib.Path(__file__).resolve().parent.parent
SMALL = [
    "data.images=216", "data.test_images=64", "data.dev_images=32", "data.feature_dim=16",
    "model.feat_dim=16", "model.embed_size=16", "model.feedforward=32", "model.bert_layers=1",
    "training.epochs=1", "training.batch_size=16", "training.dev_images=32", "distill.head.prototypes=64", "distill.epochs=1",
    "distill.batch_size=16", "ray.object_store_memory_mb=256",
]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_demo_runs_on_the_s3_store(s3_server, s3_root):
    root = s3_root.join("demo")
    overrides = [f"root={root.uri}", f"storage.endpoint_override={s3_server.endpoint}", *SMALL]
    result = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--config", "configs/demo.yaml", *overrides],
                            capture_output=True, text=True, timeout=880)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert f"[demo] report: {root.join('report.md').uri}" in result.stdout
    assert own_output(result.stdout).rstrip().endswith(f"[demo] open in a browser: {root.join('report.html').uri}")
    page = root.join("report.html").read_text()
    assert "word–region alignment" in page and "training curves: teran" in page and "TERAN two-stage: recall against K" in page
    report = root.join("report.md").read_text()
    results = {name: json.loads(root.join("eval", name, "results.json").read_text()) for name in MODELS}
    for name, label, _ in comparison_rows(results):
        assert f"| {name} | {label} |" in report
        assert results[name]["collection"] == {"images": 64, "captions": 320}
    assert "| distilled | distilled global |" in report and "| distilled | two-stage, distilled candidates |" in report
    distilled = load_checkpoint(root.join("models", "distilled").uri, s3_root.storage)
    assert distilled.global_head is not None  # TERAN and its head, which encode wrote as `global`
    for side in ("images", "captions"):  # the prototype head's 64-wide vectors, beside 16-wide tokens
        manifest = json.loads(root.join("embeddings", "distilled", side, "manifest.json").read_text())
        assert (manifest["global_kind"], manifest["dim"], manifest["global_dim"]) == ("distilled", 16, 64)
    # the checkpoint training exported is the one the encode job loaded
    index = json.loads(root.join("index", "teran", "index.json").read_text())
    assert json.dumps(index).count(root.join("models", "teran").uri) >= 1
    model = load_checkpoint(root.join("models", "teran").uri, s3_root.storage)
    assert model.config.embed_size == 16 and model.config.alignment_weight == 1.0
    assert root.join("models", "global-only", "metrics.csv").read_text().startswith("epoch,")


@pytest.mark.parametrize("job", ["demo", "pipeline"])
def test_every_step_config_of_the_shipped_plans_is_valid(job):
    if job == "demo":
        plan = demo_plan(load_config(DemoJobConfig, REPO / "configs" / "demo.yaml"))
    else:
        plan = stages(load_config(PipelineJobConfig, REPO / "configs" / "pipeline.yaml"))
    check_plan(f"teran {job}", plan)  # raises on the first bad one
    assert {step.job for step in plan.values()} >= {"synth", "encode", "build-index", "evaluate", "model"}


@pytest.mark.integration
def test_a_value_only_a_late_step_refuses_stops_the_demo_before_its_first_step(tmp_path):
    root = tmp_path / "demo"
    # a multiple of nothing the demo's own config checks, but the synthetic data's hard-negative groups need it
    job = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--config", "configs/demo.yaml", f"root={root}",
                          "data.test_images=998"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert job.returncode == 2, job.stderr[-2000:]
    assert "teran demo's step configs is not valid" in job.stderr
    assert "step synth-test: synth.test_images: got 998, expected a multiple of group_size (4)" in job.stderr
    assert "[demo]" not in job.stdout and not root.exists()  # no step started, nothing written
