"""A plan of jobs: what ``teran demo`` and ``teran pipeline`` run, one :class:`Step` per job run.

The plans themselves are ``jobs.demo_plan.demo_plan`` and ``jobs.pipeline_plan.stages``; the one
runner that checks every step's config first, writes the step configs, runs the jobs and keeps the
markers is ``jobs/steps.py``.
"""

from __future__ import annotations

import dataclasses
import json

__all__ = ["Step", "config_mismatch", "join_uri"]


@dataclasses.dataclass
class Step:
    """One step: the job that runs it, that job's config, and the folders it reads and writes.

    Example:
        >>> Step("build-index", {"paths": {"embeddings": "/r/emb", "index": "/r/index"}}, ["/r/emb"], "/r/index").job
        'build-index'
    """

    job: str  # a `teran` subcommand, or "model": an untrained TERAN (config "model", seed "seed") saved to `output`
    config: dict  # the job's config as plain data (written to <root>/configs/<step>.yaml)
    inputs: list[str] = dataclasses.field(default_factory=list)  # folders read: their size is the step's "bytes read"
    output: str = ""  # the folder written: its size is the step's "bytes written"


def config_mismatch(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between a marker's recorded config and this run's.

    Example:
        >>> config_mismatch({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}})
        ['a.c']
    """
    keys = sorted(set(recorded) | set(current))
    diffs = []
    for key in keys:
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += config_mismatch(old, new, f"{prefix}{key}.")
        elif json.dumps(old) != json.dumps(new):
            diffs.append(f"{prefix}{key}")
    return diffs


def join_uri(root: str, *parts: str) -> str:
    """A folder below a plan's root, as the step configs name it (a local path or s3:// URI).

    Example:
        >>> join_uri("s3://bucket/demo/", "models", "teran")
        's3://bucket/demo/models/teran'
    """
    return "/".join([root.rstrip("/"), *parts])
