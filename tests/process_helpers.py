"""Helpers for tests that run a job in a process of its own and kill it."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time


def kill_session(session: int) -> None:
    """SIGKILL to every process of a session (a driver started with start_new_session and its local Ray's
    processes), by pid: Ray's workers would exit on their own within about 30 s, and a rerun must not wait for that."""
    pids = subprocess.run(["ps", "-o", "pid=", "-s", str(session)], capture_output=True, text=True).stdout.split()
    for pid in map(int, pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue  # it exited meanwhile


# set by the first ``import torch._dynamo`` of a process (transformers' BERT imports it) and inherited by
# its children: a test process that imported it earlier would hand its own folder to the job under test
INHERITED = ("RAY_TMPDIR", "TORCHINDUCTOR_CACHE_DIR")


def fresh_machine_env(env: dict, tmpdir: str | None = None) -> tuple[dict, str]:
    """``env`` as on a machine that never ran Ray or torch: ``TMPDIR`` a new empty folder (or ``tmpdir``),
    no ``RAY_TMPDIR`` nor ``TORCHINDUCTOR_CACHE_DIR``. Returns (the environment, the folder). The folder's
    name is short: Ray's socket paths under it must stay within 107 bytes."""
    folder = tmpdir or tempfile.mkdtemp(prefix="t")
    return {**{k: v for k, v in env.items() if k not in INHERITED}, "TMPDIR": folder}, folder


def leftovers(tmpdir: str) -> list[str]:
    """What processes run with ``TMPDIR=tmpdir`` left there outside the per-run Ray folders that
    ``jobs.ray_runtime.private_ray_tmpdir`` makes (``ray-*``): Ray's machine-wide default ``ray``, lock
    files, anything else. Not counted: ``torchinductor_<user>``, torch's compile cache, which every
    torch program that imports ``torch._dynamo`` makes once per machine and user and reuses (a cache,
    not a run's leftovers; runs with a teran job or without)."""
    return sorted(name for name in os.listdir(tmpdir) if not name.startswith(("ray-", "torchinductor_")))



@contextlib.contextmanager
def fresh_machine(env: dict | None = None):
    """``with fresh_machine(os.environ) as (env, folder):`` runs processes with ``env`` as on a machine that never
    ran Ray (:func:`fresh_machine_env`). Leaving the block checks that they left nothing in ``folder`` but their own
    Ray folders; the folder is removed either way, also when the block failed."""
    env, folder = fresh_machine_env(env or {})
    try:
        yield env, folder
        left = leftovers(folder)
        assert left == [], f"a process wrote outside its own Ray folder (Ray's machine-wide default is 'ray'): {left}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)

def registered_checkpoints(run_folder) -> list[str]:
    """The checkpoints Ray Train has registered for a run (what a rerun resumes from). A checkpoint_* folder
    appears before that: a run killed in between starts over (CI once killed it there)."""
    snapshot = run_folder / "checkpoint_manager_snapshot.json"
    try:
        results = json.loads(snapshot.read_text())["checkpoint_results"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being written
        return []
    return sorted(r["checkpoint_dir_name"] for r in results)


def shard_state(output, kind) -> dict:
    """{stem: (marker text, shard size)} of every finished shard of one side of a job's output (a Location):
    what a rerun must leave as it is."""
    side = output.join(kind)
    return {name[:-5]: (side.join("_done", name).read_text(), side.join(f"{name[:-5]}.parquet").size())
            for name in side.join("_done").list(".json")}


def credential_leaks(store_root, texts: dict[str, str], local_files=()) -> list[str]:
    """Where the test run's S3 credentials (in every job's environment) appear: the objects under
    ``store_root`` (a Location on the S3 store), the given local files, and ``texts`` (name -> a job's
    output). A job must leak them nowhere."""
    secrets = [os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]]
    objects = store_root.fs.find(store_root.path)
    assert objects, f"nothing stored under {store_root.uri} to check"
    leaks = [o for o in objects if any(s.encode() in store_root.fs.cat_file(o) for s in secrets)]
    leaks += [str(f) for f in local_files if any(s.encode() in f.read_bytes() for s in secrets)]
    return leaks + [name for name, text in texts.items() if any(s in text for s in secrets)]


def kill_once_marked(driver: subprocess.Popen, done, count: int = 3) -> None:
    """SIGKILLs a job's driver, then every process of its session, as soon as ``done`` (a side's ``_done/``
    Location) holds ``count`` shard markers: a kill in the middle of the job."""
    while driver.poll() is None and len(done.list(".json")) < count:
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate()
    kill_session(driver.pid)
