"""URI resolution, atomic writes on a local disk and on the S3 store, and no secret in any output."""

import logging
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from teran_core.config import ConfigError, from_dict
from teran_core.storage import StorageConfig, open_uri, resolve


@pytest.mark.parametrize(
    ("uri", "protocol", "path"),
    [
        ("s3://bucket/a/b", "s3", "bucket/a/b"),
        ("s3://bucket/a/b/", "s3", "bucket/a/b"),
        ("file:///tmp/x/y", "file", "/tmp/x/y"),
        ("/tmp/x/y", "file", "/tmp/x/y"),
    ],
)
def test_resolve(uri, protocol, path):
    loc = resolve(uri)
    assert (loc.protocol, loc.path) == (protocol, path)


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("data/x").path == str(tmp_path / "data" / "x")


@pytest.mark.parametrize("uri", ["s3://", "gs://bucket/x", "hdfs://nn/x"])
def test_resolve_rejects_unsupported(uri):
    with pytest.raises(ValueError, match="storage URI"):
        resolve(uri)


def test_write_read_list_remove(storage_root):
    shard = storage_root.join("shards", "part-00000.parquet")
    with shard.atomic_write() as f:
        pq.write_table(pa.table({"id": ["a", "b"]}), f)
    storage_root.join("shards", "notes.txt").write_text("hi")
    assert pq.read_table(shard.path, filesystem=shard.pyarrow_filesystem()).column("id").to_pylist() == ["a", "b"]
    assert storage_root.join("shards").list() == ["notes.txt", "part-00000.parquet"]
    assert storage_root.join("shards").list(".parquet") == ["part-00000.parquet"]
    assert shard.size() > 0
    storage_root.join("shards").remove()
    assert storage_root.join("shards").list() == []


@pytest.mark.parametrize("size", [10, 12 * 2**20])  # one PUT, and a multipart upload on S3
def test_failed_write_leaves_nothing_under_the_final_name(storage_root, size):
    target = storage_root.join("out", "blob.bin")
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="crash"):
        with target.atomic_write() as f:
            f.write(b"x" * size)
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert storage_root.join("out").list() == ["blob.bin"]  # no temporary left behind


def test_successful_large_write(storage_root):
    target = storage_root.join("big.bin")
    payload = bytes(range(256)) * (48 * 2**12)  # 12 MiB: multipart on S3
    with target.atomic_write() as f:
        f.write(payload)
    assert target.read_bytes() == payload


def test_missing_file_names_the_uri(storage_root):
    with pytest.raises(FileNotFoundError, match=r"nothing\.txt does not exist"):
        storage_root.join("nothing.txt").read_text()
    with pytest.raises(ValueError, match="use atomic_write"):
        storage_root.join("x").open("wb")


def test_open_uri(storage_root):
    with open_uri(storage_root.join("o.bin").uri, "wb", storage_root.storage) as f:
        f.write(b"abc")
    with open_uri(storage_root.join("o.bin").uri, "rb", storage_root.storage) as f:
        assert f.read() == b"abc"


def test_location_pickles_without_its_filesystem(s3_root):
    s3_root.join("p.txt").write_text("x")
    clone = pickle.loads(pickle.dumps(s3_root.join("p.txt")))
    assert clone.read_text() == "x"
    used = s3_root.pyarrow_filesystem()  # after a first request, as Ray hands it to a task (Ray Train, Ray Data)
    assert used.get_file_info(s3_root.join("p.txt").path).size == 1
    assert pickle.loads(pickle.dumps(used)).open_input_file(s3_root.join("p.txt").path).read() == b"x"


def test_secret_never_appears_in_logs_errors_or_reprs(s3_server, s3_root, caplog, monkeypatch, request):
    import os

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    caplog.set_level(logging.DEBUG)  # botocore, s3fs, fsspec and ours, at their most verbose
    texts = []
    loc = s3_root.join("k", "v.bin")
    loc.write_bytes(b"payload")
    texts += [repr(loc), str(loc), repr(loc.storage), repr(loc.fs), repr(loc.pyarrow_filesystem()),
              repr(pickle.dumps(loc)), str(loc.fs.storage_options)]
    for failing in (
        lambda: resolve("s3://no-such-bucket-here/x", s3_root.storage).read_bytes(),
        lambda: s3_root.join("missing").read_bytes(),
    ):
        with pytest.raises(Exception) as err:
            failing()
        texts.append(str(err.value) + repr(err.value))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + secret[:6] + "-but-still-secret")
    wrong = resolve(s3_root.join("k", "v.bin").uri, s3_root.storage)
    type(wrong.fs).clear_instance_cache()  # fsspec caches clients; a new one reads the new secret
    request.addfinalizer(type(wrong.fs).clear_instance_cache)  # and later tests must not get that one
    wrong = resolve(s3_root.join("k", "v.bin").uri, s3_root.storage)
    with pytest.raises(Exception) as err:
        wrong.read_bytes()
    texts.append(str(err.value) + repr(err.value))
    texts += [record.getMessage() for record in caplog.records]
    assert len(caplog.records) > 10, "debug logging should have produced records to check"
    for forbidden in (secret, "wrong-" + secret[:6] + "-but-still-secret"):
        leaks = [t for t in texts if forbidden in t]
        assert leaks == [], f"secret leaked in {len(leaks)} text(s)"


