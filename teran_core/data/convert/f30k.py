"""Flickr30K as the reference reads it (docs/formats.md, "Source layouts"): the Karpathy json and bottom-up features.

Layout under the root::

    annotations/dataset_flickr30k.json   (Karpathy: images[i] with split, sentences[k] with raw and sentid)
    features_36/bu_att/<i>.npz, features_36/bu_box/<i>.npy   (i = the image's index in that json)
    sizes.pkl   (a list of (width, height) indexed like the json images; or .json / .npy; or width/height in the json)

Image ids are the json index i as a string, caption ids the sentence ids.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle

import numpy as np

from teran_core.config import knob
from teran_core.data.convert.plan import ConversionPlan, ImageItem, PlanBuilder
from teran_core.data.convert.sources import BottomUpFiles
from teran_core.data.convert.util import field, read_json, require_folder
from teran_core.data.errors import DataError
from teran_core.storage import Location

__all__ = ["F30kConfig", "plan_f30k", "load_sizes"]


@dataclasses.dataclass
class F30kConfig:
    """Where the Flickr30K files are, relative to the root, and which json splits make each split."""

    json: str = "annotations/dataset_flickr30k.json"  # the Karpathy split file
    features: str = "features_36"  # folder holding bu_att/ and bu_box/
    sizes: str = "sizes.pkl"  # (width, height) per json image: .pkl (plain list of tuples), .json or .npy; if absent, the json's width/height
    splits: dict[str, list[str]] = knob(factory=lambda: {"train": ["train", "restval"], "dev": ["val"], "test": ["test"]})  # split -> the json "split" values it takes


class _PlainData(pickle.Unpickler):
    """Unpickles lists, tuples and numbers only: no class is ever looked up, so no code can run."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed; sizes.pkl must be a plain list of (width, height) int tuples")


def load_sizes(location: Location, label: str) -> list[tuple[int, int]] | None:
    """(width, height) per image from a sizes file, or None when it does not exist.

    Example:
        >>> import tempfile
        >>> from teran_core.storage import resolve
        >>> loc = resolve(tempfile.mkdtemp()).join("sizes.pkl")
        >>> loc.write_bytes(pickle.dumps([(500, 375), (333, 500)]))
        >>> load_sizes(loc, "sizes.pkl")
        [(500, 375), (333, 500)]
    """
    try:
        raw = location.read_bytes()
    except FileNotFoundError:
        return None
    try:
        if label.endswith(".json"):
            sizes = json.loads(raw)
        elif label.endswith(".npy"):
            sizes = np.load(io.BytesIO(raw), allow_pickle=False).tolist()
        else:
            sizes = _PlainData(io.BytesIO(raw)).load()
        return [(int(w), int(h)) for w, h in sizes]
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, json.JSONDecodeError) as err:
        raise DataError(f"sizes file {label} ({location.uri}) is not a list of (width, height) pairs: {err}") from None


def plan_f30k(root: Location, f30k: F30kConfig) -> tuple[ConversionPlan, BottomUpFiles]:
    """Plans a Flickr30K conversion from the Karpathy json (features are not opened here)."""
    require_folder(root, f30k.features, "bottom-up features (bu_att/, bu_box/)")
    images = field(read_json(root.join(f30k.json), f30k.json), "images", f30k.json)
    sizes = load_sizes(root.join(f30k.sizes), f30k.sizes)
    if sizes is not None and len(sizes) != len(images):
        raise DataError(f"sizes file {f30k.sizes} has {len(sizes)} entries for the {len(images)} images of {f30k.json}")
    if sizes is None and images and not {"width", "height"} <= images[0].keys():
        raise DataError(f"missing sizes file {f30k.sizes} ({root.join(f30k.sizes).uri}) and {f30k.json} has no width/height: "
                        "the pixel boxes cannot be normalised; build the sizes file from the images")
    split_of = {part: split for split, parts in f30k.splits.items() for part in parts}
    source = BottomUpFiles(f30k.features)
    builder = PlanBuilder(f30k.splits)
    for i, image in enumerate(images):
        sentences = field(image, "sentences", f"{f30k.json} images[{i}]")
        split = split_of.get(image.get("split"))
        if split is None:
            builder.plan.unreferenced_captions += len(sentences)
            continue
        width, height = sizes[i] if sizes is not None else (image["width"], image["height"])
        builder.add_image(split, ImageItem(str(i), source.files(str(i))[0], 0, width, height), f"{f30k.json} images[{i}]")
        for sentence in sentences:
            builder.add_caption(split, str(sentence["sentid"]), str(i), sentence["raw"], f30k.json, i)
    return builder.plan, source
