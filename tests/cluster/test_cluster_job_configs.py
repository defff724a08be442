"""The cluster's job configs and RayJob command lines load through the jobs' own strict configs."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
from cluster_files import CLUSTER, IMAGE_ROOT, LAUNCHER_YAML, RAYJOB_FILES, REPO, load_yaml

from teran_core.config import ConfigError, load_config

CONFIG_FILES = sorted((CLUSTER / "configs").glob("*.yaml"))


def job_config_class(module: str) -> type:
    """The config dataclass a job module loads (its ``CONFIG``)."""
    return importlib.import_module(f"jobs.{module}").CONFIG


def entrypoint(path: Path) -> tuple[str, Path, list[str]]:
    """(job module, config file in the repository, overrides) of a RayJob's entrypoint."""
    words = shlex.split(load_yaml(path)["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", words[2]] and words[3] == "--config", words
    config = REPO / words[4].removeprefix(IMAGE_ROOT + "/")
    return words[2].removeprefix("jobs."), config, words[5:]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_cluster_config_loads_and_names_its_command(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# ray job submit") and f"--config cluster/configs/{path.name}" in path.read_text()
    load_config(job_config_class(path.stem), str(path))


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.name)
def test_rayjob_command_line_loads(path):
    module, config, overrides = entrypoint(path)
    load_config(job_config_class(module), str(config), overrides)


def test_typo_in_an_override_is_rejected():
    module, config, overrides = entrypoint(CLUSTER / "kuberay" / "rayjob-encode.yaml")
    typo = [o.replace("output.uri=", "output.ur=") for o in overrides]
    with pytest.raises(ConfigError, match="output.ur"):
        load_config(job_config_class(module), str(config), typo)


def cluster_config(job: str):
    return load_config(job_config_class(job), str(CLUSTER / "configs" / f"{job}.yaml"))


def gpu_offer(rayjob: str, node_type: str) -> tuple[dict, dict, int]:
    """(launcher node type, the RayJob's worker group, GPUs per node), checking both give a node as many GPUs."""
    launcher = load_yaml(LAUNCHER_YAML)["available_node_types"][node_type]
    (group,) = load_yaml(CLUSTER / "kuberay" / rayjob)["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert launcher["resources"]["GPU"] == container["resources"]["limits"]["nvidia.com/gpu"]
    return launcher, group, launcher["resources"]["GPU"]


def test_encode_pool_matches_the_gpus_the_clusters_offer():
    cfg = cluster_config("encode")
    node_type, group, gpus_per_node = gpu_offer("rayjob-encode.yaml", "gpu_a10g")
    assert cfg.encode.num_gpus == gpus_per_node == 1
    # one actor per GPU, and exactly as many GPUs as the autoscalers may add
    assert cfg.encode.actors == node_type["max_workers"] == group["maxReplicas"]
    assert cfg.encode.cpus_per_actor < node_type["resources"]["CPU"], "actors must leave CPUs for read/write tasks"


def test_train_workers_match_the_gpus_the_clusters_offer():
    cfg = cluster_config("train")
    node_type, group, gpus_per_node = gpu_offer("rayjob-train.yaml", "gpu_a100x8")
    assert cfg.scaling.use_gpu and cfg.scaling.num_workers == group["maxReplicas"] * gpus_per_node
    workers_per_node = min(cfg.scaling.num_workers, gpus_per_node)
    assert workers_per_node * cfg.scaling.cpus_per_worker < node_type["resources"]["CPU"], "leave CPUs for reads"
