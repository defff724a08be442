"""What a run did, per side and in total: the summary printed at the end and saved as ``<emb>/summary.json``."""

from __future__ import annotations

import collections
import dataclasses
import re

__all__ = ["SideReport", "reason_kind", "build_summary"]


def reason_kind(reason: str) -> str:
    """A reject reason with its ids, numbers and lists blanked, so that like rejects count together.

    Example:
        >>> reason_kind("duplicate image_id '000000042'; first seen in images-00000.parquet row 3")
        "duplicate image_id '…'; first seen in images-N.parquet row N"
        >>> reason_kind("region 4 box [0.1, 1.5, 0.2, 0.3] is outside [0, 1] (float16 storage)")
        'region N box […] is outside […] (float16 storage)'
    """
    reason = re.sub(r"'[^']*'", "'…'", reason)
    reason = re.sub(r"\[[^\]]*\]", "[…]", reason)
    return re.sub(r"(?<!\w)\d+(\.\d+)?", "N", reason)  # numbers, not digits inside words (float16)


@dataclasses.dataclass
class SideReport:
    """One side of one run."""

    kind: str
    shards: int  # in the dataset
    skipped: int = 0  # finished by an earlier run of this job
    finished: int = 0  # finished by this run
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # shard -> why
    items: int = 0  # rows written by this run
    rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # reason kind -> rows
    encoders: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # name -> [items, busy seconds]
    bytes_read: int = 0  # input shards read
    bytes_written: int = 0  # embedding shards written
    bytes_staged: int = 0  # parts written on the way
    manifest: bool = False  # manifest.json written: every shard of the side is done

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["rejected"] = dict(self.rejected.most_common())
        data.pop("encoders")
        return data


def build_summary(identity: dict, job_id: str, reports: list[SideReport], wall_s: float,
                  first_items_s: float | None = None) -> dict:
    """The job summary: items, rejects by reason, wall time, items/s overall and per encoder, bytes.

    Args:
        first_items_s: seconds from the start to the first encoded rows (start-up: workers, models);
            ``steady_items_per_s`` counts only the time after it.

    Example:
        >>> report = SideReport("images", shards=1, finished=1, items=8, encoders={"h:1": [8, 2.0]})
        >>> s = build_summary({"model": {}}, "abc", [report], wall_s=4.0, first_items_s=2.0)
        >>> s["items_per_s"], s["steady_items_per_s"], s["encoders"]["images"]["h:1"]["items_per_s"]
        (2.0, 4.0, 4.0)
    """
    rejected = sum((r.rejected for r in reports), collections.Counter())
    items = sum(r.items for r in reports)
    return {
        "job_id": job_id,
        **identity,
        "complete": all(r.manifest for r in reports),
        "wall_s": round(wall_s, 3),
        "items": items,
        "items_per_s": round(items / max(wall_s, 1e-9), 3),
        "first_items_s": None if first_items_s is None else round(first_items_s, 3),
        "steady_items_per_s": None if first_items_s is None else round(items / max(wall_s - first_items_s, 1e-9), 3),
        "rejected": sum(rejected.values()),
        "rejects_by_reason": dict(rejected.most_common()),
        "encoders": {  # per kind and actor: items over the seconds spent encoding them
            r.kind: {name: {"items": int(n), "busy_s": round(s, 3), "items_per_s": round(n / max(s, 1e-9), 3)}
                     for name, (n, s) in sorted(r.encoders.items())}
            for r in reports
        },
        "bytes_read": sum(r.bytes_read for r in reports),
        "bytes_written": sum(r.bytes_written for r in reports),
        "bytes_staged": sum(r.bytes_staged for r in reports),
        "sides": {r.kind: r.as_dict() for r in reports},
    }
