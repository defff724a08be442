"""One way to reach data: a URI (``/path``, ``file://``, ``s3://bucket/prefix``) becomes a Location.

Credentials are never part of a config: they come from the standard AWS chain (environment
variables, ``AWS_PROFILE``, the shared config files, instance or IRSA roles) on whichever process
touches the data, so a Location can be pickled into a Ray task without carrying a secret.
Writes are atomic per file: a crashed writer never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath
import uuid
from collections.abc import Iterator
from functools import cached_property
from typing import IO
from urllib.parse import urlparse

import fsspec

log = logging.getLogger(__name__)

__all__ = ["StorageConfig", "Location", "resolve", "read_text", "open_uri"]


@dataclasses.dataclass
class StorageConfig:
    """How to reach an object store. Holds no credentials by design."""

    endpoint_override: str | None = None  # S3-compatible endpoint, e.g. "http://127.0.0.1:8333"; None: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
    region: str | None = None  # None: AWS_REGION / AWS_DEFAULT_REGION / the profile's region
    anonymous: bool = False  # unsigned requests, for public buckets

    def check(self) -> list[str]:
        if self.endpoint_override and urlparse(self.endpoint_override).scheme not in ("http", "https"):
            return [f"endpoint_override: got {self.endpoint_override!r}, expected a URL such as http://host:port"]
        return []

    def endpoint(self) -> str | None:
        """The S3 endpoint to use: the config's, else the standard AWS environment variables'."""
        return (
            self.endpoint_override
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )


def _split(uri: str) -> tuple[str, str]:
    """Returns (protocol, path) with the path in the form the filesystem expects."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        if not parsed.netloc:
            raise ValueError(f"storage URI {uri!r} has no bucket; expected s3://bucket/prefix")
        return "s3", posixpath.join(parsed.netloc, parsed.path.lstrip("/")).rstrip("/")
    if parsed.scheme == "file":
        return "file", os.path.abspath(parsed.path)
    if parsed.scheme in ("", None) or (len(parsed.scheme) == 1 and os.name == "nt"):
        return "file", os.path.abspath(os.path.expanduser(uri))
    raise ValueError(f"storage URI {uri!r} has an unsupported scheme {parsed.scheme!r}; expected a local path, file:// or s3://")


