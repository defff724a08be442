"""SCAN-style precomputed features: ``{split}_ims.npy`` (N, R, F) and ``{split}_caps.txt`` (5 lines per image).

There are no boxes: the boxes column is null, the manifest says ``has_boxes: false`` and the
encoders get zero boxes. Ids are made from the row: image ``{split}-{row}``, caption ``{split}-{line}``.
"""

from __future__ import annotations

import dataclasses

from teran_core.config import knob
from teran_core.data.convert.npy import npy_header
from teran_core.data.convert.plan import ConversionPlan, ConvertConfig, ImageItem, PlanBuilder
from teran_core.data.convert.sources import PrecompRows
from teran_core.data.convert.util import read_lines
from teran_core.data.errors import DataError
from teran_core.storage import Location

__all__ = ["PrecompConfig", "plan_precomp"]

CAPTIONS_PER_IMAGE = 5


@dataclasses.dataclass
class PrecompConfig:
    """Which file prefix makes each split (SCAN's COCO 5K test is "testall")."""

    splits: dict[str, str] = knob(factory=lambda: {"train": "train", "dev": "dev", "test": "test"})  # split -> file prefix: <prefix>_ims.npy, <prefix>_caps.txt


def plan_precomp(root: Location, precomp: PrecompConfig, cfg: ConvertConfig) -> tuple[ConversionPlan, PrecompRows]:
    """Plans a precomp conversion from the .npy headers and caption files (features are not read here)."""
    builder = PlanBuilder(precomp.splits)
    for split, prefix in precomp.splits.items():
        ims, caps = f"{prefix}_ims.npy", f"{prefix}_caps.txt"
        try:
            shape, _ = npy_header(root.join(ims), ims)
        except FileNotFoundError:
            raise DataError(f"missing split file {ims} ({root.join(ims).uri}); expected (N, regions, {cfg.feature_dim}) features") from None
        if len(shape) != 3 or shape[2] != cfg.feature_dim:
            raise DataError(f"{ims} has shape {shape}, expected (N, regions, {cfg.feature_dim}); set convert.feature_dim to the features' width")
        if shape[1] > cfg.max_regions:
            raise DataError(f"{ims} has {shape[1]} regions per image, more than convert.max_regions={cfg.max_regions}; raise it")
        lines = read_lines(root.join(caps), caps)
        if len(lines) != CAPTIONS_PER_IMAGE * shape[0]:
            raise DataError(f"{caps} has {len(lines)} lines for the {shape[0]} images of {ims}; expected {CAPTIONS_PER_IMAGE} per image, in image order")
        for row in range(shape[0]):
            builder.add_image(split, ImageItem(f"{prefix}-{row}", ims, row, None, None), f"{ims} row {row}")
        for line, text in enumerate(lines):
            builder.add_caption(split, f"{prefix}-{line}", f"{prefix}-{line // CAPTIONS_PER_IMAGE}", text, caps, line)
    return builder.plan, PrecompRows()
