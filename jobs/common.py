"""What every job shares: argument parsing, config loading, clean errors and starting Ray."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import TypeVar

import yaml

from teran_core.config import ConfigError, RayConfig, from_dict, load_config, to_yaml
from teran_core.storage import Location, RedactingFilter, store_unavailable_in

T = TypeVar("T")
log = logging.getLogger("teran")


def job_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every job takes: ``--config`` and ``key=value`` overrides."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="YAML config: a local path or an s3:// URI")
    parser.add_argument(
        "overrides", nargs="*", metavar="section.key=value",
        help="override single config keys, e.g. encode.batch_size=64",
    )
    return parser


def load_job_config(cls: type[T], args: argparse.Namespace, extra_overrides: Sequence[str] = ()) -> T:
    """Loads ``args.config`` into ``cls`` with the command line's overrides and logs the result."""
    cfg = load_config(cls, args.config, [*args.overrides, *extra_overrides])
    log.info("resolved config from %s:\n%s", args.config, to_yaml(cfg))
    return cfg


def run_main(prog: str, body: Callable[[], int | None]) -> int:
    """Runs a job body; a bad config or a missing file ends in one clear message and exit code 2, an
    object store that stayed unavailable past ``storage.deadline_s`` in one clear line and exit code 3."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # an endpoint URL with user:password in it never reaches a log
    try:
        return int(body() or 0)
    except (ConfigError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        unavailable = store_unavailable_in(err)
        if unavailable is None:
            raise
        print(f"{prog}: error: {unavailable}", file=sys.stderr)  # Ray's wrappers add a traceback; the cause is the line
        return 3


def step_config_dir(root: Location) -> str:
    """The local folder for the step configs of a job that chains jobs: ``<root>/configs`` on a local
    root; a fresh temporary folder for an object-store root (the jobs read local files; copies go to the store)."""
    path = root.join("configs").path if root.is_local else tempfile.mkdtemp(prefix="teran-configs-")
    os.makedirs(path, exist_ok=True)
    return path


def write_step_config(root: Location, config_dir: str, step: str, job: str, config: dict) -> str:
    """Writes one step's job config as ``<config_dir>/<step>.yaml``, opening with the command that runs it,
    and a copy at ``<root>/configs/<step>.yaml`` when ``root`` is on an object store; returns the local path.

    Example:
        >>> from teran_core.storage import resolve
        >>> root = resolve(tempfile.mkdtemp())
        >>> path = write_step_config(root, step_config_dir(root), "encode-a", "encode", {"encode": {"actors": 1}})
        >>> open(path).read().splitlines()[0] == f"# teran encode --config {path}"
        True
    """
    path = os.path.join(config_dir, f"{step}.yaml")
    with open(path, "w") as f:
        f.write(f"# teran {job} --config {path}\n")
        yaml.safe_dump(config, f, sort_keys=False)
    if not root.is_local:
        with open(path) as f:
            root.join("configs", f"{step}.yaml").write_text(f.read())
    return path


def check_steps(prog: str, steps: dict[str, tuple[type, dict]]) -> None:
    """Builds every step's job config (step -> (config class, the config as plain data)) before the first
    step runs, so that a bad value in a late step stops the whole run in seconds, not after the steps
    before it; a required location left empty counts too. Raises one ConfigError naming each problem's step.

    Example:
        >>> from teran_core.recall.config import EvaluateJobConfig
        >>> check_steps("teran pipeline", {"evaluate": (EvaluateJobConfig, {"two_stage": {"mode": "MrSW"}})})
        Traceback (most recent call last):
          ...
        teran_core.config.ConfigError: config teran pipeline's step configs is not valid (1 problem(s)):
          - step evaluate: two_stage.mode: got 'MrSW', expected one of 'MrSw', 'MrAVGw', 'MwSr', 'symm', 'sum', 'mean', 'scan-sentences'
    """
    problems = []
    for step, (cls, config) in steps.items():
        try:
            cfg = from_dict(cls, config, source=f"step {step}")
        except ConfigError as err:
            problems += [f"step {step}: {p}" for p in err.problems]
            continue
        problems += [f"step {step}: {p}" for p in getattr(cfg, "missing", list)()]
    if problems:
        raise ConfigError(f"{prog}'s step configs", problems)


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
