"""cluster/aws-gpu.yaml passes every check ``ray up`` makes before launching; a typo does not."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
from cluster_files import LAUNCHER_YAML, RAY_IMAGE, load_yaml, renamed
from launcher_checks import node_config_problems, provider_problems, ray_up_checks

CONFIG = load_yaml(LAUNCHER_YAML)
WORKER_TYPES = [name for name in CONFIG["available_node_types"] if name != CONFIG["head_node_type"]]


def test_passes_ray_up_checks():
    prepared = ray_up_checks(CONFIG)
    # prepare_config merged the common setup command into both roles' commands
    assert prepared["worker_setup_commands"] == prepared["head_setup_commands"] == CONFIG["setup_commands"]
    assert provider_problems(CONFIG) == []
    assert node_config_problems(CONFIG) == []


UNEXPECTED = "Additional properties are not allowed ('{}' was unexpected)"
# (where the key is, its typo, ray-schema.json's complaint)
SCHEMA_TYPOS = [
    (("idle_timeout_minutes",), "idle_timeout_minute", UNEXPECTED.format("idle_timeout_minute")),
    (("docker", "pull_before_run"), "pull_before_runs", UNEXPECTED.format("pull_before_runs")),
    (("available_node_types", "gpu_a10g", "min_workers"), "min_worker", UNEXPECTED.format("min_worker")),
    (("available_node_types", "gpu_a10g", "resources"), "resource", "'resources' is a required property"),
]


@pytest.mark.parametrize(("path", "typo", "message"), SCHEMA_TYPOS, ids=[t[1] for t in SCHEMA_TYPOS])
def test_typo_fails_ray_schema(path, typo, message):
    with pytest.raises(jsonschema.ValidationError) as caught:
        ray_up_checks(renamed(CONFIG, path, typo))
    assert caught.value.message == message


def test_typo_in_provider_passes_ray_but_not_these_checks():
    bad = renamed(CONFIG, ("provider", "region"), "regoin")
    ray_up_checks(bad)  # Ray's schema lets any provider key through, and the region falls back
    assert provider_problems(bad) == [
        "provider.regoin: unknown key, expected one of Ray's provider keys (e.g. 'region')"
    ]


def test_typo_in_node_config_passes_ray_but_not_ec2_shape():
    where = ("available_node_types", "gpu_a10g", "node_config", "IamInstanceProfile")
    bad = renamed(CONFIG, where, "IamInstanceProfil")
    ray_up_checks(bad)  # node_config is opaque to Ray: EC2 would reject it at the first launch
    (problem,) = node_config_problems(bad)
    assert problem.startswith("available_node_types.gpu_a10g.node_config: ")
    assert 'Unknown parameter in input: "IamInstanceProfil"' in problem


def test_fractional_resources_are_rejected():
    bad = copy.deepcopy(CONFIG)
    bad["available_node_types"]["gpu_a10g"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="0.5 is not of type 'integer'"):
        ray_up_checks(bad)


def test_min_workers_beyond_global_max_are_rejected():
    bad = copy.deepcopy(CONFIG)
    bad["available_node_types"]["gpu_a10g"]["min_workers"] = bad["max_workers"] + 1
    with pytest.raises(ValueError, match="smaller than the sum of `min_workers`"):
        ray_up_checks(bad)


def test_head_runs_no_tasks():
    head = CONFIG["available_node_types"][CONFIG["head_node_type"]]
    assert head["resources"] == {"CPU": 0}


@pytest.mark.parametrize("name", WORKER_TYPES)
def test_worker_type_is_explicit_and_can_reach_s3(name):
    node_type = CONFIG["available_node_types"][name]
    assert node_type["resources"]["CPU"] >= 1, "say the CPUs: the autoscaler plans with these numbers"
    assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= CONFIG["max_workers"]
    # Only the head gets Ray's auto-created instance profile: without this, no S3 on workers.
    arn = node_type["node_config"]["IamInstanceProfile"]["Arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:instance-profile/[\w+=,.@/-]+", arn), arn


def test_gpu_types_exist():
    gpus = {name: CONFIG["available_node_types"][name]["resources"].get("GPU", 0) for name in WORKER_TYPES}
    assert any(gpus.values()), gpus


@pytest.mark.parametrize("name", list(CONFIG["available_node_types"]))
def test_ami_is_pinned(name):
    # No ImageId (or "latest_dlami") makes Ray fall back to an old Deep Learning AMI.
    image_id = CONFIG["available_node_types"][name]["node_config"]["ImageId"]
    assert re.fullmatch(r"ami-[0-9a-f]{8}([0-9a-f]{9})?", image_id), image_id


def test_image_is_rays_gpu_image_and_installs_teran():
    docker = CONFIG["docker"]
    assert {docker["image"], docker.get("head_image", RAY_IMAGE), docker.get("worker_image", RAY_IMAGE)} == {RAY_IMAGE}
    (mount,) = CONFIG["file_mounts"]
    assert any(f'pip install --quiet "{mount}[ray,gpu]"' in cmd for cmd in CONFIG["setup_commands"])
