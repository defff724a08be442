"""Where a sharded index lives on storage, and reading/writing FAISS files through Locations.

    <index>/index.json                 written last: embedding set, model, sides, parts
    <index>/ids/<side>/<stem>.parquet  item index -> item id, one file per embedding shard
    <index>/<part>/trained.faiss       the trained empty index every shard was cloned from
    <index>/<part>/shards/<stem>.faiss one index shard per embedding shard (same stem)
    <index>/<part>/part.json           written after its shards: type, search parameters, shards

A part is one side's global vectors (``images-global``, ``captions-global``), its token
vectors (``images-regions``, ``captions-words``), or, over a compressed embedding set, its
centroid -> items lists (``images-centroids``, ``captions-centroids``; docs/engine.md), whose
shard files are ``<stem>.npz``.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath

import numpy as np

from teran_core.storage import Location

__all__ = [
    "INDEX_FORMAT_VERSION", "PartSpec", "write_faiss", "read_faiss", "serialize", "deserialize", "write_json", "read_index_manifest",
    "read_part_manifest",
]

INDEX_FORMAT_VERSION = 1
_TOKEN_PART = {"images": "regions", "captions": "words"}
VECTORS = ("global", "tokens", "centroids")


@dataclasses.dataclass(frozen=True)
class PartSpec:
    """One index of a side: its global vectors or its token vectors."""

    side: str  # "images" | "captions"
    vectors: str  # "global" | "tokens" | "centroids"

    def __post_init__(self):
        if self.side not in _TOKEN_PART or self.vectors not in VECTORS:
            raise ValueError(f"index part ({self.side!r}, {self.vectors!r}): expected side images|captions and vectors {'|'.join(VECTORS)}")

    @property
    def name(self) -> str:
        return f"{self.side}-{_TOKEN_PART[self.side] if self.vectors == 'tokens' else self.vectors}"

    @classmethod
    def from_name(cls, name: str) -> "PartSpec":
        """``images-regions`` -> PartSpec("images", "tokens").

        Example:
            >>> PartSpec.from_name("images-regions")
            PartSpec(side='images', vectors='tokens')
        """
        side, _, kind = name.partition("-")
        vectors = kind if kind in ("global", "centroids") and side in _TOKEN_PART else "tokens" if _TOKEN_PART.get(side) == kind else None
        if vectors is None:
            known = [f"{s}-{v}" for v in ("global", "centroids") for s in _TOKEN_PART] + [f"{s}-{t}" for s, t in _TOKEN_PART.items()]
            raise ValueError(f"index part {name!r} is not known; expected one of {known}")
        return cls(side, vectors)


def shard_index_name(embedding_shard: str) -> str:
    """``images-00003.parquet`` -> ``images-00003.faiss``."""
    return posixpath.splitext(embedding_shard)[0] + ".faiss"


def write_faiss(index, location: Location) -> None:
    """Streams a FAISS index into ``location`` atomically (no full in-memory copy)."""
    import faiss

    with location.atomic_write() as f:
        faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))


def read_faiss(location: Location, mmap: bool = True):
    """Reads a FAISS index; a local file is memory-mapped when ``mmap`` (the OS pages vectors in).

    Raises:
        FileNotFoundError: the file does not exist.
    """
    import faiss

    if not location.exists():
        raise FileNotFoundError(f"FAISS index {location.uri} does not exist")
    if location.is_local and mmap:
        # MMAP_IFC maps flat code arrays and IVF inverted lists alike (checked on Flat, HNSW, IVF-Flat, IVF-PQ)
        return faiss.read_index(location.path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    with location.open("rb") as f:
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))


def serialize(index) -> np.ndarray:
    """A FAISS index as a uint8 array (what Ray ships to the shard tasks, zero-copy)."""
    import faiss

    return faiss.serialize_index(index)


def deserialize(data: np.ndarray):
    import faiss

    return faiss.deserialize_index(np.asarray(data, dtype=np.uint8))


def write_json(location: Location, data: dict) -> None:
    location.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_part_manifest(part_root: Location) -> dict:
    """Reads ``<index>/<part>/part.json`` (written after the part's shards).

    Raises:
        FileNotFoundError: no part.json: the part was not built completely.
    """
    manifest_loc = part_root.join("part.json")
    if not manifest_loc.exists():
        raise FileNotFoundError(f"{manifest_loc.uri} does not exist: the index part was not built completely")
    return json.loads(manifest_loc.read_text())


def read_index_manifest(root: Location) -> dict:
    """Reads ``<index>/index.json`` (the build writes it last).

    Raises:
        FileNotFoundError: no index.json: the build did not finish or ``root`` is not an index.
        ValueError: an unknown format version.
    """
    manifest_loc = root.join("index.json")
    if not manifest_loc.exists():
        raise FileNotFoundError(
            f"{manifest_loc.uri} does not exist: the index build writes it last, so the build did not finish "
            f"or {root.uri} is not an index folder; rerun 'teran build-index'"
        )
    manifest = json.loads(manifest_loc.read_text())
    if manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise ValueError(f"{manifest_loc.uri}: format_version {manifest.get('format_version')!r}, expected {INDEX_FORMAT_VERSION}")
    return manifest
