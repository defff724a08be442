"""The test services themselves: S3 and Ray are real, both listen on loopback only, and a job's Ray touches
nothing machine-wide."""

import os
import subprocess
import sys

import pytest
from process_helpers import fresh_machine


def _listening_sockets(pids: set[int]) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)]


LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"}


def _not_loopback(sockets: list[str]) -> list[str]:
    """The listening sockets whose local address is not a loopback address."""
    return [line for line in sockets if line.split()[3].rsplit(":", 1)[0] not in LOOPBACK_HOSTS]


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo.extend(children.get(p, []))
    return found


def test_s3_store_round_trips_and_listens_on_loopback(s3_server, s3_root):
    s3_root.join("k", "v.txt").write_text("value")
    assert s3_root.join("k", "v.txt").read_text() == "value"
    sockets = _listening_sockets({s3_server.proc.pid})
    assert sockets, "weed mini should be listening"
    assert _not_loopback(sockets) == []


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_ray_listens_on_loopback_only(ray_session):
    @ray_session.remote
    def square(x):
        return x * x

    assert ray_session.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    ray_pids = {int(p) for p in subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"],
                                              capture_output=True, text=True).stdout.split()}
    sockets = _listening_sockets(ray_pids | _descendants(os.getpid()))
    assert sockets, "Ray should have listening sockets"
    assert _not_loopback(sockets) == []


LOCAL_JOB_RAY = """
import sys
import jobs.encode  # imports ray first, as every job module does: the loopback setting must already hold
from jobs.ray_runtime import init_ray
from jobs.config import RayConfig
ray = init_ray(RayConfig(num_cpus=1, object_store_memory_mb=128))
assert ray.get(ray.remote(lambda: 1).remote()) == 1
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_job_started_from_a_plain_shell_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    job = subprocess.Popen([sys.executable, "-c", LOCAL_JOB_RAY], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        assert job.stdout.readline().strip() == "ready"
        sockets = _listening_sockets(_descendants(job.pid))
        assert sockets, "Ray should have listening sockets"
        assert _not_loopback(sockets) == []
    finally:
        job.stdin.close()
        job.wait(timeout=60)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_job_leaves_nothing_in_the_machine_wide_ray_folder_or_tmp(tmp_path):
    """On a machine that never ran Ray (an empty TMPDIR, no RAY_TMPDIR), a job keeps every file of its local
    Ray in one folder of its own: nothing in Ray's machine-wide default ``$TMPDIR/ray`` or ``/tmp/ray``."""
    machine_wide = "/tmp/ray"
    before = sorted(os.listdir(machine_wide)) if os.path.isdir(machine_wide) else None
    with fresh_machine(os.environ) as (env, tmpdir):
        job = subprocess.run([sys.executable, "-m", "jobs.synth", "--out", str(tmp_path / "synth"), "--images", "8",
                              "synth.feature_dim=4", "synth.group_size=2", "synth.test_images=0", "synth.dev_images=0",
                              "ray.num_cpus=1", "ray.object_store_memory_mb=128"],
                             env=env, capture_output=True, text=True, timeout=150)
        assert job.returncode == 0, job.stderr[-3000:]
        own = os.listdir(tmpdir)
        assert len(own) == 1 and os.path.isdir(os.path.join(tmpdir, own[0], "session_latest")), own
        assert f"local Ray's files and logs: {os.path.join(tmpdir, own[0])}" in job.stderr
    after = sorted(os.listdir(machine_wide)) if os.path.isdir(machine_wide) else None
    assert after == before
