"""Which input shards a run encodes: those without a valid completion marker.

A marker proves its shard done only if it was written by this job (same job id), for the input
shard's current bytes (``source_sha256`` equals the dataset manifest's sha256) and the embedding
shard it describes is still there with the size it recorded. Anything else is encoded again.
"""

from __future__ import annotations

import dataclasses

from teran_core.data.manifest import DatasetManifest
from teran_core.encode.layout import SideLayout, stem_of
from teran_core.storage import Location

__all__ = ["ShardTask", "SidePlan", "marker_problem", "plan_side"]


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One input shard and what the dataset manifest says about it."""

    kind: str  # "images" or "captions"
    name: str  # e.g. "images-00003.parquet"
    rows: int
    sha256: str
    bytes: int
    source: Location  # the input shard file

    @property
    def stem(self) -> str:
        return stem_of(self.name)


@dataclasses.dataclass
class SidePlan:
    """One side's shards: all of them (dataset order), those to encode, and the markers of the rest."""

    kind: str
    layout: SideLayout
    tasks: list[ShardTask]
    todo: list[ShardTask]
    done: dict[str, dict]  # stem -> marker of a shard finished earlier by this job

    @property
    def complete(self) -> bool:
        return not self.todo


def marker_problem(task: ShardTask, marker: dict | None, shard_size: int | None, job_id: str) -> str | None:
    """Why ``marker`` does not prove ``task`` done, or None when it does.

    Example:
        >>> from teran_core.storage import resolve
        >>> task = ShardTask("images", "images-00000.parquet", 2, "ab", 10, resolve("/d/images/images-00000.parquet"))
        >>> marker_problem(task, {"job_id": "j", "source_sha256": "ab", "bytes": 99}, 99, "j") is None
        True
        >>> marker_problem(task, {"job_id": "j", "source_sha256": "cd", "bytes": 99}, 99, "j")
        'the input shard changed since it was encoded (sha256 cd, now ab)'
    """
    if marker is None:
        return "no completion marker"
    if marker.get("job_id") != job_id:
        return f"marker of another job ({marker.get('job_id')})"
    if marker.get("source_sha256") != task.sha256:
        return f"the input shard changed since it was encoded (sha256 {marker.get('source_sha256')}, now {task.sha256})"
    if shard_size is None:
        return "the embedding shard is missing"
    if shard_size != marker.get("bytes"):
        return f"the embedding shard has {shard_size} bytes, its marker says {marker.get('bytes')}"
    return None


def plan_side(manifest: DatasetManifest, kind: str, layout: SideLayout, job_id: str) -> SidePlan:
    """Plans one side from the dataset manifest and what the output folder holds (one listing per folder).

    Args:
        manifest: the dataset's manifest (loaded from its location).
        kind: "images" or "captions".
        layout: the output side.
        job_id: this job's id (see :func:`teran_core.encode.identity.job_id`).

    Returns:
        The plan; ``todo`` keeps dataset order.
    """
    sources = manifest.shard_locations(kind)
    tasks = [ShardTask(kind, s.name, s.rows, s.sha256, s.bytes, loc) for s, loc in zip(manifest.shards[kind], sources)]
    markers = layout.read_markers()
    sizes = layout.shard_sizes()
    done, todo = {}, []
    for task in tasks:
        marker = markers.get(task.stem)
        if marker_problem(task, marker, sizes.get(task.stem), job_id) is None:
            done[task.stem] = marker
        else:
            todo.append(task)
    return SidePlan(kind=kind, layout=layout, tasks=tasks, todo=todo, done=done)
