"""The end of a conversion: captions, split files, rejects and, last, ``dataset.json``.

Runs in the job's driver after every images shard is written. Captions whose image was rejected
are rejected too (never left dangling), and the split files list only what was written.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from teran_core.data.convert.chunk import ChunkResult
from teran_core.data.convert.plan import ConversionPlan, ConvertConfig
from teran_core.data.convert.sources import BottomUpFiles, PrecompRows
from teran_core.data.errors import DataError, Reject
from teran_core.data.manifest import DatasetManifest
from teran_core.data.schema import CAPTION_SCHEMA, CAPTIONS, IMAGES, captions_table, shard_name
from teran_core.data.splits import write_split
from teran_core.data.validate import caption_row_problems
from teran_core.data.writer import write_parquet, write_rejects
from teran_core.storage import Location

__all__ = ["finish_conversion"]

CAPTION_BYTES = 128  # a generous caption row, for caption shard sizes


def _caption_rejects(plan: ConversionPlan, rejected_images: dict[str, str]) -> tuple[np.ndarray, list[Reject]]:
    """(mask of captions to keep, their rejects): captions of rejected images, then empty captions."""
    table = captions_table(plan.caption_ids, plan.caption_images, plan.caption_texts)
    problems = {j: f"its image {image} was rejected ({rejected_images[image]})"
                for j, image in enumerate(plan.caption_images) if image in rejected_images}
    for j, reason in caption_row_problems(table).items():
        problems.setdefault(j, reason)
    keep = np.ones(len(plan.caption_ids), bool)
    keep[list(problems)] = False
    rejects = [Reject(plan.caption_ids[j], *plan.caption_sources[j], problems[j]) for j in sorted(problems)]
    return keep, rejects


def _check_fraction(kind: str, rejected: int, total: int, cfg: ConvertConfig, root: Location) -> None:
    if total and rejected / total > cfg.max_rejected_fraction:
        raise DataError(
            f"{rejected} of {total} {kind} were rejected, more than convert.max_rejected_fraction={cfg.max_rejected_fraction}; "
            f"see {root.join('rejects', kind + '.parquet').uri} for each row and reason, fix the source or raise the fraction"
        )


def finish_conversion(plan: ConversionPlan, source: BottomUpFiles | PrecompRows, results: list[ChunkResult], root: Location,
                      out: Location, cfg: ConvertConfig, shard_mb: int) -> tuple[DatasetManifest, dict]:
    """Writes captions, splits and rejects, then ``dataset.json``; returns the manifest and a summary.

    Args:
        plan, source: what :func:`teran_core.data.convert.plan_conversion` returned.
        results: the :class:`ChunkResult` of every chunk, in chunk order.
        root, out: the source folder and the dataset folder.
        cfg: the conversion settings; shard_mb: the target shard size.

    Raises:
        DataError: more images or captions were rejected than ``cfg.max_rejected_fraction`` allows
            (the rejects files are written, dataset.json is not).
    """
    image_rejects = plan.rejects[IMAGES] + [r for result in results for r in result.rejects]
    rejected_images = {r.id: r.reason for r in image_rejects}
    keep, caption_rejects = _caption_rejects(plan, rejected_images)
    caption_rejects = plan.rejects[CAPTIONS] + caption_rejects
    kept = captions_table(plan.caption_ids, plan.caption_images, plan.caption_texts).filter(pa.array(keep))
    size = max(1, shard_mb * 2**20 // CAPTION_BYTES)
    caption_shards = [write_parquet(out.join(CAPTIONS, shard_name(CAPTIONS, k)), kept.slice(start, size), CAPTION_SCHEMA)
                      for k, start in enumerate(range(0, max(kept.num_rows, 1), size))]
    rejected_captions = {plan.caption_ids[j] for j in np.flatnonzero(~keep)}
    owner = dict(zip(plan.caption_ids, plan.caption_images))
    splits = {}
    for name, (image_ids, caption_ids) in plan.splits.items():
        images = [i for i in image_ids if i not in rejected_images]
        captions = [c for c in caption_ids if c not in rejected_captions]
        splits[name] = write_split(out, name, [pa.table({"image_id": pa.array(images, pa.string())})],
                                   [pa.table({"caption_id": pa.array(captions, pa.string()),
                                              "image_id": pa.array([owner[c] for c in captions], pa.string())})])
    rejects = {kind: info for kind, rows in ((IMAGES, image_rejects), (CAPTIONS, caption_rejects))
               if (info := write_rejects(out, kind, rows)) is not None}
    _check_fraction(IMAGES, len(image_rejects), len(plan.images) + len(plan.rejects[IMAGES]), cfg, out)
    _check_fraction(CAPTIONS, len(caption_rejects), len(plan.caption_ids) + len(plan.rejects[CAPTIONS]), cfg, out)
    manifest = DatasetManifest(
        feature_dim=cfg.feature_dim, feature_dtype=cfg.feature_dtype, max_regions=cfg.max_regions, has_boxes=source.has_boxes,
        shards={IMAGES: [r.shard for r in results], CAPTIONS: caption_shards}, splits=splits, rejects=rejects,
        source={"format": cfg.format, "root": root.uri},
    )
    manifest.save(out)
    summary = {
        "counts": manifest.counts, "rejected": {IMAGES: len(image_rejects), CAPTIONS: len(caption_rejects)},
        "reject_reasons": dict(Counter(r.reason.split(":")[0][:60] for r in image_rejects + caption_rejects).most_common(10)),
        "unreferenced_captions": plan.unreferenced_captions,
        "splits": {name: {"images": s.images.rows, "captions": s.captions.rows, "folds": len(s.folds)} for name, s in splits.items()},
    }
    return manifest, summary
