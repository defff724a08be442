"""Where converters find region features: one file per image (bottom-up ``bu_att``/``bu_box``) or rows of one big ``.npy``.

A source returns, for each image, (features (R, F), pixel boxes (R, 4) or None, problem or None).
A problem confined to one image (a missing or unreadable file, a wrong shape) becomes a reject.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import zipfile
from typing import ClassVar

import numpy as np

from teran_core.data.convert.npy import read_npy_rows
from teran_core.data.convert.plan import ImageItem
from teran_core.storage import Location

__all__ = ["Loaded", "BottomUpFiles", "PrecompRows"]

Loaded = tuple[np.ndarray | None, np.ndarray | None, str | None]


def _shape_problem(features: np.ndarray, boxes: np.ndarray | None, feature_dim: int, label: str) -> str | None:
    if features.ndim != 2 or features.shape[1] != feature_dim:
        return f"features in {label} have shape {features.shape}, expected (regions, {feature_dim}) (convert.feature_dim)"
    if boxes is not None and boxes.shape != (features.shape[0], 4):
        return f"boxes have shape {boxes.shape} for {features.shape[0]} regions, expected ({features.shape[0]}, 4)"
    return None


def _read_npy(location: Location, key: str | None) -> np.ndarray:
    with location.open("rb") as f:
        data = np.load(io.BytesIO(f.read()), allow_pickle=False)
    return data[key] if key is not None else data


@dataclasses.dataclass(frozen=True)
class BottomUpFiles:
    """``<features>/bu_att/<image_id>.npz`` (key ``feat``, (R, F)) and ``<features>/bu_box/<image_id>.npy`` ((R, 4) pixels)."""

    features: str  # the features folder relative to the root, e.g. "features_36"
    has_boxes: ClassVar[bool] = True

    def files(self, image_id: str) -> tuple[str, str]:
        return f"{self.features}/bu_att/{image_id}.npz", f"{self.features}/bu_box/{image_id}.npy"

    def read(self, root: Location, items: list[ImageItem], feature_dim: int) -> list[Loaded]:
        loaded: list[Loaded] = []
        for item in items:
            att, box = self.files(item.image_id)
            try:
                features, boxes = _read_npy(root.join(att), "feat"), _read_npy(root.join(box), None)
            except FileNotFoundError as err:
                loaded.append((None, None, f"missing file: {err}"))
                continue
            except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                loaded.append((None, None, f"cannot read {att} or {box}: {type(err).__name__}: {err}"))
                continue
            loaded.append((features, boxes, _shape_problem(features, boxes, feature_dim, att)))
        return loaded


@dataclasses.dataclass(frozen=True)
class PrecompRows:
    """SCAN-style ``{split}_ims.npy`` of shape (N, R, F): image i is row i; there are no boxes."""

    has_boxes: ClassVar[bool] = False

    def read(self, root: Location, items: list[ImageItem], feature_dim: int) -> list[Loaded]:
        loaded: list[Loaded] = []
        for source, group in itertools.groupby(items, key=lambda item: item.source):
            group = list(group)
            rows = read_npy_rows(root.join(source), group[0].row, group[-1].row + 1, source)  # (n, R, F), items are consecutive rows
            for item in group:
                features = rows[item.row - group[0].row]
                loaded.append((features, None, _shape_problem(features, None, feature_dim, source)))
        return loaded
