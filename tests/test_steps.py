"""The demo's and the pipeline's step runner (jobs/steps.py) on plans of model steps: no Ray needed."""

import json

import pytest

from jobs.config import RayConfig
from jobs.plan import Step
from jobs.steps import check_plan, run_plan
from teran_core.checkpoint import load_checkpoint
from teran_core.config import ConfigError
from teran_core.storage import StorageConfig, resolve

TINY = {"feat_dim": 8, "embed_size": 8, "heads": 2, "feedforward": 16, "visual_layers": 1, "joint_layers": 1, "bert_layers": 1}


def plan(root, seed=0) -> dict:
    return {name: Step("model", {"model": TINY, "seed": seed}, output=root.join("models", name).uri) for name in ("a", "b")}


def test_markers_record_each_step_and_a_rerun_skips_them_or_refuses_another_config(tmp_path, capsys):
    root = resolve(str(tmp_path))
    markers = root.join("markers")
    sizes = lambda name, step, run: run() or {"seconds": 1.0}  # what a measure returns goes in the marker
    first = run_plan("teran pipeline", root, plan(root), RayConfig(), StorageConfig(), markers=markers, measure=sizes)
    assert first == {"a": {"seconds": 1.0, "skipped": False}, "b": {"seconds": 1.0, "skipped": False}}
    assert load_checkpoint(root.join("models", "b").uri).config.embed_size == 8
    marker = json.loads(markers.join("a.json").read_text())
    assert marker["config"] == {"model": TINY, "seed": 0} and marker["seconds"] == 1.0

    again = run_plan("teran pipeline", root, plan(root), RayConfig(), StorageConfig(), markers=markers, measure=sizes)
    assert {name: r["skipped"] for name, r in again.items()} == {"a": True, "b": True}
    assert "[pipeline] step 2/2: b skipped, finished earlier" in capsys.readouterr().out

    with pytest.raises(ConfigError, match=r"step a finished with another value of seed"):
        run_plan("teran pipeline", root, plan(root, seed=1), RayConfig(), StorageConfig(), markers=markers)


def test_a_bad_value_in_any_step_stops_the_plan_before_its_first_step(tmp_path):
    root = resolve(str(tmp_path))
    steps = plan(root)
    steps["b"].config["model"] = {**TINY, "heads": 3}  # 8 is not divisible by 3 heads
    steps["c"] = Step("evaluate", {"two_stage": {"mode": "MrSW"}})
    with pytest.raises(ConfigError) as err:
        check_plan("teran demo", steps)
    assert {p.split(":")[0] for p in err.value.problems} == {"step b", "step c"}  # every problem, named by its step
    with pytest.raises(ConfigError):
        run_plan("teran demo", root, steps, RayConfig(), StorageConfig())
    assert not root.join("models", "a").exists()  # step a, valid, never ran
