"""Runs ``teran encode`` on a 3-node ``ray.cluster_utils.Cluster`` and removes a worker node mid-job.

    python tests/encode/cluster_encode.py CONFIG.yaml SIDE_URI

The worker node that hosts the encoder actor is killed (not drained) as soon as the first shard of
SIDE_URI is finished. Prints one JSON line: the job's exit code and what was removed when.
Run in its own process by tests/encode/test_encode_faults.py: one Ray per process.
"""

import json
import os
import sys
import tempfile
import threading
import time

NODE = {"num_cpus": 2, "object_store_memory": 512 * 2**20}
# dead-node detection in about a second instead of 12-35 s (scale notes)
HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2, "health_check_timeout_ms": 1000}


def encoder_node(workers):
    """The worker node running the encoder actor (the removal that hurts most), else the last worker."""
    from ray.util.state import list_actors

    try:
        actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    except Exception:  # the state API needs the dashboard; without it any worker will do
        return workers[-1], False
    hosts = {a.node_id for a in actors if "TeranEncoder" in (a.class_name or "")}
    return next(((w, True) for w in workers if w.node_id in hosts), (workers[-1], False))


def main(config: str, side_uri: str) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    from jobs.encode import main as encode
    from teran_core.storage import StorageConfig, resolve

    temp_dir = tempfile.mkdtemp(prefix="ray-cluster-")
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0, "temp_dir": temp_dir, "_system_config": HEALTH})
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(rc=encode(["--config", config])))
    job.start()
    done = resolve(side_uri, StorageConfig()).join("_done")
    while job.is_alive() and not done.list(".json"):
        time.sleep(0.2)
    victim, had_encoder = encoder_node(workers)
    result.update(markers_at_removal=len(done.list(".json")), removed_encoder_node=had_encoder, job_alive=job.is_alive())
    cluster.remove_node(victim, allow_graceful=False)
    job.join()
    print(json.dumps(result), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
