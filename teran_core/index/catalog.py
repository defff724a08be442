"""A whole index folder: its manifest, parts, id maps, and the embedding set it was built from."""

from __future__ import annotations

import hashlib
import json

from teran_core.embedding_set import EmbeddingSet, ShardInfo
from teran_core.index.idmap import IdMap, write_id_shard
from teran_core.index.layout import INDEX_FORMAT_VERSION, PartSpec, read_index_manifest, read_part_manifest, write_json
from teran_core.index.search import ShardedIndex
from teran_core.storage import Location, StorageConfig, resolve

__all__ = ["TeranIndex", "manifest_digest", "write_side_ids", "write_index_manifest"]


def manifest_digest(emb: EmbeddingSet) -> str:
    """sha256 of an embedding side's manifest: the index records it to detect a re-encoded set."""
    return hashlib.sha256(json.dumps(emb.manifest, sort_keys=True).encode()).hexdigest()


def _id_file(shard: ShardInfo) -> str:
    return shard.name  # same stem and suffix as the embedding shard


def write_side_ids(emb: EmbeddingSet, shard: ShardInfo, root: Location) -> int:
    """Writes ``<index>/ids/<side>/<shard>``: the item ids of one embedding shard. Returns the row count."""
    ids = emb.read_shard(shard, ["id"]).column("id").to_pylist()
    write_id_shard(root.join("ids", emb.kind, _id_file(shard)), shard.offset, ids)
    return len(ids)


def write_index_manifest(root: Location, embeddings_uri: str, sides: dict[str, EmbeddingSet], parts: dict[str, dict]) -> dict:
    """Writes ``<index>/index.json`` last, after every part and id shard exists."""
    model = next((emb.manifest.get("model") for emb in sides.values() if emb.manifest.get("model")), None)
    manifest = {
        "format_version": INDEX_FORMAT_VERSION,
        "embeddings": embeddings_uri,
        "model": model,
        # what stage one's global kNN searches: "distilled" head vectors or TERAN's own "slot0" (older sets: slot0)
        "global_kind": next((emb.manifest["global_kind"] for emb in sides.values() if emb.manifest.get("global_kind")), "slot0"),
        "sides": {side: {"items": len(emb), "dim": emb.dim, "global_dim": emb.global_dim, "manifest_sha256": manifest_digest(emb),
                         "id_shards": [_id_file(s) for s in emb.shards]} for side, emb in sides.items()},
        "parts": {name: {k: part[k] for k in ("factory", "ntotal", "nprobe", "ef_search", "reason")} for name, part in parts.items()},
    }
    write_json(root.join("index.json"), manifest)
    return manifest


class TeranIndex:
    """An index folder written by ``teran build-index``.

    Example (see tests/index/test_catalog.py for a runnable round trip)::

        index = TeranIndex.open("s3://bucket/index/coco")
        part = index.part("images-global")          # ShardedIndex
        images = index.embeddings("images")         # the EmbeddingSet it was built from
        index.id_map("images").item_id(42)          # '000000042'
    """

    def __init__(self, root: Location, manifest: dict):
        self.root = root
        self.manifest = manifest
        self._ids: dict[str, IdMap] = {}

    @classmethod
    def open(cls, root: Location | str, storage: StorageConfig | None = None) -> "TeranIndex":
        """Opens an index folder after reading its manifest (FileNotFoundError if the build did not finish)."""
        loc = resolve(root, storage) if isinstance(root, str) else root
        return cls(loc, read_index_manifest(loc))

    @property
    def part_names(self) -> list[str]:
        return sorted(self.manifest["parts"])

    def _check_part(self, name: str) -> None:
        if name not in self.manifest["parts"]:
            raise KeyError(f"{self.root.uri} has no index part {name!r}; it has {self.part_names}")

    def part(self, name: str, *, mmap: bool = True, use_gpu: bool = False):
        """A FAISS part as a :class:`ShardedIndex`; a centroids part as a
        :class:`~teran_core.index.centroid_lists.CentroidLists` (with the embedding set's centroids)."""
        self._check_part(name)
        spec = PartSpec.from_name(name)
        if spec.vectors == "centroids":
            from teran_core.index.centroid_lists import CentroidLists

            return CentroidLists.open(self.root.join(name), self.embeddings(spec.side).codec.centroids)
        return ShardedIndex.open(self.root.join(name), mmap=mmap, use_gpu=use_gpu)

    def part_manifest(self, name: str) -> dict:
        """A part's part.json: factory, dim, nprobe and its shards (name, source, ntotal)."""
        self._check_part(name)
        return read_part_manifest(self.root.join(name))

    def parts(self, **kwargs) -> dict[str, ShardedIndex]:
        return {name: self.part(name, **kwargs) for name in self.part_names}

    def id_map(self, side: str) -> IdMap:
        if side not in self._ids:
            self._ids[side] = IdMap.open(self.root.join("ids", side), self.manifest["sides"][side]["id_shards"])
        return self._ids[side]

    def load_model(self, checkpoint: str | None = None, fmt: str = "auto"):
        """The model that encoded the embeddings (recorded in index.json), or ``checkpoint`` instead.

        Raises:
            ValueError: neither a checkpoint is given nor one is recorded (e.g. synthetic embeddings).
        """
        from teran_core.encode.config import ModelSection
        from teran_core.encode.model_spec import ModelSpec

        recorded = self.manifest.get("model") or {}
        if checkpoint is None and "checkpoint" not in recorded:
            raise ValueError(
                f"{self.root.uri}/index.json records no model checkpoint (embeddings made by {recorded.get('name', 'an unknown producer')}); "
                "give the checkpoint that encoded them"
            )
        section = ModelSection(checkpoint=checkpoint or recorded["checkpoint"],
                               format=fmt if checkpoint else recorded.get("format", "auto"))
        return ModelSpec.from_section(section, self.root.storage).load()

    def embeddings(self, side: str) -> EmbeddingSet:
        """The embedding side the index was built from, checked to be unchanged since.

        Raises:
            ValueError: the embedding set was re-encoded after the index was built.
        """
        emb = EmbeddingSet.open(resolve(self.manifest["embeddings"], self.root.storage).join(side), kind=side)
        if manifest_digest(emb) != self.manifest["sides"][side]["manifest_sha256"]:
            raise ValueError(
                f"{emb.location.uri} changed after the index {self.root.uri} was built (manifest digest differs); "
                f"item numbers may no longer match: rebuild the index"
            )
        return emb
