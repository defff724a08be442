"""Where each file of an embedding set side lives (``<emb>/images`` or ``<emb>/captions``).

| path                          | what                                                     |
| ----------------------------- | -------------------------------------------------------- |
| ``<stem>.parquet``            | the embedding shard of input shard ``<stem>.parquet``    |
| ``_done/<stem>.json``         | its completion marker, written after the shard           |
| ``_rejects/<stem>.parquet``   | rows of that input shard left out, with the reason       |
| ``_staging/<stem>/*.parquet`` | parts written by the pipeline, merged into the shard     |
| ``manifest.json``             | every shard with rows and sha256, written last           |
"""

from __future__ import annotations

import dataclasses
import json
import posixpath

from teran_core.storage import Location

__all__ = ["SideLayout", "stem_of"]

MANIFEST = "manifest.json"


def stem_of(shard_name: str) -> str:
    """``images-00003.parquet`` -> ``images-00003`` (also for a full path).

    Example:
        >>> stem_of("bucket/data/images/images-00003.parquet")
        'images-00003'
    """
    base = posixpath.basename(shard_name.replace("\\", "/"))
    return base[: -len(".parquet")] if base.endswith(".parquet") else base


@dataclasses.dataclass(frozen=True)
class SideLayout:
    """The files of one side of an embedding set.

    Example:
        >>> from teran_core.storage import resolve
        >>> side = SideLayout(resolve("s3://b/emb").join("images"), "images")
        >>> side.marker("images-00003").uri, side.shard("images-00003").uri
        ('s3://b/emb/images/_done/images-00003.json', 's3://b/emb/images/images-00003.parquet')
    """

    root: Location  # <emb>/<kind>
    kind: str  # "images" or "captions"

    def shard(self, stem: str) -> Location:
        return self.root.join(f"{stem}.parquet")

    def marker(self, stem: str) -> Location:
        return self.root.join("_done", f"{stem}.json")

    def rejects(self, stem: str) -> Location:
        return self.root.join("_rejects", f"{stem}.parquet")

    def staging(self, stem: str | None = None) -> Location:
        return self.root.join("_staging", stem) if stem else self.root.join("_staging")

    @property
    def manifest(self) -> Location:
        return self.root.join(MANIFEST)

    def read_marker(self, stem: str) -> dict | None:
        """The completion marker of one shard; None when absent or not JSON (markers are written atomically,
        so such a file is foreign, and its shard is encoded again)."""
        try:
            return json.loads(self.marker(stem).read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def read_markers(self) -> dict[str, dict]:
        """Every completion marker, by stem."""
        stems = [name[: -len(".json")] for name in self.root.join("_done").list(".json")]
        return {stem: marker for stem in stems if (marker := self.read_marker(stem)) is not None}

    def shard_size(self, stem: str) -> int | None:
        """Bytes of one embedding shard; None when it does not exist."""
        shard = self.shard(stem)
        shard.fs.invalidate_cache(shard.path)
        return shard.size() if shard.exists() else None

    def shard_sizes(self) -> dict[str, int]:
        """Size in bytes of every embedding shard present, by stem (one listing, no reads)."""
        return {stem_of(name): size for name, size in self.root.file_sizes(".parquet").items()}
