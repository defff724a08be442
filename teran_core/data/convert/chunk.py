"""Converting one chunk of images into one images shard: read, normalise boxes, validate, write.

Shape notation: R an image's regions, F the feature dimension. This is what ``jobs/convert.py`` runs
as one Ray task per output shard; it holds one chunk in memory.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from teran_core.data.convert.plan import ConvertConfig, ImageChunk
from teran_core.data.convert.sources import BottomUpFiles, PrecompRows
from teran_core.data.errors import Reject
from teran_core.data.manifest import ShardInfo
from teran_core.data.schema import IMAGES, image_schema, images_table, shard_name
from teran_core.data.validate import image_row_problems
from teran_core.data.writer import write_parquet
from teran_core.storage import Location

__all__ = ["ChunkResult", "convert_image_chunk", "ROW_GROUP_IMAGES"]

ROW_GROUP_IMAGES = 64  # about 19 MB of 36 x 2048 float32 regions per row group: readers stream in these steps


@dataclasses.dataclass
class ChunkResult:
    """The shard a chunk became and the images it left out."""

    shard: ShardInfo
    rejects: list[Reject]


def normalise_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel x1, y1, x2, y2 -> fractions of the image size, as the reference (``boxes / tile((w, h), 2)``).

    Example:
        >>> normalise_boxes(np.array([[0.0, 0.0, 320.0, 240.0]]), 640, 480).tolist()
        [[0.0, 0.0, 0.5, 0.5]]
    """
    return (boxes.astype(np.float64) / np.tile([width, height], 2)).astype(np.float32)


def convert_image_chunk(
    chunk: ImageChunk, source: BottomUpFiles | PrecompRows, root: Location, out: Location, cfg: ConvertConfig
) -> ChunkResult:
    """Reads the chunk's features from ``root`` and writes ``images/images-<chunk.index>.parquet`` under ``out``.

    Every image of the chunk is either in the shard or in the result's rejects (with the source file,
    its row there and the reason).
    """
    rejects, kept, features, boxes = [], [], [], []
    for item, (feats, pixel_boxes, problem) in zip(chunk.items, source.read(root, chunk.items, cfg.feature_dim)):
        if problem is None and pixel_boxes is not None and not (item.width and item.height):
            problem = f"image size {item.width}x{item.height} cannot normalise its pixel boxes; give the image's width and height"
        if problem is not None:
            rejects.append(Reject(item.image_id, item.source, item.row, problem))
            continue
        kept.append(item)
        features.append(feats)
        if pixel_boxes is not None:
            boxes.append(normalise_boxes(pixel_boxes, item.width, item.height))
    table = images_table(
        [item.image_id for item in kept], np.array([len(f) for f in features], np.int64),
        np.concatenate(features) if features else np.empty((0, cfg.feature_dim), np.float32),  # (sum R, F)
        (np.concatenate(boxes) if boxes else np.empty((0, 4), np.float32)) if source.has_boxes else None,
        [item.width for item in kept], [item.height for item in kept], cfg.feature_dtype,
    )
    problems = image_row_problems(table, feature_dim=cfg.feature_dim, max_regions=cfg.max_regions, boxes_required=source.has_boxes)
    rejects += [Reject(kept[i].image_id, kept[i].source, kept[i].row, reason) for i, reason in sorted(problems.items())]
    valid = np.ones(table.num_rows, bool)
    valid[list(problems)] = False
    shard = write_parquet(out.join(IMAGES, shard_name(IMAGES, chunk.index)), table.filter(pa.array(valid)),
                          image_schema(cfg.feature_dim, cfg.feature_dtype), ROW_GROUP_IMAGES)
    return ChunkResult(shard, rejects)
