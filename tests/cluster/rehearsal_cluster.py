"""A simulated GPU cluster for the local rehearsal: a head that runs nothing and two stand-in GPU nodes.

    python tests/cluster/rehearsal_cluster.py

Starts a ``ray.cluster_utils.Cluster`` on 127.0.0.1 shaped like cluster/aws-gpu.yaml and the KubeRay
RayCluster: a head advertising ``CPU: 0`` (with the dashboard and job server) and two workers that
each advertise ``GPU: 1`` as a g5.xlarge does. The GPU is Ray's logical resource only; nothing on
this machine has CUDA. Prints one JSON line {"address", "dashboard", "temp_dir"} once every node and
the dashboard are up, holds the cluster until its stdin closes, then shuts it down.
Run in its own process by tests/cluster/test_rehearsal.py: one Ray per process.
"""

import json
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request

OBJECT_STORE = 512 * 2**20  # Cluster's default 150 MiB stalls on MB-sized blocks
GPU_NODE = {"num_cpus": 2, "num_gpus": 1, "object_store_memory": OBJECT_STORE}
# dead-node detection in about a second instead of 12-35 s (Ray's health_check_* system config)
HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2, "health_check_timeout_ms": 1000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_dashboard(url: str, timeout_s: float = 120) -> None:
    """The job server answers only once the dashboard has started, a few seconds after the head."""
    deadline = time.time() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers: 401 when Ray's token authentication (on by default) wants the token jobs send
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def main() -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every socket on 127.0.0.1
    from ray.cluster_utils import Cluster

    from jobs.ray_runtime import private_ray_tmpdir

    # Every node's files, and the address file by which the job server finds the cluster its entrypoints
    # connect to (as `ray start --head` writes it), go under a folder of this run's: never /tmp/ray
    ray_tmpdir = private_ray_tmpdir()
    local = {"node_ip_address": "127.0.0.1"}
    dashboard_port = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        **local, "num_cpus": 0, "object_store_memory": OBJECT_STORE, "_system_config": HEALTH,
        "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port,
        # the job server hands jobs to the head's agent; its fixed default port (52365) may be another Ray's
        "dashboard_agent_listen_port": free_port(),
    })
    try:
        for _ in range(2):
            cluster.add_node(**local, **GPU_NODE)
        cluster.wait_for_nodes()
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        wait_for_dashboard(dashboard)
        print(json.dumps({"address": cluster.address, "dashboard": dashboard, "temp_dir": ray_tmpdir}), flush=True)
        sys.stdin.read()  # returns when the test closes the pipe, or when the test process dies
    finally:
        cluster.shutdown()
        shutil.rmtree(ray_tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
