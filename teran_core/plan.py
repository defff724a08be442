"""A plan of jobs: what ``teran demo`` and ``teran pipeline`` run, one :class:`Step` per job run.

The plans themselves are ``teran_core.demo.demo_plan`` and ``teran_core.pipeline.stages``; the one
runner that checks every step's config first, writes the step configs, runs the jobs and keeps the
markers is ``jobs/steps.py``.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Step"]


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
