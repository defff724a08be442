"""The driver's ledger: every write-stage result row is counted against its shard, exactly once.

A shard is ready to finalise when its encoded rows plus its rejects equal its row count in
dataset.json. A result row seen twice (Ray ran a write task again) is kept once; a shard error, or
more rows than the shard has, fails that shard alone.
"""

from __future__ import annotations

import collections
import dataclasses
import time

import pyarrow as pa

from teran_core.encode.plan import ShardTask
from teran_core.encode.read import SHARD_ERROR_ROW

__all__ = ["ReadyShard", "ShardTracker"]


@dataclasses.dataclass
class ReadyShard:
    """A shard whose every row is accounted for: the part files to merge and the rejects to record."""

    task: ShardTask
    parts: list[str]
    rejects: list[dict]  # {"row", "id", "reason"}


@dataclasses.dataclass
class _Ledger:
    task: ShardTask
    parts: list[str] = dataclasses.field(default_factory=list)
    rejects: list[dict] = dataclasses.field(default_factory=list)
    encoded: int = 0
    seen: set = dataclasses.field(default_factory=set)
    open: bool = True


class ShardTracker:
    """Counts result rows per shard and per encoder.

    Example:
        >>> from teran_core.storage import resolve
        >>> task = ShardTask("images", "images-00000.parquet", 3, "ab", 10, resolve("/d/images/images-00000.parquet"))
        >>> tracker = ShardTracker([task])
        >>> row = {"kind": "images", "shard": task.name, "part": "p.parquet", "encoded": 2, "bytes": 5,
        ...        "rejects": [{"row": 1, "id": "b", "reason": "zero regions"}], "encoders": []}
        >>> [ready.task.name for ready in tracker.add(pa.Table.from_pylist([row]))]
        ['images-00000.parquet']
    """

    def __init__(self, todo: list[ShardTask]):
        self.ledgers = {(t.kind, t.name): _Ledger(t) for t in todo}
        self.failed: dict[tuple[str, str], str] = {}  # (kind, shard name) -> why
        self.encoders: dict[str, dict[str, list[float]]] = collections.defaultdict(dict)  # kind -> encoder -> [items, busy s]
        self.items: collections.Counter = collections.Counter()  # kind -> rows encoded
        self.staged_bytes: collections.Counter = collections.Counter()  # kind -> part bytes
        self.started = time.monotonic()
        self.first_items_at: float | None = None  # when the first encoded rows arrived (start-up ends)

    def add(self, results: pa.Table) -> list[ReadyShard]:
        """Counts a batch of result rows; returns the shards that just became complete."""
        ready = []
        for result in results.to_pylist():
            ledger = self.ledgers[result["kind"], result["shard"]]
            key = (result["part"], tuple(sorted(r["row"] for r in result["rejects"])))
            if key in ledger.seen or not ledger.open:
                continue  # a write task run again, or a shard already decided
            ledger.seen.add(key)
            self._count(result)
            error = next((r["reason"] for r in result["rejects"] if r["row"] == SHARD_ERROR_ROW), None)
            if error is not None:
                self.fail(ledger.task, error)
                continue
            ledger.parts += [result["part"]] if result["part"] else []
            ledger.rejects += result["rejects"]
            ledger.encoded += result["encoded"]
            arrived = ledger.encoded + len(ledger.rejects)
            if arrived == ledger.task.rows:
                ledger.open = False
                ready.append(ReadyShard(ledger.task, ledger.parts, ledger.rejects))
            elif arrived > ledger.task.rows:
                self.fail(ledger.task, f"{arrived} rows arrived for a shard of {ledger.task.rows}: some were delivered twice; "
                                       "nothing of it was written, rerun to encode it again")
        return ready

    def _count(self, result: dict) -> None:
        if result["encoded"] and self.first_items_at is None:
            self.first_items_at = time.monotonic()
        self.items[result["kind"]] += result["encoded"]
        self.staged_bytes[result["kind"]] += result["bytes"]
        for stat in result["encoders"]:
            totals = self.encoders[result["kind"]].setdefault(stat["name"], [0, 0.0])
            totals[0] += stat["items"]
            totals[1] += stat["seconds"]

    def fail(self, task: ShardTask, reason: str) -> None:
        self.ledgers[task.kind, task.name].open = False
        self.failed[task.kind, task.name] = reason

    def unfinished(self) -> list[ShardTask]:
        """Shards still waiting for rows (after the pipeline ended: rows were lost)."""
        return [ledger.task for ledger in self.ledgers.values() if ledger.open]

    def arrived(self, task: ShardTask) -> int:
        ledger = self.ledgers[task.kind, task.name]
        return ledger.encoded + len(ledger.rejects)

    def rate(self) -> float:
        """Items encoded per second since the tracker started."""
        return sum(self.items.values()) / max(time.monotonic() - self.started, 1e-9)
