"""Source folders in the exact reference layouts (docs/formats.md, "Source layouts"), a handful of images each.

Features are real-sized (R x 2048 float32); each builder returns what a converted dataset must hold.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

F = 2048


@dataclasses.dataclass
class SourceImage:
    image_id: str
    features: np.ndarray  # (R, F) float32
    boxes: np.ndarray | None  # (R, 4) pixels
    width: int | None
    height: int | None


@dataclasses.dataclass
class Expected:
    """What the converted dataset must contain."""

    images: dict[str, SourceImage]
    captions: dict[str, tuple[str, str]]  # caption_id -> (image_id, text)
    splits: dict[str, tuple[list[str], list[str]]]  # split -> (image ids, caption ids) in order


def _image(rng, image_id, regions=36, width=640, height=480, boxes=True) -> SourceImage:
    features = np.abs(rng.standard_normal((regions, F), dtype=np.float32)) * 3  # bottom-up features are non-negative
    x1, y1 = rng.uniform(0, width / 2, regions), rng.uniform(0, height / 2, regions)
    pixel = np.stack([x1, y1, x1 + rng.uniform(1, width / 2, regions), y1 + rng.uniform(1, height / 2, regions)], 1).astype(np.float32)
    return SourceImage(image_id, features, pixel if boxes else None, width if boxes else None, height if boxes else None)


def write_bottom_up(folder: Path, image: SourceImage, name: str) -> None:
    (folder / "bu_att").mkdir(parents=True, exist_ok=True)
    (folder / "bu_box").mkdir(parents=True, exist_ok=True)
    np.savez(folder / "bu_att" / f"{name}.npz", feat=image.features)
    np.save(folder / "bu_box" / f"{name}.npy", image.boxes)


def make_coco(root: Path, seed: int = 0) -> Expected:
    """annotations/captions_{train,val}2014.json, coco_{train,restval,dev,test}_ids.npy and features_36/."""
    rng = np.random.default_rng(seed)
    layout = {"train": [391895, 522418], "restval": [184613], "dev": [318219], "test": [554625, 397133, 37777, 87038]}
    ann_id, files, expected = 100000, {"captions_train2014.json": ([], []), "captions_val2014.json": ([], [])}, Expected({}, {}, {})
    id_files: dict[str, list[int]] = {}
    for part, image_ids in layout.items():
        split = "train" if part == "restval" else part
        ids = id_files.setdefault(part, [])
        for n, coco_id in enumerate(image_ids):
            image = _image(rng, str(coco_id), regions=36 if n else 20, width=int(rng.integers(300, 641)), height=int(rng.integers(300, 641)))
            write_bottom_up(root / "features_36", image, str(coco_id))
            expected.images[image.image_id] = image
            images, annotations = files["captions_train2014.json" if part in ("train", "restval") else "captions_val2014.json"]
            images.append({"id": coco_id, "width": image.width, "height": image.height, "file_name": f"COCO_{coco_id:012d}.jpg"})
            for k in range(6):  # COCO has 5-7 captions per image; the split files list 5
                ann_id += 7
                text = f"A photo number {k} of image {coco_id} with a dog."
                annotations.append({"id": ann_id, "image_id": coco_id, "caption": text})
                if k < 5:
                    ids.append(ann_id)
                    expected.captions[str(ann_id)] = (str(coco_id), text)
    (root / "annotations").mkdir(parents=True)
    for name, (images, annotations) in files.items():
        (root / "annotations" / name).write_text(json.dumps({"images": images, "annotations": annotations}))
    for part, ids in id_files.items():
        np.save(root / "annotations" / f"coco_{part}_ids.npy", np.array(ids, np.int64))
    for split, parts in {"train": ["train", "restval"], "dev": ["dev"], "test": ["test"]}.items():
        captions = [str(i) for p in parts for i in id_files[p]]
        expected.splits[split] = ([str(i) for p in parts for i in layout[p]], captions)
    return expected


def make_f30k(root: Path, seed: int = 1) -> Expected:
    """annotations/dataset_flickr30k.json (Karpathy), sizes.pkl and features_36/ named by json index."""
    rng = np.random.default_rng(seed)
    splits = ["train", "test", "val", "train", "test"]
    expected, entries, sizes, sentid = Expected({}, {}, {s: ([], []) for s in ("train", "dev", "test")}), [], [], 0
    for i, split in enumerate(splits):
        image = _image(rng, str(i), width=int(rng.integers(300, 501)), height=int(rng.integers(300, 501)))
        write_bottom_up(root / "features_36", image, str(i))
        expected.images[str(i)] = image
        sizes.append((image.width, image.height))
        ours = {"val": "dev"}.get(split, split)
        expected.splits[ours][0].append(str(i))
        sentences = []
        for k in range(5):
            text = f"Two people {k} near photo {i}."
            sentences.append({"tokens": text.lower().split(), "raw": text, "imgid": i, "sentid": sentid})
            expected.captions[str(sentid)] = (str(i), text)
            expected.splits[ours][1].append(str(sentid))
            sentid += 1
        entries.append({"sentids": [s["sentid"] for s in sentences], "imgid": i, "sentences": sentences,
                        "split": split, "filename": f"{1000092795 + i}.jpg"})
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "dataset_flickr30k.json").write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    (root / "sizes.pkl").write_bytes(pickle.dumps(sizes))
    return expected


def make_precomp(root: Path, seed: int = 2) -> Expected:
    """{train,dev,test}_ims.npy (N, 36, 2048) and {split}_caps.txt with 5 lines per image; no boxes."""
    rng = np.random.default_rng(seed)
    expected = Expected({}, {}, {})
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 3), ("dev", 1), ("test", 2)):
        images = [_image(rng, f"{split}-{i}", boxes=False) for i in range(n)]
        np.save(root / f"{split}_ims.npy", np.stack([im.features for im in images]))
        lines = [f"a man riding a horse number {j} in {split}" for j in range(5 * n)]
        (root / f"{split}_caps.txt").write_text("\n".join(lines) + "\n")
        expected.images.update({im.image_id: im for im in images})
        expected.captions.update({f"{split}-{j}": (f"{split}-{j // 5}", text) for j, text in enumerate(lines)})
        expected.splits[split] = ([im.image_id for im in images], [f"{split}-{j}" for j in range(5 * n)])
    return expected


LAYOUTS = {"coco": make_coco, "f30k": make_f30k, "precomp": make_precomp}


@pytest.fixture
def source_layout(tmp_path):
    """Builds a reference-layout folder: ``source_layout("coco")`` -> (root path, Expected)."""

    def build(kind: str, **kwargs) -> tuple[Path, Expected]:
        root = tmp_path / f"{kind}-source"
        return root, LAYOUTS[kind](root, **kwargs)

    return build
