"""Converters from the reference's input layouts (teran_reference.md §4) to teran datasets.

A conversion is planned from the annotations (:func:`plan_conversion`), its images are converted
chunk by chunk (:func:`convert_image_chunk`, one Ray task per output shard in ``jobs/convert.py``),
and :func:`finish_conversion` writes captions, splits, rejects and, last, ``dataset.json``.
"""

from __future__ import annotations

from teran_core.data.convert.chunk import ChunkResult, convert_image_chunk
from teran_core.data.convert.coco import CocoConfig, plan_coco
from teran_core.data.convert.f30k import F30kConfig, plan_f30k
from teran_core.data.convert.finish import finish_conversion
from teran_core.data.convert.plan import ConversionPlan, ConvertConfig, ImageChunk
from teran_core.data.convert.precomp import PrecompConfig, plan_precomp
from teran_core.data.convert.sources import BottomUpFiles, PrecompRows
from teran_core.data.manifest import DatasetManifest
from teran_core.data.writer import prepare_output
from teran_core.storage import Location

__all__ = [
    "ChunkResult", "CocoConfig", "ConversionPlan", "ConvertConfig", "F30kConfig", "ImageChunk", "PrecompConfig",
    "convert_dataset", "convert_image_chunk", "finish_conversion", "plan_conversion",
]


def plan_conversion(
    cfg: ConvertConfig, root: Location, coco: CocoConfig, f30k: F30kConfig, precomp: PrecompConfig
) -> tuple[ConversionPlan, BottomUpFiles | PrecompRows]:
    """The plan and feature source for ``cfg.format`` ("coco", "f30k" or "precomp") under ``root``.

    Raises:
        DataError: a missing or malformed annotation or split file, or a features folder that is absent.
    """
    if cfg.format == "coco":
        return plan_coco(root, coco)
    if cfg.format == "f30k":
        return plan_f30k(root, f30k)
    return plan_precomp(root, precomp, cfg)


def convert_dataset(
    cfg: ConvertConfig, root: Location, out: Location, coco: CocoConfig | None = None, f30k: F30kConfig | None = None,
    precomp: PrecompConfig | None = None, shard_mb: int = 128, overwrite: bool = False,
) -> tuple[DatasetManifest, dict]:
    """Converts in this process, chunk after chunk (``teran convert`` does the same with one Ray task per chunk).

    Returns:
        The manifest and the job summary (counts, rejects, unreferenced captions, splits).
    """
    plan, source = plan_conversion(cfg, root, coco or CocoConfig(), f30k or F30kConfig(), precomp or PrecompConfig())
    prepare_output(out, overwrite)
    results = [convert_image_chunk(chunk, source, root, out, cfg) for chunk in plan.chunks(cfg.shard_size(shard_mb))]
    return finish_conversion(plan, source, results, root, out, cfg, shard_mb)
