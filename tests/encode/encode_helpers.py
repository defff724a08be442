"""What the encode tests share: tiny datasets, job configs, and checks of an embedding set against its input."""

from __future__ import annotations

import collections
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from jobs.config import EncodeJobConfig
from teran_core import TeranConfig
from teran_core.config import from_dict
from teran_core.data import DatasetManifest, collate_images, read_shard
from teran_core.data.synth import SynthConfig, generate_dataset
from teran_core.data.writer import write_parquet
from teran_core.embedding_set import from_table
from teran_core.storage import Location

TINY = TeranConfig(feat_dim=8, embed_size=8, heads=2, feedforward=16, visual_layers=1, joint_layers=1, bert_layers=1)
ID_COLUMN = {"images": "image_id", "captions": "caption_id"}
FP16_TOLERANCE = 2e-3  # tokens are unit vectors; float16 keeps ~3 significant digits


def make_dataset(root: Location, images: int = 24, per_shard: int = 8) -> DatasetManifest:
    """A grounded synthetic dataset: ``images`` images (5 captions each), ``per_shard`` per shard, F = 8."""
    cfg = SynthConfig(images=images, images_per_shard=per_shard, feature_dim=8, group_size=2, min_objects=2,
                      max_objects=4, max_regions=6, test_images=8, dev_images=0)
    return generate_dataset(cfg, root)


def job_config(dataset: Location, checkpoint: str, output: Location, **encode) -> EncodeJobConfig:
    """A job config over ``dataset``; ``encode`` overrides the encode section (tiny batches by default)."""
    storage = {"endpoint_override": output.storage.endpoint_override}
    sizes = {"batch_size": 16, "prepare_batch_size": 5, "progress_interval_s": 1.0, **encode}
    return from_dict(EncodeJobConfig, {
        "input": {"dataset": dataset.uri}, "model": {"checkpoint": checkpoint},
        "output": {"uri": output.uri}, "encode": sizes, "storage": storage,
    })


def rewrite_shard(manifest: DatasetManifest, kind: str, index: int, change) -> None:
    """Replaces shard ``index`` of ``kind`` by ``change(table)`` and records it in dataset.json."""
    info = manifest.shards[kind][index]
    table = change(read_shard(manifest, kind, index))
    manifest.shards[kind][index] = write_parquet(manifest.location.join(kind, info.name), table, table.schema)
    manifest.save(manifest.location)


def side_tables(output: Location, kind: str) -> tuple[dict, pa.Table, pa.Table]:
    """(manifest, every embedding row in manifest order, every reject row) of one output side."""
    side = output.join(kind)
    manifest = json.loads(side.join("manifest.json").read_text())
    fs = side.pyarrow_filesystem()
    shards = [pq.read_table(side.join(s["name"]).path, filesystem=fs) for s in manifest["shards"]]
    rejects = [pq.read_table(side.join("_rejects", n).path, filesystem=fs) for n in side.join("_rejects").list(".parquet")]
    empty = pa.schema([("id", pa.string()), ("shard", pa.string()), ("row", pa.int64()), ("reason", pa.string())]).empty_table()
    return manifest, pa.concat_tables(shards), pa.concat_tables(rejects) if rejects else empty


def assert_exactly_once(dataset: DatasetManifest, output: Location, kind: str) -> tuple[pa.Table, pa.Table]:
    """Every input row is in the output or in the rejects, exactly once; returns (embeddings, rejects)."""
    _, embedded, rejects = side_tables(output, kind)
    inputs = collections.Counter(i for k in range(len(dataset.shards[kind]))
                                 for i in read_shard(dataset, kind, k, [ID_COLUMN[kind]]).column(0).to_pylist())
    outputs = collections.Counter(embedded.column("id").to_pylist() + rejects.column("id").to_pylist())
    assert outputs == inputs
    assert max(outputs.values()) == 1
    return embedded, rejects


def direct_sets(model, dataset: DatasetManifest, kind: str):
    """Yields (ids, TokenSet) per shard from the model's own encode_images / encode_texts."""
    for k in range(len(dataset.shards[kind])):
        table = read_shard(dataset, kind, k)
        with torch.inference_mode():
            if kind == "images":
                batch = collate_images(table)
                items = model.encode_images(batch["features"], batch["boxes"], batch["n_regions"])
            else:
                items = model.encode_texts(table.column("text").to_pylist())
        yield table.column(ID_COLUMN[kind]).to_pylist(), items


def direct_tokens(model, dataset: DatasetManifest, kind: str) -> dict[str, np.ndarray]:
    """id -> (L, D) float32 tokens from the model's own encode_images / encode_texts, one shard per call."""
    return {item_id: items.tokens[i, : int(items.lengths[i])].numpy()
            for ids, items in direct_sets(model, dataset, kind) for i, item_id in enumerate(ids)}


def assert_matches_model(embedded: pa.Table, expected: dict[str, np.ndarray]) -> None:
    """Stored token sets equal the model's direct output (length, every slot, global = slot 0)."""
    batch = from_table(embedded)
    assert len(batch) > 0
    for i, item_id in enumerate(batch.ids):
        want = expected[item_id]
        assert batch.lengths[i] == len(want)
        np.testing.assert_allclose(batch.tokens[i, : len(want)], want, atol=FP16_TOLERANCE)
    globals_ = np.stack([np.asarray(g, np.float32) for g in embedded.column("global").to_pylist()])
    np.testing.assert_array_equal(globals_, batch.tokens[:, 0])
