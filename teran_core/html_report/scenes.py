"""How the report draws an image: its regions as boxes, over the picture, the synthetic scene or a blank canvas.

- Synthetic data: the scene is drawn from the dataset itself: background regions filled with their
  kind's colour (sky, grass, ...), objects with their colour attribute ("red car" is red; sizes and
  materials are grey), each labelled (``teran_core/data/synth/labels.py``).
- Converted data with ``report.images_root``: the original picture, as a JPEG thumbnail, under the boxes.
- Otherwise: the boxes on a blank canvas of the image's size.
"""

from __future__ import annotations

import base64
import io

import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.manifest import DatasetManifest
from teran_core.data.readers import read_shard
from teran_core.data.schema import CAPTIONS, IMAGES
from teran_core.data.synth.labels import read_scene_labels
from teran_core.data.synth.vocabulary import BACKGROUNDS
from teran_core.storage import Location

__all__ = ["dataset_metadata", "scene_shapes", "picture_data_uri", "THUMBNAIL_PX"]

THUMBNAIL_PX = 240  # longest side of an embedded picture
COLOURS = {  # every colour of ATTRIBUTE_FAMILIES["colour"] (a test checks)
    "red": "#d62728", "blue": "#1f5fbf", "green": "#2ca02c", "yellow": "#f2d024", "black": "#222222",
    "white": "#fafafa", "brown": "#8c564b", "pink": "#f49ac2",
}
BACKGROUND_COLOURS = dict(zip(BACKGROUNDS, ("#cfe8f7", "#b9dfa5", "#e2ddd5", "#d9c7a8", "#b5b5b5", "#9cc3e6", "#efe0b0", "#f3f6f9")))
OBJECT_GREY = "#9aa3ad"


def _take(table: pa.Table, column: str, ids: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column(column), value_set=pa.array(ids, pa.string())))


def dataset_metadata(dataset: Location, image_ids: list[str], caption_ids: list[str]) -> dict:
    """Drawing data of the given images and the text of the given captions, read from a teran dataset.

    Returns:
        {"images": id -> {"width", "height", "boxes" (normalised, or None), "labels" (or None)},
         "captions": id -> text}

    Example:
        >>> import tempfile
        >>> from teran_core.data.synth import SynthConfig, generate_dataset
        >>> m = generate_dataset(SynthConfig(images=8, feature_dim=4, test_images=4, dev_images=0), tempfile.mkdtemp())
        >>> meta = dataset_metadata(m.location, ["000000001"], ["000000001-0"])
        >>> image = meta["images"]["000000001"]
        >>> len(image["boxes"]) == len(image["labels"]), meta["captions"]["000000001-0"].endswith(".")
        (True, True)
    """
    manifest = DatasetManifest.load(dataset)
    images: dict[str, dict] = {}
    for shard in range(len(manifest.shards[IMAGES])):
        table = _take(read_shard(manifest, IMAGES, shard, ["image_id", "boxes", "width", "height"]), "image_id", image_ids)
        for row in table.to_pylist():
            boxes = [[round(v, 4) for v in box] for box in row["boxes"]] if row["boxes"] is not None else None
            images[row["image_id"]] = {"width": row["width"], "height": row["height"], "boxes": boxes, "labels": None}
    for image, labels in read_scene_labels(manifest, image_ids).items():
        images[image]["labels"] = labels
    captions: dict[str, str] = {}
    for shard in range(len(manifest.shards[CAPTIONS])):
        table = _take(read_shard(manifest, CAPTIONS, shard, ["caption_id", "text"]), "caption_id", caption_ids)
        captions.update(zip(table.column("caption_id").to_pylist(), table.column("text").to_pylist()))
    missing = sorted(set(image_ids) - set(images)) + sorted(set(caption_ids) - set(captions))
    if missing:
        raise ValueError(f"{len(missing)} evaluated item(s) are not in the dataset {dataset.uri}, e.g. {missing[:3]}; "
                         "paths.dataset must be the dataset the embeddings were made from")
    return {"images": images, "captions": captions}


def _fill(label: str | None) -> tuple[str, bool]:
    """(fill colour, is background) of a labelled region."""
    if label is None:
        return "none", False
    if label in BACKGROUND_COLOURS:
        return BACKGROUND_COLOURS[label], True
    return COLOURS.get(label.split()[0], OBJECT_GREY), False


def scene_shapes(image: dict) -> dict:
    """The picture's size and its regions as pixel rectangles, background first (largest first), then objects.

    Example:
        >>> shapes = scene_shapes({"width": 100, "height": 50, "boxes": [[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1]],
        ...                        "labels": ["red car", "sky"]})
        >>> [(r["region"], r["fill"], r["x"], r["h"]) for r in shapes["regions"]]
        [(1, '#cfe8f7', 0.0, 50.0), (0, '#d62728', 10.0, 20.0)]
    """
    width, height = image.get("width") or 640, image.get("height") or 480  # unknown size (precomp): a 4:3 canvas
    boxes, labels = image.get("boxes") or [], image.get("labels")
    regions = []
    for r, (x1, y1, x2, y2) in enumerate(boxes):
        label = labels[r] if labels else None
        fill, background = _fill(label)
        regions.append({"region": r, "label": label, "fill": fill, "background": background,
                        "x": round(float(x1 * width), 1), "y": round(float(y1 * height), 1),
                        "w": round(float((x2 - x1) * width), 1), "h": round(float((y2 - y1) * height), 1)})
    regions.sort(key=lambda r: (not r["background"], -r["w"] * r["h"] if r["background"] else r["region"]))
    return {"width": width, "height": height, "regions": regions}


def picture_data_uri(images_root: Location, name: str) -> str:
    """A JPEG thumbnail (longest side :data:`THUMBNAIL_PX`) of ``images_root/name`` as a data URI."""
    from PIL import Image

    with images_root.join(name).open("rb") as f:
        picture = Image.open(f)
        picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
