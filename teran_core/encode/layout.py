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

    def read_markers(self) -> dict[str, dict]:
        """Every completion marker, by stem; a marker that is not valid JSON counts as absent."""
        folder = self.root.join("_done")
        markers = {}
        for name in folder.list(".json"):
            try:
                markers[name[: -len(".json")]] = json.loads(folder.join(name).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a marker is written atomically, so this is foreign; the shard is redone
        return markers

    def shard_sizes(self) -> dict[str, int]:
        """Size in bytes of every embedding shard present, by stem (one listing, no reads)."""
        self.root.fs.invalidate_cache(self.root.path)
        if not self.root.exists():
            return {}
        entries = self.root.fs.ls(self.root.path, detail=True)
        return {
            stem_of(e["name"]): int(e["size"])
            for e in entries
            if e["type"] == "file" and e["name"].endswith(".parquet")
        }
