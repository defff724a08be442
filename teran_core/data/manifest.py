"""``dataset.json``: what a teran dataset holds. Written last by every job, read first by every reader."""

from __future__ import annotations

import dataclasses
import json

from teran_core.data.errors import DataError
from teran_core.data.schema import CAPTIONS, FEATURE_DTYPES, FORMAT_VERSION, IMAGES
from teran_core.storage import Location, StorageConfig, resolve

__all__ = ["MANIFEST_NAME", "ShardInfo", "SplitInfo", "DatasetManifest", "as_location"]

MANIFEST_NAME = "dataset.json"
CREATE_HINT = "the synth or convert job with output.uri={uri} (docs/formats.md)"


def as_location(location: Location | str, storage: StorageConfig | None = None) -> Location:
    """A Location as is, or a URI resolved with ``storage``."""
    return location if isinstance(location, Location) else resolve(str(location), storage)


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One file of a dataset: its name in its folder, rows, SHA-256 of its bytes and size."""

    name: str
    rows: int
    sha256: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """A split's two files (under ``splits/``) and its 1K folds as [start, stop) image ranges."""

    images: ShardInfo  # image_id, in evaluation order
    captions: ShardInfo  # caption_id, image_id, in evaluation order
    folds: list[list[int]]


@dataclasses.dataclass
class DatasetManifest:
    """The manifest of a dataset: feature layout, shards, splits and rejects.

    Example:
        >>> import tempfile
        >>> root = resolve(tempfile.mkdtemp())
        >>> DatasetManifest(feature_dim=8, feature_dtype="float16").save(root)
        >>> m = DatasetManifest.load(root)
        >>> m.feature_dim, m.counts, m.shard_locations("images")
        (8, {'images': 0, 'captions': 0}, [])
    """

    feature_dim: int
    feature_dtype: str  # "float16" or "float32"
    max_regions: int = 36
    has_boxes: bool = True  # False: the boxes column is null and encoders get zero boxes
    shards: dict[str, list[ShardInfo]] = dataclasses.field(default_factory=lambda: {IMAGES: [], CAPTIONS: []})
    splits: dict[str, SplitInfo] = dataclasses.field(default_factory=dict)
    rejects: dict[str, ShardInfo] = dataclasses.field(default_factory=dict)  # kind -> file under rejects/
    source: dict = dataclasses.field(default_factory=dict)  # how the dataset was made (format, root, seed, ...)
    format_version: int = FORMAT_VERSION
    location: Location | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        return {kind: sum(s.rows for s in self.shards.get(kind, [])) for kind in (IMAGES, CAPTIONS)}

    def shard_locations(self, kind: str) -> list[Location]:
        """The shard files of ``kind`` ("images" or "captions"), in order."""
        return [self._root().join(kind, s.name) for s in self.shards[kind]]

    def split_location(self, split: str, kind: str) -> Location:
        info = self.splits[split]
        return self._root().join("splits", getattr(info, kind).name)

    def _root(self) -> Location:
        if self.location is None:
            raise ValueError("this manifest was not loaded from or saved to a location")
        return self.location

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("location")
        data["counts"] = self.counts
        return data

    def save(self, location: Location | str, storage: StorageConfig | None = None) -> None:
        """Writes ``dataset.json`` atomically. Call it after every other file of the dataset is written."""
        self.location = as_location(location, storage)
        self.location.join(MANIFEST_NAME).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, location: Location | str, storage: StorageConfig | None = None) -> "DatasetManifest":
        """Reads a dataset's ``dataset.json``.

        Raises:
            FileNotFoundError: there is no ``dataset.json`` (no dataset, or its job did not finish).
            DataError: the manifest is not valid JSON, lacks a key, or has a newer format version.
        """
        root = as_location(location, storage)
        path = root.join(MANIFEST_NAME)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path.uri} does not exist: {root.uri} is not a teran dataset, or the job writing it did not finish "
                f"(dataset.json is written last); create one with {CREATE_HINT.format(uri=root.uri)}"
            ) from None
        try:
            return cls._from_json(json.loads(text), root)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path.uri} is not a valid teran dataset manifest ({type(err).__name__}: {err})") from None

    @classmethod
    def _from_json(cls, data: dict, root: Location) -> "DatasetManifest":
        version = data["format_version"]
        if version != FORMAT_VERSION:
            raise DataError(
                f"{root.join(MANIFEST_NAME).uri} has format_version {version}, this teran reads version "
                f"{FORMAT_VERSION}; convert the data again with this version or upgrade teran"
            )
        if data["feature_dtype"] not in FEATURE_DTYPES:
            raise DataError(f"{root.join(MANIFEST_NAME).uri}: feature_dtype {data['feature_dtype']!r} is not one of {sorted(FEATURE_DTYPES)}")
        return cls(
            feature_dim=int(data["feature_dim"]),
            feature_dtype=data["feature_dtype"],
            max_regions=int(data["max_regions"]),
            has_boxes=bool(data["has_boxes"]),
            shards={kind: [ShardInfo(**s) for s in data["shards"][kind]] for kind in (IMAGES, CAPTIONS)},
            splits={
                name: SplitInfo(ShardInfo(**s["images"]), ShardInfo(**s["captions"]), [list(f) for f in s["folds"]])
                for name, s in data["splits"].items()
            },
            rejects={kind: ShardInfo(**s) for kind, s in data["rejects"].items()},
            source=dict(data["source"]),
            format_version=version,
            location=root,
        )
