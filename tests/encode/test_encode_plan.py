"""Planning and the job id: which shards a run encodes, and which outputs it refuses to touch."""

import json

import pytest
from encode_helpers import job_config, make_dataset

from jobs.config import EncodeJobConfig
from teran_core.config import ConfigError, load_config
from teran_core.encode import OutputConflict
from teran_core.encode.identity import claim_side, job_id, job_identity
from teran_core.encode.layout import SideLayout
from teran_core.encode.plan import plan_side
from teran_core.storage import resolve

MODEL = {"checkpoint": "/m", "format": "teran", "files": {"model.safetensors": [10, "1"]}}


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(resolve(str(tmp_path / "data")), images=24)


def finish(layout, task, job, **changes):
    """Writes an embedding shard and its marker as finalisation would."""
    layout.shard(task.stem).write_bytes(b"embedding shard bytes")
    marker = {"rows": task.rows, "sha256": "x", "bytes": 21, "source": task.name, "source_sha256": task.sha256,
              "rejected": 0, "job_id": job, "dim": 8, **changes}
    layout.marker(task.stem).write_text(json.dumps(marker))


def test_a_marker_counts_only_for_this_job_this_input_and_an_intact_shard(dataset, tmp_path):
    layout = SideLayout(resolve(str(tmp_path / "emb" / "images")), "images")
    first = plan_side(dataset, "images", layout, "job-a")
    assert [t.name for t in first.todo] == ["images-00000.parquet", "images-00001.parquet", "images-00002.parquet"]
    finish(layout, first.tasks[0], "job-a")
    finish(layout, first.tasks[1], "job-b")  # another job's marker
    finish(layout, first.tasks[2], "job-a", source_sha256="stale")  # the input shard changed since

    second = plan_side(dataset, "images", layout, "job-a")
    assert list(second.done) == ["images-00000"] and [t.stem for t in second.todo] == ["images-00001", "images-00002"]

    layout.shard("images-00000").write_bytes(b"truncated")  # not the size its marker recorded
    assert [t.stem for t in plan_side(dataset, "images", layout, "job-a").todo][0] == "images-00000"
    layout.shard("images-00000").remove()
    assert "images-00000" not in plan_side(dataset, "images", layout, "job-a").done


def test_the_job_id_follows_what_decides_the_embeddings(dataset, tmp_path):
    output = resolve(str(tmp_path / "emb"))
    base = job_config(dataset.location, "/m", output)
    same = job_config(dataset.location, "/m", output, batch_size=3, actors=2)  # sizes do not change embeddings
    assert job_id(job_identity(base, MODEL)) == job_id(job_identity(same, MODEL))
    other_model = {**MODEL, "files": {"model.safetensors": [10, "2"]}}
    half = job_config(dataset.location, "/m", output, num_gpus=1, precision="auto")  # float16 autocast on GPU
    ids = {job_id(job_identity(c, m)) for c, m in ((base, MODEL), (base, other_model), (half, MODEL))}
    assert len(ids) == 3


def test_another_jobs_side_is_refused_with_what_differs_and_overwrite_clears_it(dataset, tmp_path):
    output = resolve(str(tmp_path / "emb"))
    layout = SideLayout(output.join("images"), "images")
    identity = job_identity(job_config(dataset.location, "/m", output), MODEL)
    claim_side(layout, identity, overwrite=False)
    finish(layout, plan_side(dataset, "images", layout, job_id(identity)).tasks[0], job_id(identity))
    claim_side(layout, identity, overwrite=False)  # the same job: fine

    other = {**identity, "precision": "bfloat16"}
    with pytest.raises(OutputConflict, match=r"precision: was 'float32', now 'bfloat16'.*output.overwrite=true"):
        claim_side(layout, other, overwrite=False)
    layout.root.join("_job.json").remove()  # markers alone still tell
    with pytest.raises(OutputConflict, match="markers of job"):
        claim_side(layout, other, overwrite=False)

    claim_side(layout, other, overwrite=True)
    assert layout.read_markers() == {} and layout.shard_sizes() == {}
    assert json.loads(layout.root.join("_job.json").read_text())["job_id"] == job_id(other)


def test_the_shipped_config_loads_and_a_run_needs_its_three_locations():
    cfg = load_config(EncodeJobConfig, "configs/encode.yaml")
    assert cfg.encode.num_gpus == 1 and cfg.encode.resolved_precision() == "float16"
    assert [p.split(":")[0] for p in cfg.missing()] == ["input.dataset", "model.checkpoint", "output.uri"]
    with pytest.raises(ConfigError, match=r"encode.precision \(command line\): got 'float16' on the CPU"):
        load_config(EncodeJobConfig, "configs/encode.yaml", ["encode.num_gpus=0", "encode.precision=float16"])
    with pytest.raises(ConfigError, match=r"encode.device \(command line\): got 'cuda' with num_gpus 0"):
        load_config(EncodeJobConfig, "configs/encode.yaml", ["encode.num_gpus=0", "encode.device=cuda"])
    on_cpu = load_config(EncodeJobConfig, "configs/encode.yaml", ["encode.device=cpu"]).encode
    assert (on_cpu.num_gpus, on_cpu.resolved_device(), on_cpu.resolved_precision()) == (1, "cpu", "float32")
    assert EncodeJobConfig().model.__class__(checkpoint="s3://b/x.pth.tar").resolved_format() == "reference"
