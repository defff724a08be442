"""Per-batch validation: each bad row is rejected naming its shard and row; a wrong shard stops with a DataError."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from teran_core.data import DataError, validate_captions, validate_images
from teran_core.data.schema import captions_table, images_table

F = 8
SHARD = "images-00007.parquet"


def batch(n_regions=(2, 3, 1), dtype="float32", boxes=True) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    counts = np.array(n_regions)
    features = rng.standard_normal((counts.sum(), F)).astype(np.float32)
    xy = rng.uniform(0, 0.5, (counts.sum(), 2))
    box = np.concatenate([xy, xy + 0.25], axis=1) if boxes else None
    ids = [f"img{i}" for i in range(len(counts))]
    return images_table(ids, counts, features, box, [640] * len(counts), [480] * len(counts), dtype), features, box


def check(table, **kwargs):
    return validate_images(table, shard=SHARD, first_row=500, feature_dim=F, **kwargs)


def one_reject(table, **kwargs) -> dict:
    valid, rejects = check(table, **kwargs)
    assert valid.num_rows + rejects.num_rows == table.num_rows  # nothing dropped silently
    assert rejects.num_rows == 1, rejects.to_pylist()
    return rejects.to_pylist()[0]


def test_valid_rows_pass_unchanged():
    table, _, _ = batch()
    valid, rejects = check(table)
    assert valid.equals(table) and rejects.num_rows == 0


@pytest.mark.parametrize("value, label", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_features(value, label):
    _, features, box = batch()
    features[3, 5] = value  # image 1, region 1
    table = images_table(["a", "b", "c"], np.array([2, 3, 1]), features, box, [1] * 3, [1] * 3)
    assert one_reject(table) == {"id": "b", "shard": SHARD, "row": 501, "reason": "region 1 has NaN or inf features"}


def test_float16_overflow_is_named():
    _, features, box = batch()
    features[0, 0] = 70000.0  # beyond float16
    with np.errstate(over="ignore"):
        table = images_table(["a", "b", "c"], np.array([2, 3, 1]), features, box, [1] * 3, [1] * 3, "float16")
    assert "float16 storage turns values beyond" in one_reject(table)["reason"]


def test_zero_and_too_many_regions():
    table, _, _ = batch(n_regions=(0, 3, 1))
    assert one_reject(table) == {"id": "img0", "shard": SHARD, "row": 500, "reason": "zero regions; an image needs at least one region"}
    table, _, _ = batch(n_regions=(2, 5, 1))
    assert one_reject(table, max_regions=4)["reason"] == "5 regions, more than max_regions 4; raise max_regions or keep fewer regions at the source"


def test_boxes_outside_or_inverted_or_miscounted():
    _, features, box = batch()
    outside, inverted = box.copy(), box.copy()
    outside[5, 3] = 1.5  # image 2, region 0
    inverted[2, [0, 2]] = [0.6, 0.2]  # image 1, region 0
    table = images_table(["a", "b", "c"], np.array([2, 3, 1]), features, outside, [1] * 3, [1] * 3)
    reason = one_reject(table)["reason"]
    assert reason.startswith("region 0 box [") and "1.5] is outside [0, 1]" in reason
    table = images_table(["a", "b", "c"], np.array([2, 3, 1]), features, inverted, [1] * 3, [1] * 3)
    assert one_reject(table)["reason"].endswith("is inverted (x2 < x1 or y2 < y1)")
    short = table.set_column(3, "boxes", pa.array([[[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]]], table.schema.field("boxes").type))
    assert one_reject(short) == {"id": "b", "shard": SHARD, "row": 501, "reason": "2 boxes for 3 regions"}


def test_null_boxes_are_only_allowed_without_boxes():
    table, _, _ = batch(boxes=False)
    assert check(table, boxes_required=False)[1].num_rows == 0
    assert check(table)[1].column("reason").to_pylist() == ["boxes are null but the dataset has boxes"] * 3


def test_id_and_n_regions_problems():
    table, _, _ = batch()
    table = table.set_column(0, "image_id", pa.array(["a", "", None]))
    table = table.set_column(1, "n_regions", pa.array([2, 3, 4], pa.int32()))
    valid, rejects = check(table)
    assert valid.column("image_id").to_pylist() == ["a"]
    assert rejects.column("reason").to_pylist() == ["image_id is empty", "image_id is empty"]
    table = table.set_column(0, "image_id", pa.array(["a", "b", "c"]))
    assert one_reject(table)["reason"] == "n_regions is 4 but features has 1 regions"


def test_wrong_feature_width_in_a_row_is_a_reject_but_in_a_whole_shard_stops():
    rows = [[[0.1] * F] * 2, [[0.2] * F, [0.3] * (F - 1), [0.2] * F], [[0.4] * F]]
    table, _, _ = batch()
    ragged = table.set_column(2, "features", pa.array(rows, pa.list_(pa.list_(pa.float32()))))
    assert one_reject(ragged) == {"id": "img1", "shard": SHARD, "row": 501, "reason": f"region 1 has {F - 1} features, expected {F}"}
    with pytest.raises(DataError, match=rf"shard {SHARD}: every region has {F} features, the dataset's feature_dim is 16"):
        validate_images(table, shard=SHARD, feature_dim=16)


def test_wrong_schema_stops():
    table, _, _ = batch()
    with pytest.raises(DataError, match=rf"shard {SHARD}: missing column\(s\) \['boxes'\]"):
        check(table.drop_columns(["boxes"]))
    with pytest.raises(DataError, match=rf"shard {SHARD}: column n_regions has type string, expected an integer"):
        check(table.set_column(1, "n_regions", pa.array(["2", "3", "1"])))
    with pytest.raises(DataError, match="shard captions-00000.parquet: column text is missing or not a string"):
        validate_captions(pa.table({"caption_id": ["c"], "image_id": ["a"]}), shard="captions-00000.parquet")


def test_known_rejects_are_merged_by_shard_row():
    table, _, _ = batch()
    valid, rejects = check(table, known={501: "duplicate image_id 'img1'", 9: "elsewhere"})
    assert valid.column("image_id").to_pylist() == ["img0", "img2"]
    assert rejects.to_pylist() == [{"id": "img1", "shard": SHARD, "row": 501, "reason": "duplicate image_id 'img1'"}]


def test_empty_or_whitespace_captions():
    table = captions_table(["c0", "c1", "c2", "c3", ""], ["a", "a", "a", "", "b"], ["A dog.", "", " \n\t", "A cat.", "A cow."])
    valid, rejects = validate_captions(table, shard="captions-00001.parquet", first_row=10)
    assert valid.column("caption_id").to_pylist() == ["c0"]
    assert rejects.to_pylist() == [
        {"id": "c1", "shard": "captions-00001.parquet", "row": 11, "reason": "caption text is empty or whitespace only"},
        {"id": "c2", "shard": "captions-00001.parquet", "row": 12, "reason": "caption text is empty or whitespace only"},
        {"id": "c3", "shard": "captions-00001.parquet", "row": 13, "reason": "image_id is empty"},
        {"id": "", "shard": "captions-00001.parquet", "row": 14, "reason": "caption_id is empty"},
    ]
