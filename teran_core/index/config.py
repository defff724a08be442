"""The build-index job's knobs: which embedding set, which parts, how they are chosen and built.

``configs/build_index.yaml`` sets every section; ``teran build-index --config x.yaml section.key=value``
overrides single keys.
"""

from __future__ import annotations

import dataclasses

from teran_core.config import knob
from teran_core.index.factory import IndexChoice, choose_index
from teran_core.index.layout import PartSpec

__all__ = ["COMPRESSED_SET_PARTS", "IndexSection", "BuildPaths", "missing_paths"]


def missing_paths(paths, keys: tuple[str, ...]) -> list[str]:
    """One problem line per empty location in a ``paths`` section (shipped configs leave them to the command line).

    Example:
        >>> missing_paths(BuildPaths(index="s3://b/i"), ("embeddings", "index"))
        ['paths.embeddings: missing; set it, e.g. paths.embeddings=s3://bucket/embeddings/coco']
    """
    return [f"paths.{key}: missing; set it, e.g. paths.{key}=s3://bucket/{key}/coco" for key in keys if not getattr(paths, key)]


@dataclasses.dataclass
class BuildPaths:
    """What the index is built from and where it goes."""

    embeddings: str = ""  # embedding set folder (holding images/ and captions/): a local path or s3://bucket/prefix
    index: str = ""  # index folder to write: a local path or s3://bucket/prefix
    overwrite: bool = False  # replace an index already there (otherwise a finished index there is an error)


# the parts over a compressed set: centroid -> items lists replace the token parts (docs/engine.md)
COMPRESSED_SET_PARTS = ("images-global", "captions-global", "images-centroids", "captions-centroids")


@dataclasses.dataclass
class IndexSection:
    """Index type and build resources, applied to every part."""

    parts: list[str] = dataclasses.field(default_factory=lambda: ["images-global", "captions-global", "images-regions", "captions-words"])  # token parts give the candidates TERAN's untrained global slot cannot; over a compressed set, images-centroids and captions-centroids replace images-regions and captions-words (docs/engine.md)
    factory: str = "auto"  # "auto" (by size and budget, autofaiss-style) or a FAISS index_factory string for every part
    memory_budget_gb: float = knob(16.0, gt=0)  # the most memory one part's index may take when searched
    flat_max: int = knob(1_000_000, ge=0)  # auto: exact search at or below this many vectors (one query over 1M at D=128: ~25 ms on one core)
    hnsw_max: int = knob(0, ge=0)  # auto: HNSW above flat_max up to this many vectors if it fits; 0 = never. Each embedding shard gets its own graph and a query searches them all, so its cost grows with the shard count
    nprobe: int = knob(0, ge=0)  # IVF lists searched per query (raised for a top-k that many lists cannot hold: ~2k vectors); 0 = the choice's default (nlist/64, 8..256)
    seed: int = knob(0, ge=0)  # training-sample draw
    use_gpu: bool = True  # train on GPUs when faiss-gpu sees any (CPU otherwise)
    add_task_cpus: float = knob(1.0, gt=0)  # Ray CPUs per shard-add task (FAISS adds use that many threads' worth)

    def check(self) -> list[str]:
        problems = []
        for name in self.parts:
            try:
                PartSpec.from_name(name)
            except ValueError as err:
                problems.append(f"parts: {err}")
        if not self.parts:
            problems.append("parts: empty; expected at least one of images-global, captions-global, images-regions, captions-words, "
                            "images-centroids, captions-centroids")
        return problems

    def specs(self) -> list[PartSpec]:
        return [PartSpec.from_name(name) for name in self.parts]

    def choose(self, n_vectors: int, dim: int) -> IndexChoice:
        """The index for a part of ``n_vectors`` vectors, with the nprobe override applied.

        Example:
            >>> IndexSection(nprobe=32).choose(3_600_000, 64).nprobe
            32
        """
        choice = choose_index(n_vectors, dim, int(self.memory_budget_gb * 2**30), factory=self.factory,
                              flat_max=self.flat_max, hnsw_max=self.hnsw_max)
        return dataclasses.replace(choice, nprobe=self.nprobe) if self.nprobe and choice.is_ivf else choice
