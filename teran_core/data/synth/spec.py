"""What a synthetic dataset is made of: :class:`SynthConfig`, its shards, splits and ids."""

from __future__ import annotations

import dataclasses
from typing import Literal

from teran_core.config import knob
from teran_core.data.schema import image_row_bytes
from teran_core.data.synth.vocabulary import ATTRIBUTES

__all__ = ["SynthConfig", "image_id", "caption_id", "CAPTIONS_PER_IMAGE", "GRID_CELLS"]

CAPTIONS_PER_IMAGE = 5
GRID_CELLS = 12  # objects sit in distinct cells of a 4 x 3 grid, so that relations are unambiguous


def image_id(index: int) -> str:
    """The id of synthetic image ``index``.

    Example:
        >>> image_id(42), caption_id(42, 3)
        ('000000042', '000000042-3')
    """
    return f"{index:09d}"


def caption_id(index: int, k: int) -> str:
    """The id of caption ``k`` (0..4) of synthetic image ``index``."""
    return f"{index:09d}-{k}"


@dataclasses.dataclass
class SynthConfig:
    """A grounded synthetic dataset; the same config and seed always give the same bytes.

    Images come in hard-negative groups of ``group_size``: the same objects, background and region
    count, but the objects' attributes rotated between them and the objects laid out anew. A
    bag-of-objects embedding sees the same image ``group_size`` times; word-region alignment of
    "red car" does not.
    """

    images: int = knob(10000, ge=1)  # images in the dataset
    seed: int = knob(0, ge=0)  # fixes prototypes, scenes, captions and noise
    feature_dim: int = knob(2048, ge=4)  # F; the reference's bottom-up features are 2048
    feature_dtype: Literal["float16", "float32"] = "float16"  # storage type of features
    noise: float = knob(1.0, ge=0)  # std of the Gaussian noise on each region feature (prototype entries have std 1): higher = harder
    group_size: int = knob(4, ge=1, le=10)  # images per hard-negative group (1 = no hard negatives): larger = harder for global embeddings
    min_objects: int = knob(3, ge=1, le=GRID_CELLS)  # objects per image at least (at least group_size in a group of several)
    max_objects: int = knob(10, ge=1, le=GRID_CELLS)  # objects per image at most
    max_regions: int = knob(36, ge=2)  # regions per image at most (objects + background), as features_36
    full_fraction: float = knob(0.5, ge=0, le=1)  # share of groups with exactly max_regions regions; the rest have fewer
    test_images: int = knob(1000, ge=0)  # the first images form the test split (the demo's 1K test)
    dev_images: int = knob(1000, ge=0)  # the next ones the dev split; the rest is train
    images_per_shard: int = knob(0, ge=0)  # 0: as many as fit in output.shard_mb

    def check(self) -> list[str]:
        problems = []
        if self.min_objects > self.max_objects:
            problems.append(f"min_objects: got {self.min_objects}, expected at most max_objects ({self.max_objects})")
        if self.group_size > self.max_objects:
            problems.append(f"group_size: got {self.group_size}, expected at most max_objects ({self.max_objects}): "
                            "each member of a group needs its own attribute for every object")
        if self.max_objects > len(ATTRIBUTES):
            problems.append(f"max_objects: got {self.max_objects}, expected at most {len(ATTRIBUTES)} (one distinct attribute per object)")
        if self.max_objects >= self.max_regions:
            problems.append(f"max_regions: got {self.max_regions}, expected more than max_objects ({self.max_objects}): every image has background")
        if self.test_images + self.dev_images > self.images:
            problems.append(f"test_images + dev_images: got {self.test_images} + {self.dev_images}, expected at most images ({self.images})")
        for name in ("test_images", "dev_images"):
            if getattr(self, name) % self.group_size:
                problems.append(f"{name}: got {getattr(self, name)}, expected a multiple of group_size ({self.group_size}) "
                                "so that hard-negative groups stay inside one split")
        return problems

    def shard_size(self, shard_mb: int = 128) -> int:
        """Images per shard: ``images_per_shard``, or as many average images as fit in ``shard_mb`` MiB."""
        if self.images_per_shard:
            return self.images_per_shard
        mean_regions = self.full_fraction * self.max_regions + (1 - self.full_fraction) * (self.max_regions + self.max_objects) / 2
        return max(1, shard_mb * 2**20 // image_row_bytes(self.feature_dim, self.feature_dtype, mean_regions))

    def shard_ranges(self, shard_mb: int = 128) -> list[tuple[int, int]]:
        """[start, stop) image indices of every shard.

        Example:
            >>> SynthConfig(images=10, images_per_shard=4).shard_ranges()
            [(0, 4), (4, 8), (8, 10)]
        """
        size = self.shard_size(shard_mb)
        return [(start, min(start + size, self.images)) for start in range(0, self.images, size)]

    def split_ranges(self) -> dict[str, tuple[int, int]]:
        """[start, stop) image indices of each split: test first, then dev, then train (empty ones left out).

        Example:
            >>> SynthConfig(images=10, test_images=4, dev_images=0, group_size=2).split_ranges()
            {'test': (0, 4), 'train': (4, 10)}
        """
        bounds = {"test": (0, self.test_images), "dev": (self.test_images, self.test_images + self.dev_images),
                  "train": (self.test_images + self.dev_images, self.images)}
        return {name: (a, b) for name, (a, b) in bounds.items() if b > a}