@dataclasses.dataclass(frozen=True)
class Location:
    """A file or folder on a local disk or in an object store.

    Build one with :func:`resolve`; join paths with :meth:`join`. All IO goes through the
    fsspec filesystem in :attr:`fs`; :meth:`pyarrow_filesystem` gives the matching pyarrow one
    (what Ray Data and pyarrow datasets read with).

    Example:
        >>> import tempfile
        >>> root = resolve(tempfile.mkdtemp())
        >>> root.join("a", "b.txt").write_text("hello")
        >>> root.join("a", "b.txt").read_text()
        'hello'
        >>> root.join("a").list()
        ['b.txt']
    """

    protocol: str  # "file" or "s3"
    path: str  # absolute local path, or "bucket/key" for s3
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)

    @property
    def uri(self) -> str:
        return f"s3://{self.path}" if self.protocol == "s3" else self.path

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def __str__(self) -> str:
        return self.uri

    def __getstate__(self):
        return {"protocol": self.protocol, "path": self.path, "storage": self.storage}  # no cached filesystem

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_local:
            return fsspec.filesystem("file")
        kwargs: dict = {"anon": self.storage.anonymous}
        client_kwargs: dict = {}
        if self.storage.endpoint():
            kwargs["endpoint_url"] = self.storage.endpoint()
        if self.storage.region:
            client_kwargs["region_name"] = self.storage.region
        if client_kwargs:
            kwargs["client_kwargs"] = client_kwargs
        return fsspec.filesystem("s3", **kwargs)

    def pyarrow_filesystem(self):
        """The pyarrow filesystem for this location; paths for it are :attr:`path`."""
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        kwargs: dict = {"anonymous": self.storage.anonymous}
        endpoint = self.storage.endpoint()
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
            kwargs["scheme"] = parsed.scheme
        if self.storage.region:
            kwargs["region"] = self.storage.region
        return pafs.S3FileSystem(**kwargs)

    def join(self, *parts: str) -> "Location":
        """The location of ``parts`` below this one."""
        path = posixpath.join(self.path, *parts) if not self.is_local else os.path.join(self.path, *parts)
        return dataclasses.replace(self, path=path)

    def parent(self) -> "Location":
        return dataclasses.replace(self, path=posixpath.dirname(self.path))

    # --- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def list(self, suffix: str = "") -> list[str]:
        """Sorted names (not paths) of the files directly below this folder ending in ``suffix``."""
        if not self.fs.exists(self.path):
            return []
        self.fs.invalidate_cache(self.path)
        entries = self.fs.ls(self.path, detail=True)
        # some S3 stores answer with a zero-byte "folder/" marker object: it is not a file
        names = [posixpath.basename(e["name"]) for e in entries if e["type"] == "file" and not e["name"].endswith("/")]
        return sorted(n for n in names if n.endswith(suffix))

    def open(self, mode: str = "rb") -> IO:
        """Opens for reading. For writing use :meth:`atomic_write`."""
        if any(m in mode for m in "wax+"):
            raise ValueError(f"Location.open is for reading; use atomic_write to write {self.uri}")
        try:
            return self.fs.open(self.path, mode)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri} does not exist") from None

    def read_bytes(self) -> bytes:
        with self.open("rb") as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def size(self) -> int:
        return int(self.fs.info(self.path)["size"])

    # --- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic_write(self) -> Iterator[IO[bytes]]:
        """A binary file handle whose content appears under this name only if the block succeeds.

        Local files are written to a hidden temporary name in the same folder and renamed; S3
        objects are uploaded (multipart when large) and the upload is completed on success or
        aborted on error, so no reader ever sees a partial object.

        Example:
            >>> import tempfile, os
            >>> loc = resolve(os.path.join(tempfile.mkdtemp(), "x.bin"))
            >>> with loc.atomic_write() as f:
            ...     _ = f.write(b"data")
            >>> loc.read_bytes()
            b'data'
        """
        if self.is_local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = os.path.join(os.path.dirname(self.path), f".{self.name}.tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as f:
                    yield f
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            return
        f = self.fs.open(self.path, "wb")
        try:
            yield f
        except BaseException:
            f.discard()  # aborts the multipart upload; nothing is committed
            f.closed = True
            raise
        f.close()
        self.fs.invalidate_cache(self.path)

    def write_bytes(self, data: bytes) -> None:
        with self.atomic_write() as f:
            f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def makedirs(self) -> None:
        if self.is_local:
            os.makedirs(self.path, exist_ok=True)
        # object stores have no folders: a prefix exists once a key below it does

    def remove(self) -> None:
        """Deletes the file, or the folder with everything below it; a missing one is no error."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        self.fs.invalidate_cache(self.path)


def resolve(uri: str, storage: StorageConfig | None = None) -> Location:
    """Turns a URI into a :class:`Location`.

    Args:
        uri: ``/data/coco``, ``relative/dir``, ``file:///data/coco`` or ``s3://bucket/prefix``.
        storage: endpoint and region for S3 (credentials always come from the AWS chain).

    Raises:
        ValueError: an unsupported scheme or an S3 URI without a bucket.

    Example:
        >>> resolve("s3://my-bucket/datasets/coco").path
        'my-bucket/datasets/coco'
        >>> resolve("file:///tmp/x").uri
        '/tmp/x'
    """
    protocol, path = _split(str(uri))
    return Location(protocol=protocol, path=path, storage=storage or StorageConfig())


def read_text(uri: str, storage: StorageConfig | None = None) -> str:
    """Reads a small text file (a config, a manifest) from any supported URI."""
    return resolve(uri, storage).read_text()


@contextlib.contextmanager
def open_uri(uri: str, mode: str = "rb", storage: StorageConfig | None = None) -> Iterator[IO]:
    """Opens ``uri`` for reading (``"rb"``) or for an atomic write (``"wb"``).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "w.bin")
        >>> with open_uri(path, "wb") as f:
        ...     _ = f.write(b"abc")
        >>> with open_uri(path) as f:
        ...     f.read()
        b'abc'
    """
    loc = resolve(uri, storage)
    if mode == "wb":
        with loc.atomic_write() as f:
            yield f
    elif mode == "rb":
        with loc.open("rb") as f:
            yield f
    else:
        raise ValueError(f"open_uri mode {mode!r} is not supported; expected 'rb' or 'wb'")
