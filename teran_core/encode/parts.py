"""The write stage: a block's encoded rows become one part file per shard under ``_staging/<stem>/``.

A part's name is the run id plus a hash of the shard rows it holds, so a write task that Ray runs
again writes the same file, and the result row sent to the driver is the same one again (the
driver keeps one). Rejects travel in the result rows; they are small.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teran_core.data.writer import write_parquet
from teran_core.encode.layout import SideLayout, stem_of

__all__ = ["PART_COLUMNS", "RESULT_SCHEMA", "write_parts"]

PART_COLUMNS = ["id", "length", "global", "tokens", "row"]  # the embedding schema plus each row's place in its shard
REJECT = pa.struct([("row", pa.int64()), ("id", pa.string()), ("reason", pa.string())])
ENCODER = pa.struct([("name", pa.string()), ("items", pa.int64()), ("seconds", pa.float64())])
RESULT_SCHEMA = pa.schema([
    ("kind", pa.string()),  # "images" or "captions"
    ("shard", pa.string()),  # input shard name
    ("part", pa.string()),  # file name under _staging/<stem>/; null when the block had no encoded row of the shard
    ("encoded", pa.int64()),  # rows in the part
    ("bytes", pa.int64()),  # size of the part
    ("rejects", pa.list_(REJECT)),
    ("encoders", pa.list_(ENCODER)),  # who encoded the part's rows, and for how long
])


def _encoder_stats(encoded: pa.Table) -> list[dict]:
    # one thread: a threaded float sum is added up in any order, and a retried write task must report the same
    stats = encoded.group_by("encoder", use_threads=False).aggregate([("encode_s", "sum"), ("encode_s", "count")])
    return [{"name": s["encoder"], "items": s["encode_s_count"], "seconds": s["encode_s_sum"]} for s in stats.to_pylist()]


def write_parts(batch: pa.Table, *, layouts: dict[str, SideLayout], run_id: str) -> pa.Table:
    """Writes the encoded rows of ``batch`` as parts; returns one :data:`RESULT_SCHEMA` row per shard.

    Args:
        batch: encoder output (``teran_core.encode.encoders.ENCODED_COLUMNS``), rejects included.
        layouts: the output side of each kind.
        run_id: unique per run, so parts of an earlier, killed run are never taken for this run's.
    """
    results = []
    keys = batch.select(["kind", "shard"]).group_by(["kind", "shard"]).aggregate([]).to_pylist()
    for kind, shard in ((k["kind"], k["shard"]) for k in keys):
        rows = batch.filter(pc.and_(pc.equal(batch.column("kind"), kind), pc.equal(batch.column("shard"), shard)))
        ok = rows.column("reason").is_null()
        encoded, rejected = rows.filter(ok), rows.filter(pc.invert(ok))
        part, size = None, 0
        if encoded.num_rows:
            digest = hashlib.sha1(np.sort(encoded.column("row").to_numpy()).tobytes()).hexdigest()[:16]
            part = f"{run_id}-{digest}.parquet"
            table = encoded.select(PART_COLUMNS)
            size = write_parquet(layouts[kind].staging(stem_of(shard)).join(part), table, table.schema).bytes
        results.append({
            "kind": kind, "shard": shard, "part": part, "encoded": encoded.num_rows, "bytes": size,
            "rejects": rejected.select(["row", "id", "reason"]).to_pylist(),
            "encoders": _encoder_stats(encoded) if encoded.num_rows else [],
        })
    return pa.Table.from_pylist(results, schema=RESULT_SCHEMA)
