"""Bad source inputs: a row-level problem becomes a reject with file, row and reason; a structural one stops the job."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import convert as convert_job
from teran_core.data import DataError, DatasetManifest, load_split
from teran_core.data.convert import ConvertConfig, convert_dataset
from teran_core.storage import resolve


def convert(kind, root, out, **cfg):
    cfg.setdefault("max_rejected_fraction", 1.0)
    return convert_dataset(ConvertConfig(format=kind, root=str(root), **cfg), resolve(str(root)), resolve(str(out)))


def rejects(out, kind) -> dict[str, dict]:
    return {r["id"]: r for r in pq.read_table(f"{out}/rejects/{kind}.parquet").to_pylist()}


def save_features(root, image_id, features, boxes=None):
    np.savez(root / "features_36" / "bu_att" / f"{image_id}.npz", feat=features)
    if boxes is not None:
        np.save(root / "features_36" / "bu_box" / f"{image_id}.npy", boxes)


def test_bad_images_are_rejected_with_their_captions_and_left_out_of_splits(source_layout, tmp_path):
    root, expected = source_layout("coco")
    bad = dict(zip(["554625", "397133", "37777", "87038", "391895", "318219"],
                   ["nan", "dim", "missing", "outside", "inverted", "zero"]))
    for image_id, problem in bad.items():
        image = expected.images[image_id]
        features, boxes = image.features.copy(), image.boxes.copy()
        if problem == "nan":
            features[3, 7] = np.nan
        elif problem == "dim":
            features = features[:, :1024]
        elif problem == "outside":
            boxes[2, 2] = image.width + 10
        elif problem == "inverted":
            boxes[1, [0, 2]] = boxes[1, [2, 0]]
        elif problem == "zero":
            features, boxes = features[:0], boxes[:0]
        save_features(root, image_id, features, boxes)
    (root / "features_36" / "bu_att" / "37777.npz").unlink()
    manifest, summary = convert("coco", root, tmp_path / "out")
    got = rejects(tmp_path / "out", "images")
    assert set(got) == set(bad)
    assert got["554625"]["shard"] == "features_36/bu_att/554625.npz" and got["554625"]["row"] == 0
    assert got["554625"]["reason"] == "region 3 has NaN or inf features"
    assert "shape (36, 1024), expected (regions, 2048)" in got["397133"]["reason"]
    assert "missing file" in got["37777"]["reason"] and "37777.npz" in got["37777"]["reason"]
    assert "region 2 box" in got["87038"]["reason"] and "is outside [0, 1]" in got["87038"]["reason"]
    assert "region 1 box" in got["391895"]["reason"] and "inverted" in got["391895"]["reason"]
    assert got["318219"]["reason"] == "zero regions; an image needs at least one region"
    caption_rejects = rejects(tmp_path / "out", "captions")
    orphaned = {c for c, (image, _) in expected.captions.items() if image in bad}
    assert set(caption_rejects) == orphaned
    assert all(r["reason"].startswith("its image ") and "was rejected" in r["reason"] for r in caption_rejects.values())
    assert manifest.counts == {"images": len(expected.images) - len(bad), "captions": len(expected.captions) - len(orphaned)}
    assert summary["rejected"] == {"images": len(bad), "captions": len(orphaned)}
    test_images, test_captions, _ = load_split(tmp_path / "out", "test")
    assert test_images == [] and test_captions == []  # every test image was bad: nothing dangles
    assert load_split(tmp_path / "out", "train")[0] == ["522418", "184613"]


def test_caption_problems_are_rejected_naming_the_split_file_row(source_layout, tmp_path):
    root, expected = source_layout("coco")
    ids = np.load(root / "annotations" / "coco_test_ids.npy")
    np.save(root / "annotations" / "coco_test_ids.npy", np.concatenate([ids, [ids[2], 999999999]]))
    data = json.loads((root / "annotations" / "captions_val2014.json").read_text())
    data["annotations"][0]["caption"] = "   \t "
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps(data))
    blank_id = str(data["annotations"][0]["id"])
    manifest, _ = convert("coco", root, tmp_path / "out")
    got = rejects(tmp_path / "out", "captions")
    assert got["999999999"]["shard"] == "annotations/coco_test_ids.npy" and got["999999999"]["row"] == len(ids) + 1
    assert "is in no captions_train2014.json or captions_val2014.json" in got["999999999"]["reason"]
    duplicate = got[str(ids[2])]
    assert (duplicate["row"], duplicate["reason"]) == (len(ids), f"duplicate caption_id '{ids[2]}'; first seen in annotations/coco_test_ids.npy row 2")
    assert got[blank_id]["reason"] == "caption text is empty or whitespace only"
    assert manifest.counts["captions"] == len(expected.captions) - 1  # the duplicate is neither kept twice nor lost


def test_too_many_regions_and_too_many_rejects(source_layout, tmp_path):
    root, _ = source_layout("f30k")
    many = np.ones((40, 2048), np.float32)
    save_features(root, "3", many, np.tile([[1.0, 1.0, 2.0, 2.0]], (40, 1)))
    convert("f30k", root, tmp_path / "ok")
    assert rejects(tmp_path / "ok", "images")["3"]["reason"].startswith("40 regions, more than max_regions 36")
    with pytest.raises(DataError, match=r"1 of 5 images were rejected, more than convert.max_rejected_fraction=0.1"):
        convert("f30k", root, tmp_path / "strict", max_rejected_fraction=0.1)
    assert (tmp_path / "strict" / "rejects" / "images.parquet").exists()
    assert not (tmp_path / "strict" / "dataset.json").exists()


def test_missing_split_file_stops_the_job_with_one_line(source_layout, tmp_path, capsys):
    root, _ = source_layout("coco")
    (root / "annotations" / "coco_restval_ids.npy").unlink()
    assert convert_job.main(["coco", "--root", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teran convert: error: missing split file annotations/coco_restval_ids.npy")
    with pytest.raises(FileNotFoundError, match="dataset.json does not exist"):
        DatasetManifest.load(tmp_path / "out")


@pytest.mark.parametrize("problem", ["lines", "dim", "truncated", "missing"])
def test_precomp_structural_problems(problem, source_layout, tmp_path):
    root, _ = source_layout("precomp")
    if problem == "lines":
        (root / "dev_caps.txt").write_text("only one line\n")
        message = r"dev_caps.txt has 1 lines for the 1 images of dev_ims.npy; expected 5 per image"
    elif problem == "dim":
        np.save(root / "dev_ims.npy", np.zeros((1, 36, 1024), np.float32))
        message = r"dev_ims.npy has shape \(1, 36, 1024\), expected \(N, regions, 2048\)"
    elif problem == "truncated":
        data = (root / "train_ims.npy").read_bytes()
        (root / "train_ims.npy").write_bytes(data[: len(data) - 1000])
        message = r"train_ims.npy is truncated"
    else:
        (root / "test_ims.npy").unlink()
        message = r"missing split file test_ims.npy"
    with pytest.raises(DataError, match=message):
        convert("precomp", root, tmp_path / "out")


def test_f30k_sizes_are_loaded_without_running_code(source_layout, tmp_path):
    root, _ = source_layout("f30k")

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (root / "sizes.pkl").write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(DataError, match=r"sizes file sizes.pkl .* is not a list of \(width, height\) pairs: \S*print is not allowed"):
        convert("f30k", root, tmp_path / "out")
    (root / "sizes.pkl").unlink()
    with pytest.raises(DataError, match=r"missing sizes file sizes.pkl .* has no width/height"):
        convert("f30k", root, tmp_path / "out")
