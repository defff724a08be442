"""The pipeline's three stages and their arguments: what ``jobs/encode.py`` hands to Ray Data.

read (CPU tasks, one per shard) -> encode (actor pool, one model per actor) -> write parts (CPU tasks).
Image and caption shards flow through the same stages, so one actor pool serves both and the
accelerators never wait for a second pool to start. :meth:`Stages.iter_local` runs the very same
callables in this process, without Ray.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pyarrow as pa

from teran_core.data.check import DatasetCheck
from teran_core.encode.config import EncodeSection
from teran_core.encode.encoders import TeranEncoder
from teran_core.encode.layout import SideLayout
from teran_core.encode.model_spec import ModelInfo, ModelSpec
from teran_core.encode.parts import write_parts
from teran_core.encode.plan import SidePlan
from teran_core.encode.read import ReadSpec, read_shards

__all__ = ["Stages", "build_stages"]


@dataclasses.dataclass
class Stages:
    """Everything the pipeline needs; every field pickles."""

    items: list[dict]  # one per shard to encode: kind, name, sha256, known_rows, known_reasons
    read: ReadSpec
    encoder_kwargs: dict  # TeranEncoder's constructor arguments
    layouts: dict[str, SideLayout]
    run_id: str
    sizes: EncodeSection
    largest_shard: int = 0  # bytes of the largest shard to read (a read task holds one whole shard)
    encoder: type = TeranEncoder

    @property
    def read_memory(self) -> int:
        """Heap a read task needs: the shard's bytes plus its decoded batches, with room to spare."""
        return 4 * self.largest_shard + 64 * 2**20

    @property
    def write_kwargs(self) -> dict:
        return {"layouts": self.layouts, "run_id": self.run_id}

    def iter_local(self) -> Iterator[pa.Table]:
        """The write stage's result blocks, computed in this process (tests and debugging)."""
        encoder = self.encoder(**self.encoder_kwargs)
        for item in self.items:
            for block in read_shards(pa.Table.from_pylist([item]), spec=self.read):
                for start in range(0, block.num_rows, self.sizes.batch_size):
                    yield write_parts(encoder(block.slice(start, self.sizes.batch_size)), **self.write_kwargs)


def build_stages(plans: list[SidePlan], check: DatasetCheck, spec: ModelSpec, info: ModelInfo,
                 sizes: EncodeSection, dtype: str, run_id: str) -> Stages:
    """The stages that encode every plan's ``todo``, with the dataset check's known rejects of each shard."""
    manifest = check.manifest
    items = []
    for task in (t for plan in plans for t in plan.todo):
        known = check.known(task.name)
        items.append({"kind": task.kind, "name": task.name, "sha256": task.sha256,
                      "known_rows": list(known), "known_reasons": list(known.values())})
    read = ReadSpec(
        dataset=manifest.location, batch_rows=sizes.prepare_batch_size, feature_dim=manifest.feature_dim,
        feature_dtype=manifest.feature_dtype, max_regions=manifest.max_regions, has_boxes=manifest.has_boxes,
        collator=info.collator,
    )
    encoder_kwargs = {
        "model": spec, "dtype": dtype, "precision": sizes.resolved_precision(),
        "device": sizes.resolved_device(), "threads": sizes.torch_threads,
    }
    largest = max((t.bytes for plan in plans for t in plan.todo), default=0)
    return Stages(items, read, encoder_kwargs, {p.kind: p.layout for p in plans}, run_id, sizes, largest)
