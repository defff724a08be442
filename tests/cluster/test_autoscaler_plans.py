"""Which nodes Ray's autoscaler would start for each job on cluster/aws-gpu.yaml, computed offline.

Runs Ray's own autoscaler v2 scheduler (the one `ray up` starts by default since Ray 2.50) on the
launcher config, with each worker type's ``memory`` filled in the way ``ray up`` fills it from EC2's
instance description. Memory matters: with it, a 1-GPU bundle scores higher on a p4d.24xlarge
(8 GPUs) than on a g5.xlarge, which is why only one GPU type is enabled at a time.
"""

from __future__ import annotations

import copy
import importlib

from cluster_files import CLUSTER, LAUNCHER_YAML, load_yaml
from launcher_checks import ray_up_checks
from ray._private import ray_constants
from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig
from ray.autoscaler.v2.scheduler import ResourceDemandScheduler, SchedulingRequest
from ray.core.generated.autoscaler_pb2 import ResourceRequest, ResourceRequestByCount

from teran_core.config import load_config

GIB = 2**30
INSTANCE_MEMORY_GIB = {"g5.xlarge": 16, "p4d.24xlarge": 1152, "r6i.8xlarge": 256}  # EC2's instance specs


def as_ray_up_fills_it(config: dict) -> dict:
    """The prepared config with each worker type's memory resource as ``ray up`` autodetects it."""
    prepared = ray_up_checks(config)
    for name, node_type in prepared["available_node_types"].items():
        if name != prepared["head_node_type"]:
            total = INSTANCE_MEMORY_GIB[node_type["node_config"]["InstanceType"]] * GIB
            share = 1 - ray_constants.DEFAULT_OBJECT_STORE_MEMORY_PROPORTION  # the rest is the object store
            node_type["resources"].setdefault("memory", int(total * share))
    return prepared


def launches(config: dict, bundle: dict[str, float], count: int, fill_memory: bool = True) -> dict[str, int]:
    """Node type -> nodes the autoscaler starts, on an empty cluster, for ``count`` x ``bundle``."""
    prepared = as_ray_up_fills_it(config) if fill_memory else ray_up_checks(config)
    autoscaling = AutoscalingConfig(prepared, skip_content_hash=True)
    request = SchedulingRequest(
        disable_launch_config_check=True,
        node_type_configs=autoscaling.get_node_type_configs(),
        max_num_nodes=autoscaling.get_max_num_nodes(),
        resource_requests=[ResourceRequestByCount(request=ResourceRequest(resources_bundle=bundle), count=count)],
    )
    reply = ResourceDemandScheduler().schedule(request)
    assert not reply.infeasible_resource_requests, f"{count} x {bundle} cannot be placed"
    return {launch.instance_type: launch.count for launch in reply.to_launch}


def job_config(name: str):
    return load_config(importlib.import_module(f"jobs.{name}").CONFIG, str(CLUSTER / "configs" / f"{name}.yaml"))


CONFIG = load_yaml(LAUNCHER_YAML)
ENCODE = job_config("encode").encode
TRAIN = job_config("train").scaling


def with_max_workers(**max_workers: int) -> dict:
    config = copy.deepcopy(CONFIG)
    for name, value in max_workers.items():
        config["available_node_types"][name]["max_workers"] = value
    return config


def test_encode_pool_gets_one_g5_per_actor():
    actor = {"GPU": ENCODE.num_gpus, "CPU": ENCODE.cpus_per_actor}
    assert launches(CONFIG, actor, ENCODE.actors) == {"gpu_a10g": ENCODE.actors}


def test_cpu_only_tasks_get_the_high_memory_node_not_a_gpu_node():
    assert launches(CONFIG, {"CPU": 1}, 32) == {"cpu_highmem": 1}


def test_training_gets_one_p4d_once_enabled():
    worker = {"GPU": 1, "CPU": TRAIN.cpus_per_worker}
    assert launches(with_max_workers(gpu_a100x8=1), worker, TRAIN.num_workers) == {"gpu_a100x8": 1}


def test_why_p4d_is_off_by_default():
    actor = {"GPU": ENCODE.num_gpus, "CPU": ENCODE.cpus_per_actor}
    assert launches(with_max_workers(gpu_a100x8=2), actor, ENCODE.actors) == {"gpu_a100x8": 2}


def test_memory_is_what_tips_the_choice():
    # Without the autodetected memory the g5 wins the score; ray up always has it on AWS.
    actor = {"GPU": ENCODE.num_gpus, "CPU": ENCODE.cpus_per_actor}
    assert launches(with_max_workers(gpu_a100x8=2), actor, ENCODE.actors, fill_memory=False) == {"gpu_a10g": ENCODE.actors}
