"""What bad input turns into: a :class:`DataError` that stops a job, or a :class:`Reject` row with a reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pyarrow as pa

__all__ = ["DataError", "Reject", "REJECT_SCHEMA", "rejects_table"]

# One row per rejected item; ``shard`` and ``row`` say where it was (see docs/formats.md).
REJECT_SCHEMA = pa.schema([("id", pa.string()), ("shard", pa.string()), ("row", pa.int64()), ("reason", pa.string())])


class DataError(ValueError):
    """A structural problem that stops a job: a corrupt shard, a wrong schema, a missing split file.

    The message names the file (and the row where there is one), what was found, what was expected
    and how to fix it. Problems confined to one row are :class:`Reject` rows instead.
    """


@dataclasses.dataclass(frozen=True)
class Reject:
    """One row a job left out, and why.

    Example:
        >>> Reject("42", "images-00000.parquet", 7, "zero regions").reason
        'zero regions'
    """

    id: str  # the row's image_id or caption_id ("" when the row has none)
    shard: str  # the dataset shard, or for a converter the source file relative to its root
    row: int  # the row within that shard or source file
    reason: str


def rejects_table(rejects: Iterable[Reject]) -> pa.Table:
    """The rejects as a table with :data:`REJECT_SCHEMA`.

    Example:
        >>> rejects_table([Reject("a", "s.parquet", 3, "empty caption")]).to_pylist()
        [{'id': 'a', 'shard': 's.parquet', 'row': 3, 'reason': 'empty caption'}]
    """
    rows = list(rejects)
    return pa.table(
        {
            "id": pa.array([r.id for r in rows], pa.string()),
            "shard": pa.array([r.shard for r in rows], pa.string()),
            "row": pa.array([r.row for r in rows], pa.int64()),
            "reason": pa.array([r.reason for r in rows], pa.string()),
        },
        schema=REJECT_SCHEMA,
    )
