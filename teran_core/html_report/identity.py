"""What a report says it evaluated: the model by checkpoint URI and content fingerprint, the data, the sample."""

from __future__ import annotations

import hashlib

from teran_core.storage import StorageConfig, resolve

__all__ = ["model_identity", "describe_model", "run_header"]

FINGERPRINT_CHARS = 12
BLOCK = 8 * 2**20


def model_identity(record: dict | None, storage: StorageConfig | None = None) -> dict | None:
    """The checkpoint URI and a short fingerprint of its bytes, from the model record the embeddings keep.

    ``record`` is the index's ``model`` ({"checkpoint", "format", "files": {name: [size, version]}}). The
    fingerprint is the SHA-256 of the listed files' names and bytes as they are now; ``changed`` says a
    file's size differs from the one recorded when the embeddings were made (the checkpoint was replaced).

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> open(os.path.join(folder, "model.safetensors"), "wb").write(b"weights")
        7
        >>> m = model_identity({"checkpoint": folder, "files": {"model.safetensors": [7, "1"]}})
        >>> m["fingerprint"], m["changed"]
        ('sha256:80179a942440', False)
    """
    if not record or not record.get("checkpoint"):
        return None
    root = resolve(record["checkpoint"], storage)
    files = record.get("files") or {}
    digest, changed = hashlib.sha256(), False
    for name in sorted(files):
        location = root.join(name)
        if not location.exists() and len(files) == 1:  # the checkpoint is the file itself
            location = root
        changed |= location.size() != files[name][0]
        digest.update(name.encode() + b"\0")
        with location.open("rb") as f:
            while chunk := f.read(BLOCK):
                digest.update(chunk)
    return {"checkpoint": root.uri, "fingerprint": f"sha256:{digest.hexdigest()[:FINGERPRINT_CHARS]}", "changed": changed}


def describe_model(identity: dict | None) -> str:
    """One line naming the model.

    Example:
        >>> describe_model({"checkpoint": "s3://b/models/teran", "fingerprint": "sha256:0123456789ab", "changed": False})
        's3://b/models/teran (sha256:0123456789ab)'
    """
    if not identity:
        return "unknown (the embeddings record no checkpoint)"
    note = "; replaced since the embeddings were made" if identity.get("changed") else ""
    return f"{identity['checkpoint']} ({identity['fingerprint']}{note})"


def run_header(results: dict) -> list[tuple[str, str]]:
    """(label, value) lines of a report's header: model, dataset, split, query sample and seed, index, collection.

    Example:
        >>> run_header({"collection": {"images": 2, "captions": 10}, "queries": {"images": 2, "captions": 10},
        ...             "run": {"dataset": "d", "split": "test", "seed": 0, "sampled": False}})[1:3]
        [('dataset', 'd'), ('split', 'test')]
    """
    run = results.get("run", {})
    queries = results["queries"]
    sample = "seeded sample" if run.get("sampled") else "every split item"
    rows = [("model", describe_model(results.get("model"))),
            ("dataset", run.get("dataset", "-")), ("split", run.get("split", "-")),
            ("query sample", f"{queries['captions']} captions (t2i), {queries['images']} images (i2t): {sample}"),
            ("seed", str(run.get("seed", "-")))]
    if results.get("index"):
        rows.append(("index", results["index"]))
    rows.append(("collection", f"{results['collection']['images']} images, {results['collection']['captions']} captions"))
    return rows
