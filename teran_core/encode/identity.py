"""The job id: a hash of what decides the embeddings, so a resubmitted job continues its own work.

The same dataset location, model files, output location, storage dtype and autocast precision give
the same id on any machine and any attempt (a KubeRay retry on a new cluster included). An output
side written by another id is refused unless the run overwrites it, so embeddings of two models or
two precisions never mix in one set.
"""

from __future__ import annotations

import hashlib
import json
import posixpath

from teran_core.encode.config import EncodeSections
from teran_core.encode.layout import SideLayout
from teran_core.storage import Location, resolve

__all__ = ["OutputConflict", "checkpoint_identity", "job_identity", "job_id", "claim_side"]

JOB_FILE = "_job.json"


class OutputConflict(ValueError):
    """The output side holds embeddings of another job (another model, dataset or precision)."""


def checkpoint_identity(checkpoint: Location, fmt: str) -> dict:
    """The checkpoint's URI and, for each of its files, size and version (S3 ETag or local mtime).

    Metadata only, so a large checkpoint is not read; a rewritten file changes its version.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
    """
    fs = checkpoint.fs
    fs.invalidate_cache(checkpoint.path)
    if not fs.exists(checkpoint.path):
        raise FileNotFoundError(f"model checkpoint {checkpoint.uri} does not exist; set model.checkpoint to a teran checkpoint folder or a reference .pth.tar")
    found = fs.find(checkpoint.path, detail=True) if fs.isdir(checkpoint.path) else {checkpoint.path: fs.info(checkpoint.path)}
    files = {}
    for path, info in sorted(found.items()):
        version = info.get("ETag") or info.get("mtime") or info.get("LastModified")
        files[posixpath.relpath(path, checkpoint.path) if path != checkpoint.path else posixpath.basename(path)] = [
            int(info["size"]), str(version)
        ]
    return {"checkpoint": checkpoint.uri, "format": fmt, "files": files}


def job_identity(cfg: EncodeSections, model: dict) -> dict:
    """Everything the embeddings depend on; batch sizes and pool sizes are left out on purpose."""
    return {
        "dataset": resolve(cfg.input.dataset, cfg.storage).uri,
        "model": model,
        "output": resolve(cfg.output.uri, cfg.storage).uri,
        "dtype": cfg.output.dtype,
        "precision": cfg.encode.resolved_precision(),
    }


def job_id(identity: dict) -> str:
    """A short stable hash of ``identity``.

    Example:
        >>> job_id({"a": 1}) == job_id({"a": 1}), len(job_id({"a": 1}))
        (True, 16)
    """
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _differences(old: dict, new: dict) -> list[str]:
    old_flat, new_flat = _flat(old), _flat(new)
    keys = sorted(set(old_flat) | set(new_flat))
    return [f"{k}: was {old_flat.get(k)!r}, now {new_flat.get(k)!r}" for k in keys if old_flat.get(k) != new_flat.get(k)]


def claim_side(layout: SideLayout, identity: dict, overwrite: bool) -> None:
    """Makes the side this job's: refuses another job's output, or deletes it when ``overwrite``.

    The manifest and markers go first, so an interrupted overwrite leaves nothing that looks finished.

    Raises:
        OutputConflict: the side holds another job's output and ``overwrite`` is False.
    """
    this_id = job_id(identity)
    job_file = layout.root.join(JOB_FILE)
    if overwrite:
        for location in (layout.manifest, layout.root.join("_done"), layout.root):
            location.remove()
    else:
        previous = json.loads(job_file.read_text()) if job_file.exists() else None
        foreign = sorted({m.get("job_id") for m in layout.read_markers().values()} - {this_id})
        if (previous and previous.get("job_id") != this_id) or foreign:
            changes = _differences(previous["identity"], identity) if previous else [f"markers of job(s) {foreign}"]
            raise OutputConflict(
                f"{layout.root.uri} holds {layout.kind} embeddings of another encode job "
                f"({previous.get('job_id') if previous else foreign[0]}), this one is {this_id}; what differs: "
                + "; ".join(changes) + ". Use another output.uri, or set output.overwrite=true to replace them"
            )
    claim = json.dumps({"job_id": this_id, "identity": identity}, indent=1, sort_keys=True) + "\n"
    if overwrite or not job_file.exists() or job_file.read_text() != claim:
        job_file.write_text(claim)
