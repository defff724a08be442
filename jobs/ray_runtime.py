"""Ray for the jobs: a local instance on loopback with files of its own, or a cluster; and the
executor that runs a library driver's tasks as Ray tasks."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable

from jobs.config import RayConfig

log = logging.getLogger("teran")


class RayExecutor:
    """Runs each of a library driver's tasks as a Ray task (the :class:`teran_core.executor.Executor` contract).

    Ray starts (``init_ray(cfg)``) at the first task, so a driver that stops on bad input before its
    first task costs no Ray start and prints nothing of Ray's.

    Example::

        summary = build_index(embeddings, root, cfg.index, RayExecutor(cfg.ray))
    """

    def __init__(self, cfg: RayConfig):
        self.cfg = cfg
        self._remote: dict = {}  # (fn, cpus, retries) -> its Ray remote function, registered once

    @property
    def _ray(self):
        return init_ray(self.cfg)

    def submit(self, fn: Callable, *args, cpus: float = 1.0, retries: int = 2):
        key = (fn, cpus, retries)
        if key not in self._remote:
            self._remote[key] = self._ray.remote(num_cpus=cpus, max_retries=retries)(fn)
        return self._remote[key].remote(*args)

    def get(self, handles: list) -> list:
        return self._ray.get(list(handles))

    def gather(self, handles: list, progress) -> list:
        pending = list(handles)
        while pending:
            ready, pending = self._ray.wait(pending, num_returns=1, timeout=10.0)
            self._ray.get(ready)  # a failed task stops the job now, not at the end
            progress.update(len(ready))
        progress.close()
        return self._ray.get(list(handles))


def private_ray_tmpdir() -> str:
    """Makes a fresh folder under ``TMPDIR`` for one Ray instance and points ``RAY_TMPDIR`` and, for the
    processes started from now on, ``TMPDIR`` at it.

    Ray keeps its sessions, sockets and logs, the address file ``ray_current_cluster`` (written by
    ``ray start`` and ``ray.cluster_utils.Cluster`` whatever ``temp_dir`` the nodes get) and Ray Train's
    lock files under ``$RAY_TMPDIR``, else ``$TMPDIR``, else ``/tmp`` (``ray._common.utils``). The
    ``/tmp/ray`` default is shared by every Ray on the machine, and ``Cluster`` fails where it does not
    exist. Ray's processes also make temporary folders of their own (multiprocessing's ``pymp-*``) that
    stay behind when a node is killed: with ``TMPDIR`` pointed here they stay in this folder. Both
    variables reach every Ray process started afterwards; this process's own ``tempfile`` keeps the
    folder it had.

    Example, a multi-node test cluster that touches nothing machine-wide::

        folder = private_ray_tmpdir()
        cluster = ray.cluster_utils.Cluster(initialize_head=True)  # files and address under folder/ray
        ...
        cluster.shutdown()
        shutil.rmtree(folder)
    """
    folder = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths under it must stay within 107 bytes
    os.environ["RAY_TMPDIR"] = os.environ["TMPDIR"] = folder
    return folder


def init_ray(cfg: RayConfig):
    """Connects to a cluster (``cfg.address`` or ``RAY_ADDRESS``) or starts a local instance.

    A local instance listens on 127.0.0.1 only: by default Ray's servers bind every interface. Its files
    go under ``RAY_TMPDIR`` when the user set it (Ray's own layout), else in a new folder of its own
    (``private_ray_tmpdir``), logged at start.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
        return ray
    temp_dir = None if os.environ.get("RAY_TMPDIR") else private_ray_tmpdir()
    ray.init(  # every server on 127.0.0.1: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, set in jobs/__init__.py
        num_cpus=cfg.num_cpus,
        object_store_memory=cfg.object_store_memory_mb * 2**20 if cfg.object_store_memory_mb else None,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
    )
    log.info("local Ray's files and logs: %s", temp_dir or os.path.join(os.environ["RAY_TMPDIR"], "ray"))
    return ray
