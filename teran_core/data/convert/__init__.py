"""Converters from the reference's input layouts (docs/formats.md, "Source layouts") to teran datasets.

A conversion is planned from the annotations (:func:`plan_conversion`), its images are converted
chunk by chunk (:func:`convert_image_chunk`, one task per output shard on an executor: Ray's in
``teran convert``), and :func:`finish_conversion` writes captions, splits, rejects and, last,
``dataset.json``. :func:`convert_dataset` is the whole driver.
"""

from __future__ import annotations

import logging

from teran_core.data.convert.chunk import ChunkResult, convert_image_chunk
from teran_core.data.convert.coco import CocoConfig, plan_coco
from teran_core.data.convert.f30k import F30kConfig, plan_f30k
from teran_core.data.convert.finish import finish_conversion
from teran_core.data.convert.plan import ConversionPlan, ConvertConfig, ImageChunk
from teran_core.data.convert.precomp import PrecompConfig, plan_precomp
from teran_core.data.convert.sources import BottomUpFiles, PrecompRows
from teran_core.data.manifest import DatasetManifest
from teran_core.data.writer import prepare_output
from teran_core.executor import Executor, LocalExecutor
from teran_core.progress import Progress
from teran_core.storage import Location

__all__ = [
    "ChunkResult", "CocoConfig", "ConversionPlan", "ConvertConfig", "F30kConfig", "ImageChunk", "PrecompConfig",
    "convert_dataset", "convert_image_chunk", "finish_conversion", "plan_conversion",
]

log = logging.getLogger("teran.convert")


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
    precomp: PrecompConfig | None = None, shard_mb: int = 128, overwrite: bool = False, executor: Executor | None = None,
) -> tuple[DatasetManifest, dict]:
    """Converts ``root`` (in ``cfg.format``'s layout) into a teran dataset at ``out``: one task per images
    shard on ``executor`` (None: here, chunk after chunk; ``teran convert`` passes Ray's), then the rest.

    Returns:
        The manifest and the job summary (counts, rejects, unreferenced captions, splits).
    """
    executor = executor or LocalExecutor()
    plan, source = plan_conversion(cfg, root, coco or CocoConfig(), f30k or F30kConfig(), precomp or PrecompConfig())
    log.info("planned %d images and %d captions from %s", len(plan.images), len(plan.caption_ids), root.uri)
    prepare_output(out, overwrite)
    chunks = plan.chunks(cfg.shard_size(shard_mb))
    # retries are safe: same input, atomic writes
    handles = [executor.submit(convert_image_chunk, chunk, source, root, out, cfg) for chunk in chunks]
    results = executor.gather(handles, Progress(log, "convert", len(chunks), "images shards", interval_s=10.0))
    return finish_conversion(plan, source, results, root, out, cfg, shard_mb)
