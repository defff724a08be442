"""COCO as the reference reads it (docs/formats.md, "Source layouts"): caption annotations, VSE++ id split files, bottom-up features.

Layout under the root::

    annotations/captions_train2014.json, captions_val2014.json   (COCO caption annotations)
    annotations/coco_{train,dev,test,restval}_ids.npy             (caption annotation ids, 5 per image, consecutive)
    features_36/bu_att/<image_id>.npz  (key "feat", (36, 2048))
    features_36/bu_box/<image_id>.npy  ((36, 4) pixel x1, y1, x2, y2)

Image and caption ids are COCO's own, as strings. A split's images are in the order their captions
first appear in its id files, so the reference 1K folds are images [0:1000], [1000:2000], ... of test.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from teran_core.config import knob
from teran_core.data.convert.plan import ConversionPlan, ImageItem, PlanBuilder
from teran_core.data.convert.sources import BottomUpFiles
from teran_core.data.convert.util import field, read_json, require_folder
from teran_core.data.errors import DataError, Reject
from teran_core.storage import Location

__all__ = ["CocoConfig", "plan_coco"]

CAPTION_FILES = ("captions_train2014.json", "captions_val2014.json")


@dataclasses.dataclass
class CocoConfig:
    """Where the COCO files are, relative to the root, and which id files make each split."""

    annotations: str = "annotations"  # folder of the caption json files and the coco_*_ids.npy split files
    features: str = "features_36"  # folder holding bu_att/ and bu_box/
    splits: dict[str, list[str]] = knob(factory=lambda: {"train": ["train", "restval"], "dev": ["dev"], "test": ["test"]})  # split -> id files coco_<name>_ids.npy; the reference trains on train + restval


def _load_ids(location: Location, label: str) -> np.ndarray:
    try:
        with location.open("rb") as f:
            ids = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"missing split file {label} ({location.uri}); it lists the split's caption annotation ids "
                        "(VSE++ Karpathy split files); add it or leave it out of coco.splits") from None
    except (ValueError, OSError) as err:
        raise DataError(f"split file {label} ({location.uri}) cannot be read: {err}") from None
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"split file {label} holds a {ids.dtype} array of shape {ids.shape}; expected a 1-D array of integer caption ids")
    return ids


def plan_coco(root: Location, coco: CocoConfig) -> tuple[ConversionPlan, BottomUpFiles]:
    """Plans a COCO conversion from the annotations and split files (features are not opened here)."""
    require_folder(root, coco.features, "bottom-up features (bu_att/, bu_box/)")
    annotations, sizes = {}, {}
    for name in CAPTION_FILES:
        label = f"{coco.annotations}/{name}"
        data = read_json(root.join(coco.annotations, name), label)
        sizes.update({im["id"]: (im.get("width"), im.get("height")) for im in field(data, "images", label)})
        annotations.update({ann["id"]: (ann["image_id"], ann["caption"]) for ann in field(data, "annotations", label)})
    source = BottomUpFiles(coco.features)
    builder = PlanBuilder(coco.splits)
    for split, parts in coco.splits.items():
        for part in parts:
            label = f"{coco.annotations}/coco_{part}_ids.npy"
            for row, cid in enumerate(_load_ids(root.join(coco.annotations, f"coco_{part}_ids.npy"), label).tolist()):
                if cid not in annotations:
                    builder.reject("captions", Reject(str(cid), label, row, f"caption id {cid} is in no {' or '.join(CAPTION_FILES)}"))
                    continue
                image, text = annotations[cid]
                width, height = sizes.get(image, (None, None))
                builder.add_image(split, ImageItem(str(image), source.files(str(image))[0], 0, width, height), f"{label} row {row}")
                builder.add_caption(split, str(cid), str(image), text, label, row)
    builder.plan.unreferenced_captions = len(annotations) - len(builder.plan.caption_ids)
    return builder.plan, source
