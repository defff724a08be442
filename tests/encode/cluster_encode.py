"""Runs ``teran encode`` on a 3-node ``ray.cluster_utils.Cluster`` and removes a worker node mid-job.

    python tests/encode/cluster_encode.py CONFIG.yaml SIDE_URI

The worker node that hosts the encoder actor is killed (not drained) as soon as the first shard of
SIDE_URI is finished. Prints one JSON line: the job's exit code and what was removed when.
Run in its own process by tests/encode/test_encode_faults.py: one Ray per process.
"""

import json
import os
import shutil
import sys
import threading
import time

NODE = {"num_cpus": 2, "object_store_memory": 512 * 2**20}
# dead-node detection in about a second instead of the 12-35 s of Ray's default health_check_* settings
HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2, "health_check_timeout_ms": 1000}


def wait_for_state_api(timeout_s: float = 120) -> None:
    """The state API answers once the dashboard is up, which under load can take many seconds."""
    from ray.util.state import list_nodes

    deadline = time.time() + timeout_s
    while True:
        try:
            list_nodes(limit=10)
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)


def encoder_node(workers):
    """(worker node running the encoder actor, None), else (None, why it was not found)."""
    from ray.util.state import list_actors

    try:
        actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    except Exception as error:  # the dashboard restarting, or overloaded
        return None, f"state API: {error!r}"[:300]
    hosts = {a.node_id for a in actors if "TeranEncoder" in (a.class_name or "")}
    victim = next((w for w in workers if w.node_id in hosts), None)
    return victim, None if victim else f"no alive TeranEncoder actor among {sorted(a.class_name for a in actors)}"[:300]


def main(config: str, side_uri: str) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    from jobs.encode import main as encode
    from jobs.ray_runtime import private_ray_tmpdir
    from teran_core.storage import StorageConfig, resolve

    ray_tmpdir = private_ray_tmpdir()  # the nodes' files and Cluster's address file, never /tmp/ray
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0, "_system_config": HEALTH})
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    wait_for_state_api()  # before the job: the victim is found by asking it
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(rc=encode(["--config", config])))
    job.start()
    done = resolve(side_uri, StorageConfig()).join("_done")
    victim, why = None, "the job ended first"
    # find the encoder's node while the job starts up (the state API can take seconds under load),
    # then remove it the moment the first shard is finished
    while job.is_alive() and not done.list(".json"):
        if victim is None:
            victim, why = encoder_node(workers)
        time.sleep(0.2)
    result.update(markers_at_removal=len(done.list(".json")), removed_encoder_node=victim is not None,
                  job_alive=job.is_alive())
    if victim is None:
        result["encoder_not_found"] = why
        victim = workers[-1]
    cluster.remove_node(victim, allow_graceful=False)
    job.join()
    print(json.dumps(result), flush=True)
    ray.shutdown()
    cluster.shutdown()
    shutil.rmtree(ray_tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
