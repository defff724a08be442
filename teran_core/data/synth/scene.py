"""One synthetic image's layout: objects with attributes in distinct grid cells, and background regions.

Image ``i`` belongs to hard-negative group ``i // group_size``. The group fixes the objects, their
attribute set, the background kinds, the region count and the image size; member ``i % group_size``
rotates the attributes over the objects (so no object keeps its attribute within a group) and draws
its own layout. Boxes are normalised x1, y1, x2, y2 and lie inside their object's grid cell, so
"left of", "above" and "next to" read straight off the cells.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from teran_core.data.synth.spec import GRID_CELLS, SynthConfig
from teran_core.data.synth.vocabulary import ATTRIBUTES, BACKGROUNDS, OBJECTS

__all__ = ["Scene", "make_scene", "GRID_COLUMNS", "GRID_ROWS"]

GRID_COLUMNS, GRID_ROWS = 4, 3
GROUP_STREAM, LAYOUT_STREAM = 1, 2
IMAGE_SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (800, 600), (427, 640))


@dataclasses.dataclass
class Scene:
    """Ground truth of one image. Regions are stored in the order ``order`` over [objects..., background...]."""

    index: int
    width: int
    height: int
    objects: np.ndarray  # (n,) object class ids
    attributes: np.ndarray  # (n,) attribute ids, distinct within the image
    cells: np.ndarray  # (n,) grid cell of each object, row-major over GRID_ROWS x GRID_COLUMNS
    object_boxes: np.ndarray  # (n, 4)
    backgrounds: np.ndarray  # (m,) background kind ids
    background_boxes: np.ndarray  # (m, 4)
    order: np.ndarray  # (n + m,) permutation: stored region r is region order[r] of [objects, background]

    @property
    def n_regions(self) -> int:
        return len(self.order)

    def regions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Stored regions as (kinds 0 object / 1 background, class or background ids, attribute ids, boxes (R, 4))."""
        n, m = len(self.objects), len(self.backgrounds)
        kinds = np.concatenate([np.zeros(n, np.int64), np.ones(m, np.int64)])[self.order]
        classes = np.concatenate([self.objects, self.backgrounds])[self.order]
        attributes = np.concatenate([self.attributes, np.zeros(m, np.int64)])[self.order]
        boxes = np.concatenate([self.object_boxes, self.background_boxes])[self.order]
        return kinds, classes, attributes, boxes

    def labels(self) -> list[str]:
        """What each stored region shows, in stored order: "red car" for an object, "sky" for background.

        Example:
            >>> scene = make_scene(SynthConfig(images=4, test_images=4, dev_images=0), 0)
            >>> labels = scene.labels()
            >>> len(labels) == scene.n_regions, sum(" " in label for label in labels) == len(scene.objects)
            (True, True)
        """
        kinds, classes, attributes, _ = self.regions()
        return [f"{ATTRIBUTES[a]} {OBJECTS[c]}" if kind == 0 else BACKGROUNDS[c]
                for kind, c, a in zip(kinds.tolist(), classes.tolist(), attributes.tolist())]

    def relation(self, a: int, b: int, rng: np.random.Generator) -> str:
        """How object ``a`` lies relative to object ``b``, as a phrase ("to the left of", "above", ...)."""
        (row_a, col_a), (row_b, col_b) = divmod(int(self.cells[a]), GRID_COLUMNS), divmod(int(self.cells[b]), GRID_COLUMNS)
        if row_a == row_b and abs(col_a - col_b) == 1 and rng.random() < 0.5:
            return "next to"
        if abs(col_a - col_b) >= abs(row_a - row_b):
            return "to the left of" if col_a < col_b else "to the right of"
        return "above" if row_a < row_b else "below"

    def describe_object(self, k: int) -> tuple[str, str]:
        """(attribute word, object word) of object ``k``."""
        return ATTRIBUTES[self.attributes[k]], OBJECTS[self.objects[k]]


def _object_boxes(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cell_w, cell_h = 1 / GRID_COLUMNS, 1 / GRID_ROWS
    rows, cols = np.divmod(cells, GRID_COLUMNS)
    w = rng.uniform(0.45, 0.9, len(cells)) * cell_w
    h = rng.uniform(0.45, 0.9, len(cells)) * cell_h
    x1 = cols * cell_w + rng.uniform(0, 1, len(cells)) * (cell_w - w)
    y1 = rows * cell_h + rng.uniform(0, 1, len(cells)) * (cell_h - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def _background_boxes(count: int, rng: np.random.Generator) -> np.ndarray:
    w, h = rng.uniform(0.3, 1.0, count), rng.uniform(0.2, 1.0, count)
    x1, y1 = rng.uniform(0, 1, count) * (1 - w), rng.uniform(0, 1, count) * (1 - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def make_scene(cfg: SynthConfig, index: int) -> Scene:
    """The layout of image ``index``: a pure function of the config and the index.

    Example:
        >>> cfg = SynthConfig(images=8, group_size=4, test_images=4, dev_images=4)
        >>> a, b = make_scene(cfg, 0), make_scene(cfg, 1)
        >>> sorted(a.objects) == sorted(b.objects), bool((a.attributes != b.attributes).all())
        (True, True)
    """
    group, member = divmod(index, cfg.group_size)
    grng = np.random.default_rng([cfg.seed, GROUP_STREAM, group])
    n = int(grng.integers(max(cfg.min_objects, cfg.group_size if cfg.group_size > 1 else 1), cfg.max_objects + 1))
    objects = grng.choice(len(OBJECTS), n, replace=False)
    attribute_set = grng.choice(len(ATTRIBUTES), n, replace=False)
    kinds = grng.choice(len(BACKGROUNDS), int(grng.integers(1, 3)), replace=False)
    full = grng.random() < cfg.full_fraction or n + 1 >= cfg.max_regions
    n_regions = cfg.max_regions if full else int(grng.integers(n + 1, cfg.max_regions))
    width, height = IMAGE_SIZES[int(grng.integers(len(IMAGE_SIZES)))]
    backgrounds = kinds[grng.integers(len(kinds), size=n_regions - n)]
    rng = np.random.default_rng([cfg.seed, LAYOUT_STREAM, index])
    cells = rng.choice(GRID_CELLS, n, replace=False)
    return Scene(
        index=index, width=width, height=height, objects=objects,
        attributes=np.roll(attribute_set, member),  # member k shifts every object's attribute by k places
        cells=cells, object_boxes=_object_boxes(cells, rng),
        backgrounds=backgrounds, background_boxes=_background_boxes(len(backgrounds), rng),
        order=rng.permutation(n_regions),
    )