def test_storage_config_has_no_credential_fields():
    names = {f for f in StorageConfig.__dataclass_fields__}
    assert not names & {"key", "secret", "access_key", "secret_key", "token", "password"}


def test_storage_config_refuses_bad_retry_knobs_and_credentials_in_the_endpoint():
    with pytest.raises(ConfigError, match=r"retry_mode: got 'legacy', expected one of 'standard', 'adaptive'"):
        from_dict(StorageConfig, {"retry_mode": "legacy"}, source="job.yaml")
    problems = StorageConfig(endpoint_override="http://alice:s3cret@store:8333", max_attempts=0, deadline_s=0).check()
    assert len(problems) == 3 and not any("s3cret" in p for p in problems), problems
    assert "http://***@store:8333" in problems[0]
    assert from_dict(StorageConfig, {"endpoint_override": "https://store:8333", "retry_mode": "adaptive"}).check() == []


@pytest.mark.parametrize(("text", "expected"), [
    ("GET http://alice:s3cret@h:1/b/k failed", "GET http://***@h:1/b/k failed"),
    ("s3://key:secret@bucket/x and https://u@host/", "s3://***@bucket/x and https://***@host/"),
    ("no url here user:pass@host", "no url here user:pass@host"),  # not a URL: left alone
    ("http://h:1/a@b", "http://h:1/a@b"),  # an @ in the path is no credential
])
def test_redact(text, expected):
    from teran_core.storage import redact

    assert redact(text) == expected


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_retried_faults_are_invisible_and_a_store_down_past_the_deadline_raises_one_clear_error(s3_server, s3_root):
    from fault_proxy import FaultProxy

    from teran_core.storage import StoreUnavailable

    proxy = FaultProxy(s3_server.port, fail_rate=0.2)
    try:
        storage = StorageConfig(endpoint_override=proxy.endpoint, max_attempts=50, deadline_s=3)
        root = resolve(s3_root.uri, storage)
        for i in range(20):
            root.join("f", f"{i}.txt").write_text(str(i))
        assert [root.join("f", f"{i}.txt").read_text() for i in range(20)] == [str(i) for i in range(20)]
        with root.join("t.parquet").atomic_write() as f:
            pq.write_table(pa.table({"id": list(range(100))}), f)
        read = pq.read_table(root.join("t.parquet").path, filesystem=root.pyarrow_filesystem())  # Ray Data's way in
        assert read.column("id").to_pylist() == list(range(100))
        faults = proxy.report()
        proxy.down()
        with pytest.raises(StoreUnavailable) as err:
            root.join("f", "0.txt").read_text()
    finally:
        proxy.stop()
    print(f"\n20% faults: {faults}")
    assert faults["faults"] > 0 and faults["unrecovered"] == 0
    message = str(err.value)
    assert "\n" not in message and proxy.endpoint in message and "storage.deadline_s=3" in message
    assert "rerun the same command" in message


KILLED_WRITER = """
import sys
from teran_core.storage import StorageConfig, resolve
storage = StorageConfig(endpoint_override=sys.argv[1])
shard, marker = resolve(sys.argv[2], storage), resolve(sys.argv[3], storage)
with shard.atomic_write() as f:  # 60 MiB: a multipart upload of two parts
    for _ in range(60):
        f.write(b"x" * 2**20)
marker.write_text("complete")  # the encode finaliser's order: the marker after its shard
"""


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_writer_killed_mid_upload_leaves_no_object_and_no_marker(s3_server, s3_root):
    import os
    import subprocess
    import sys

    from fault_proxy import FaultProxy, wait_for

    shard, marker = s3_root.join("emb", "images-00000.parquet"), s3_root.join("emb", "_done", "images-00000.json")
    proxy = FaultProxy(s3_server.port)
    proxy.stall_pattern, proxy.stall_s = b"partNumber=2", 60.0  # the last part: the upload is half done
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, proxy.endpoint, shard.uri, marker.uri],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: proxy.counts["stalled"] or writer.poll() is not None, 120, "the second part's upload")
        writer.kill()
        out, _ = writer.communicate()
    finally:
        proxy.stop()
    assert writer.returncode == -9, out[-2000:]
    bucket = s3_root.path
    pending = s3_root.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in pending] == ["emb/images-00000.parquet"]  # it died inside the multipart upload
    assert not shard.exists() and not marker.exists()
    assert s3_root.fs.find(s3_root.join("emb").path) == []  # nothing under any name
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in out


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_store_unavailable_in_a_ray_data_task_reaches_the_driver_as_its_one_line(ray_session):
    from teran_core.storage import StoreUnavailable, store_unavailable_in

    def store_down(batch):  # a local function: pickled by value, for workers that cannot import this module
        raise StoreUnavailable("the object store at http://127.0.0.1:9 failed PutObject /b/k 3 time(s) over 7 s")

    with pytest.raises(Exception) as err:  # Ray Data wraps it: UserCodeException in a RayTaskError, chain lost
        ray_session.data.range(2).map_batches(store_down).take_all()
    assert str(store_unavailable_in(err.value)) == \
        "the object store at http://127.0.0.1:9 failed PutObject /b/k 3 time(s) over 7 s"
