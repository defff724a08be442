"""Finishing a shard: merge its parts, prove exactly-once, write shard, rejects and marker (in that order).

The proof: the rows of the parts and the rejects, taken together, are 0..rows-1 of the input shard,
each exactly once. Otherwise nothing is written and the shard stays unfinished, to be encoded again.
Every file is written atomically; the marker last, so a marker always describes a complete shard.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from teran_core.data.errors import REJECT_SCHEMA
from teran_core.data.writer import write_parquet
from teran_core.embedding_set import EMBEDDINGS_FORMAT_VERSION, ROW_GROUP_ITEMS, embedding_schema
from teran_core.encode.layout import SideLayout
from teran_core.encode.plan import ShardTask, marker_problem

__all__ = ["ExactlyOnceError", "row_problems", "finalize_shard", "write_manifest"]


class ExactlyOnceError(RuntimeError):
    """A shard's rows did not arrive exactly once; it was not written."""


def row_problems(rows: np.ndarray, expected: int) -> list[str]:
    """What keeps ``rows`` from being 0..expected-1 each exactly once (empty when nothing does).

    Example:
        >>> row_problems(np.array([0, 2, 2]), 4)
        ['row(s) [1, 3] missing', 'row(s) [2] twice or more']
    """
    outside = rows[(rows < 0) | (rows >= expected)]
    counts = np.bincount(rows[(rows >= 0) & (rows < expected)], minlength=expected)
    problems = []
    for what, bad in (("missing", np.flatnonzero(counts == 0)), ("twice or more", np.flatnonzero(counts > 1)), ("outside the shard", outside)):
        if len(bad):
            problems.append(f"row(s) {bad[:10].tolist()}{' …' if len(bad) > 10 else ''} {what}")
    return problems


def finalize_shard(task: ShardTask, parts: list[str], rejects: list[dict], layout: SideLayout,
                   job_id: str, dim: int, dtype: str, global_dim: int | None = None) -> dict:
    """Writes one finished shard from its staged parts and returns its completion marker.

    Args:
        task: the input shard.
        parts: part file names under ``_staging/<stem>/``.
        rejects: {"row", "id", "reason"} for every rejected row.
        layout: the output side.
        job_id: recorded in the marker.
        dim, dtype, global_dim: the embedding schema (used as is when every row was rejected); global_dim
            None: D.

    Raises:
        ExactlyOnceError: the rows are not each input row exactly once.
    """
    done = layout.read_marker(task.stem)
    if marker_problem(task, done, layout.shard_size(task.stem), job_id) is None:
        return done  # an earlier attempt of this call finished (it was retried after its worker died)
    schema = embedding_schema(dim, dtype, global_dim)
    staging = layout.staging(task.stem)
    tables = [pq.read_table(staging.join(p).path, filesystem=staging.pyarrow_filesystem()) for p in parts]
    encoded = pa.concat_tables(tables) if tables else schema.append(pa.field("row", pa.int64())).empty_table()
    rows = np.concatenate([encoded.column("row").to_numpy(), np.array([r["row"] for r in rejects], np.int64)])
    problems = row_problems(rows, task.rows)
    if problems:
        raise ExactlyOnceError(f"{task.kind} shard {task.name}: {'; '.join(problems)}; it was not written, rerun to encode it again")
    reject_table = pa.table({
        "id": [r["id"] for r in rejects], "shard": [task.name] * len(rejects),
        "row": [r["row"] for r in rejects], "reason": [r["reason"] for r in rejects],
    }, schema=REJECT_SCHEMA).sort_by("row")
    if rejects:
        write_parquet(layout.rejects(task.stem), reject_table, REJECT_SCHEMA)
    else:
        layout.rejects(task.stem).remove()  # from an earlier attempt at this shard
    shard = write_parquet(layout.shard(task.stem), encoded.sort_by("row").select(schema.names).cast(schema), schema,
                          ROW_GROUP_ITEMS)
    marker = {
        "rows": shard.rows, "sha256": shard.sha256, "bytes": shard.bytes, "source": task.name,
        "source_sha256": task.sha256, "rejected": len(rejects), "job_id": job_id, "dim": dim,
    }
    layout.marker(task.stem).write_text(json.dumps(marker, indent=1) + "\n")
    staging.remove()
    return marker


def write_manifest(layout: SideLayout, tasks: list[ShardTask], markers: dict[str, dict], *,
                   model: dict, job_id: str, dim: int, dtype: str, global_kind: str, global_dim: int | None = None) -> dict:
    """Writes ``manifest.json`` for a side whose every shard has a marker (call it last).

    ``global_kind`` says what the ``global`` column holds: "slot0" (TERAN's own token 0) or
    "distilled" (a distilled head's vector, docs/distill.md); ``global_dim`` is that column's width (None: D).
    """
    manifest = {
        "format_version": EMBEDDINGS_FORMAT_VERSION, "kind": layout.kind, "dim": dim, "global_dim": global_dim or dim, "dtype": dtype,
        "model": model, "global_kind": global_kind, "job_id": job_id,
        "shards": [{"name": f"{t.stem}.parquet", "rows": markers[t.stem]["rows"], "sha256": markers[t.stem]["sha256"],
                    "bytes": markers[t.stem]["bytes"], "source": t.name} for t in tasks],
        "rejected": sum(markers[t.stem]["rejected"] for t in tasks),
    }
    layout.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
