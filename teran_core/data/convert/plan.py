"""A conversion plan: every image and caption to convert, in order, with its split and where it came from.

Planning reads only annotations and headers, never features; the features are read per chunk by
:func:`teran_core.data.convert.chunk.convert_image_chunk`, one Ray task per output shard.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from teran_core.config import knob
from teran_core.data.errors import DataError, Reject
from teran_core.data.schema import image_row_bytes

__all__ = ["ConvertConfig", "ImageItem", "ImageChunk", "ConversionPlan", "PlanBuilder"]


@dataclasses.dataclass
class ConvertConfig:
    """What every converter shares."""

    format: Literal["coco", "f30k", "precomp"] = "coco"  # the source layout (docs/formats.md, "Source layouts"); the CLI's first argument
    root: str = ""  # the source folder: a local path or s3:// URI (the CLI's --root)
    feature_dim: int = knob(2048, ge=1)  # F of the source features; a file with another width is rejected
    feature_dtype: Literal["float16", "float32"] = "float32"  # storage type; float32 keeps the source values exactly
    max_regions: int = knob(36, ge=1)  # images with more regions are rejected (36 = features_36)
    images_per_shard: int = knob(0, ge=0)  # 0: as many max_regions images as fit in output.shard_mb
    max_rejected_fraction: float = knob(0.01, ge=0, le=1)  # more rejected images or captions than this fails the job (after writing rejects, before dataset.json)

    def check(self) -> list[str]:
        return [] if self.root else ["root: missing; set convert.root (the source folder: a local path or s3:// URI)"]

    def shard_size(self, shard_mb: int) -> int:
        if self.images_per_shard:
            return self.images_per_shard
        return max(1, shard_mb * 2**20 // image_row_bytes(self.feature_dim, self.feature_dtype, self.max_regions))


@dataclasses.dataclass(frozen=True)
class ImageItem:
    """One image to convert and where its features are."""

    image_id: str
    source: str  # the features file, relative to the root (what rejects name)
    row: int  # the image's row in that file (0 for one-image files)
    width: int | None  # pixels; None where unknown (then boxes cannot be normalised)
    height: int | None


@dataclasses.dataclass
class ImageChunk:
    """The images of one output shard."""

    index: int
    items: list[ImageItem]


@dataclasses.dataclass
class ConversionPlan:
    """Everything a conversion writes, in order. Captions are columns (there can be millions)."""

    images: list[ImageItem]
    caption_ids: list[str]
    caption_images: list[str]
    caption_texts: list[str]
    caption_sources: list[tuple[str, int]]  # (file relative to the root, row) of each caption
    splits: dict[str, tuple[list[str], list[str]]]  # split -> (image ids, caption ids), in order
    rejects: dict[str, list[Reject]]  # "images"/"captions" -> rows left out while planning
    unreferenced_captions: int  # source captions that no split lists (not part of the dataset)

    def chunks(self, size: int) -> list[ImageChunk]:
        return [ImageChunk(k, self.images[start:start + size]) for k, start in enumerate(range(0, len(self.images), size))]


class PlanBuilder:
    """Collects images and captions split by split; a caption id seen twice is rejected, not duplicated."""

    def __init__(self, split_names):
        self.plan = ConversionPlan([], [], [], [], [], {s: ([], []) for s in split_names}, {"images": [], "captions": []}, 0)
        self._image_split: dict[str, str] = {}
        self._captions: dict[str, tuple[str, int]] = {}

    def add_image(self, split: str, item: ImageItem, where: str) -> None:
        """Adds an image the first time a split mentions it; ``where`` says who mentions it, for errors."""
        seen = self._image_split.get(item.image_id)
        if seen is None:
            self._image_split[item.image_id] = split
            self.plan.images.append(item)
            self.plan.splits[split][0].append(item.image_id)
        elif seen != split:
            raise DataError(f"image {item.image_id} is in split {seen} and again in split {split} ({where}); "
                            "a split file must not share images with another")

    def add_caption(self, split: str, caption_id: str, image_id: str, text: str, source: str, row: int) -> None:
        first = self._captions.get(caption_id)
        if first is not None:
            self.reject("captions", Reject(caption_id, source, row, f"duplicate caption_id {caption_id!r}; first seen in {first[0]} row {first[1]}"))
            return
        self._captions[caption_id] = (source, row)
        plan = self.plan
        plan.caption_ids.append(caption_id)
        plan.caption_images.append(image_id)
        plan.caption_texts.append(text)
        plan.caption_sources.append((source, row))
        plan.splits[split][1].append(caption_id)

    def reject(self, kind: str, reject: Reject) -> None:
        self.plan.rejects[kind].append(reject)
