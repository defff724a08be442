"""Each stage on hand-made batches, without Ray: read + validate, encode, write parts, count, finalise."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from encode_helpers import FP16_TOLERANCE, ID_COLUMN, direct_tokens, make_dataset

from teran_core.data import CaptionCollator, read_shard
from teran_core.embedding_set import from_table
from teran_core.encode import ExactlyOnceError, ModelSpec, TeranEncoder, read_shards, write_parts
from teran_core.encode.finalize import finalize_shard
from teran_core.encode.layout import SideLayout
from teran_core.encode.plan import plan_side
from teran_core.encode.read import SHARD_ERROR_ROW, ReadSpec
from teran_core.encode.tracker import ShardTracker
from teran_core.storage import resolve


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(resolve(str(tmp_path_factory.mktemp("data"))), images=16)


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint):
    return TeranEncoder(ModelSpec(resolve(tiny_checkpoint), "teran"), dtype="float16")


def read_spec(dataset, batch_rows=3):
    return ReadSpec(dataset=dataset.location, batch_rows=batch_rows, feature_dim=dataset.feature_dim,
                    feature_dtype=dataset.feature_dtype, max_regions=dataset.max_regions, has_boxes=dataset.has_boxes,
                    collator=CaptionCollator())


def item(dataset, kind, index, known=None):
    info = dataset.shards[kind][index]
    known = known or {}
    return {"kind": kind, "name": info.name, "sha256": info.sha256, "known_rows": list(known), "known_reasons": list(known.values())}


def read(dataset, *items, batch_rows=3):
    return pa.concat_tables(read_shards(pa.Table.from_pylist(list(items)), spec=read_spec(dataset, batch_rows)))


def test_read_numbers_every_row_and_applies_the_dataset_checks_rejects(dataset):
    table = read(dataset, item(dataset, "captions", 1, known={3: "duplicate caption_id"}))
    source = read_shard(dataset, "captions", 1)
    assert sorted(table.column("row").to_pylist()) == list(range(source.num_rows))
    valid = table.filter(table.column("reason").is_null())
    assert valid.column("id").to_pylist() == [i for r, i in enumerate(source.column("caption_id").to_pylist()) if r != 3]
    tokenizer = CaptionCollator().tokenizer
    assert valid.column("input_ids").to_pylist()[0] == tokenizer(source.column("text")[0].as_py())["input_ids"]
    assert table.filter(pc.equal(table.column("row"), 3)).column("reason").to_pylist() == ["duplicate caption_id"]


def test_a_shard_whose_bytes_differ_from_the_manifest_becomes_one_error_row(dataset):
    stale = {**item(dataset, "images", 0), "sha256": "0" * 64}
    table = read(dataset, stale, item(dataset, "images", 1))
    errors = table.filter(pc.equal(table.column("row"), SHARD_ERROR_ROW))
    assert errors.column("shard").to_pylist() == ["images-00000.parquet"]
    assert "dataset.json says 0000" in errors.column("reason")[0].as_py()
    assert table.num_rows == 1 + dataset.shards["images"][1].rows  # the other shard is read in full


def test_the_encoder_equals_the_models_own_encode_within_float16(dataset, encoder, tiny_model):
    batch = read(dataset, item(dataset, "images", 0), item(dataset, "captions", 0), batch_rows=5)
    out = encoder(batch)
    assert out.num_rows == batch.num_rows and set(pc.unique(out.column("kind")).to_pylist()) == {"images", "captions"}
    for kind in ("images", "captions"):
        expected = direct_tokens(tiny_model, dataset, kind)
        rows = out.filter(pc.equal(out.column("kind"), kind))
        stored = from_table(rows.select(["id", "length", "global", "tokens"]))
        for i, item_id in enumerate(stored.ids):
            want = expected[item_id]
            assert stored.lengths[i] == len(want)  # every slot up to the true length, slot 0 included
            np.testing.assert_allclose(stored.tokens[i, : len(want)], want, atol=FP16_TOLERANCE)
    assert out.column("encoder").unique().to_pylist() == [encoder.name]
    assert pc.sum(out.column("encode_s")).as_py() > 0


def test_rejected_rows_pass_the_encoder_and_the_writer_as_rejects(dataset, encoder, tmp_path):
    batch = read(dataset, item(dataset, "images", 1, known={0: "duplicate image_id", 5: "zero regions"}))
    out = encoder(batch)
    rejected = out.filter(out.column("reason").is_valid())
    assert rejected.column("row").to_pylist() == [0, 5] and rejected.column("tokens").null_count == 2
    layouts = {"images": SideLayout(resolve(str(tmp_path / "images")), "images")}

    results = write_parts(out, layouts=layouts, run_id="run1")
    again = write_parts(out, layouts=layouts, run_id="run1")  # a write task run twice writes the same part

    assert results.equals(again)
    result = results.to_pylist()[0]
    assert result["encoded"] == batch.num_rows - 2 and [r["row"] for r in result["rejects"]] == [0, 5]
    rows = np.sort(out.filter(out.column("reason").is_null()).column("row").to_numpy())
    assert result["part"] == f"run1-{hashlib.sha1(rows.tobytes()).hexdigest()[:16]}.parquet"
    assert layouts["images"].staging("images-00001").list() == [result["part"]]


def test_the_tracker_finalises_a_shard_once_when_every_row_is_accounted_for(dataset, tmp_path):
    layout = SideLayout(resolve(str(tmp_path / "images")), "images")
    task = plan_side(dataset, "images", layout, "job").tasks[0]
    tracker = ShardTracker([task])
    half = {"kind": "images", "shard": task.name, "encoded": task.rows // 2, "bytes": 1, "rejects": [],
            "encoders": [{"name": "a", "items": task.rows // 2, "seconds": 1.0}]}
    first = pa.Table.from_pylist([{**half, "part": "p1"}])
    assert tracker.add(first) == [] and tracker.add(first) == []  # the same result twice counts once
    second = pa.Table.from_pylist([{**half, "part": "p2", "encoded": task.rows - task.rows // 2}])
    [ready] = tracker.add(second)
    assert ready.parts == ["p1", "p2"] and tracker.encoders["images"]["a"] == [task.rows // 2 * 2, 2.0]

    other = ShardTracker([task])
    three = {**half, "encoded": 3}
    assert other.add(pa.Table.from_pylist([{**three, "part": f"p{k}"} for k in range(3)])) == []  # 9 rows of 8
    assert "9 rows arrived for a shard of 8" in other.failed["images", task.name]


def test_finalise_writes_shard_rejects_and_marker_or_nothing(dataset, encoder, tmp_path):
    layout = SideLayout(resolve(str(tmp_path / "images")), "images")
    task = plan_side(dataset, "images", layout, "job").tasks[1]
    encoded = encoder(read(dataset, item(dataset, "images", 1, known={2: "duplicate image_id"})))
    halves = [encoded.slice(0, 4), encoded.slice(4)]  # two parts, written in any order
    results = [r for half in reversed(halves) for r in write_parts(half, layouts={"images": layout}, run_id="r").to_pylist()]
    parts = [r["part"] for r in results if r["part"]]
    rejects = [x for r in results for x in r["rejects"]]

    duplicated = parts + [parts[0]]
    with pytest.raises(ExactlyOnceError, match="twice or more.*not written"):
        finalize_shard(task, duplicated, rejects, layout, "job", 8, "float16")
    assert not layout.shard(task.stem).exists() and not layout.marker(task.stem).exists()

    marker = finalize_shard(task, parts, rejects, layout, "job", 8, "float16")

    shard_bytes = layout.shard(task.stem).read_bytes()
    assert marker == {**json.loads(layout.marker(task.stem).read_text())}
    assert marker["sha256"] == hashlib.sha256(shard_bytes).hexdigest() and marker["bytes"] == len(shard_bytes)
    assert (marker["rows"], marker["rejected"], marker["source_sha256"]) == (task.rows - 1, 1, task.sha256)
    source_ids = read_shard(dataset, "images", 1, [ID_COLUMN["images"]]).column(0).to_pylist()
    written = from_table(pa.parquet.read_table(layout.shard(task.stem).path))
    assert written.ids == source_ids[:2] + source_ids[3:]  # input order, whatever order the parts came in
    reject_table = pa.parquet.read_table(layout.rejects(task.stem).path)
    assert reject_table.to_pylist() == [{"id": source_ids[2], "shard": task.name, "row": 2, "reason": "duplicate image_id"}]
    assert not layout.staging(task.stem).exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a node without CUDA")
def test_an_encoder_given_a_gpu_without_cuda_says_how_to_run_on_the_cpu(tiny_checkpoint):
    with pytest.raises(RuntimeError, match="sees no CUDA device here.*encode.device: cpu"):
        TeranEncoder(ModelSpec(resolve(tiny_checkpoint), "teran"), device="cuda")
