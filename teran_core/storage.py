"""One way to reach data: a URI (``/path``, ``file://``, ``s3://bucket/prefix``) becomes a Location.

Credentials are never part of a config: they come from the standard AWS chain (environment
variables, ``AWS_PROFILE``, the shared config files, instance or IRSA roles) on whichever process
touches the data, so a Location can be pickled into a Ray task without carrying a secret.
Writes are atomic per file: a crashed writer never leaves a half-written file under its final name.

Every S3 request, whether made through :attr:`Location.fs` or :meth:`Location.pyarrow_filesystem`
(Ray Data's reads, Ray Train's checkpoints), goes through one botocore client whose retries follow
``StorageConfig.retry_mode`` / ``max_attempts`` / ``deadline_s``; docs/failure_semantics.md says
which layer retries what.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath
import re
import time
import uuid
from collections.abc import Iterator
from functools import cached_property
from typing import IO, Literal
from urllib.parse import urlparse

import fsspec
import s3fs

log = logging.getLogger(__name__)

__all__ = ["StorageConfig", "Location", "StoreUnavailable", "resolve", "read_text", "open_uri", "redact",
           "RedactingFilter", "store_unavailable_in"]

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``.

    Example:
        >>> redact("cannot reach http://alice:s3cret@store:8333/bucket")
        'cannot reach http://***@store:8333/bucket'
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URL credentials in every record's message (see :func:`redact`).

    Example:
        >>> record = logging.LogRecord("x", logging.INFO, "", 0, "endpoint %s", ("http://u:p@h:1",), None)
        >>> RedactingFilter().filter(record), record.getMessage()
        (True, 'endpoint http://***@h:1')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _USERINFO.search(message):
            record.msg, record.args = redact(message), None
        return True


class StoreUnavailable(RuntimeError):
    """The object store kept failing a request past ``storage.deadline_s`` or ``storage.max_attempts``.

    No layer retries it (not s3fs, not Ray Data, not the encode finalisers): the job stops and its
    command-line wrapper prints this message, one line, as the reason (see jobs/common.py).
    """


def store_unavailable_in(err: BaseException) -> StoreUnavailable | None:
    """The :class:`StoreUnavailable` behind ``err``, looking through Ray's wrappers and exception chains.

    Example:
        >>> try:
        ...     try:
        ...         raise StoreUnavailable("store down")
        ...     except StoreUnavailable as inner:
        ...         raise ValueError("task failed") from inner
        ... except ValueError as outer:
        ...     str(store_unavailable_in(outer))
        'store down'
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # ray.exceptions.RayTaskError keeps the task's exception here
        if isinstance(current, StoreUnavailable) and not isinstance(cause, BaseException):
            return current
        # a task's exception chain does not survive pickling (Ray Data's UserCodeException loses its
        # __cause__); Ray's RayTaskError keeps the task's traceback as text, with our one-line message
        if found := _IN_TRACEBACK.search(str(current)):
            return StoreUnavailable(found.group(1))
        todo += [current.__cause__, current.__context__, cause if isinstance(cause, BaseException) else None]
    return None


_IN_TRACEBACK = re.compile(re.escape(f"{StoreUnavailable.__module__}.{StoreUnavailable.__qualname__}: ") + r"([^\n]+)")


@dataclasses.dataclass
class StorageConfig:
    """How to reach an object store. Holds no credentials by design."""

    endpoint_override: str | None = None  # S3-compatible endpoint, e.g. "http://127.0.0.1:8333"; None: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
    region: str | None = None  # None: AWS_REGION / AWS_DEFAULT_REGION / the profile's region
    anonymous: bool = False  # unsigned requests, for public buckets
    retry_mode: Literal["standard", "adaptive"] = "standard"  # botocore's: "standard" (jittered exponential backoff) or "adaptive" (also rate-limits this client on throttling)
    max_attempts: int = 20  # tries of one S3 request, the first included; ~3 min of backoff, capped at 20 s a wait
    deadline_s: float = 300.0  # a request still failing this long after its first failure stops the job (StoreUnavailable)

    def check(self) -> list[str]:
        problems = []
        if self.endpoint_override:
            parsed = urlparse(self.endpoint_override)
            if parsed.scheme not in ("http", "https"):
                problems.append(f"endpoint_override: got {redact(self.endpoint_override)!r}, expected a URL such as http://host:port")
            if "@" in parsed.netloc:
                problems.append(f"endpoint_override: {redact(self.endpoint_override)!r} has credentials in it; give them "
                                "through the AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role)")
        if self.max_attempts < 1:
            problems.append(f"max_attempts: got {self.max_attempts}, expected 1 or more (1: no retries)")
        if not self.deadline_s > 0:
            problems.append(f"deadline_s: got {self.deadline_s}, expected a positive number of seconds")
        return problems

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
        storage = self.storage
        kwargs: dict = {"anon": storage.anonymous, "retry_mode": storage.retry_mode,
                        "max_attempts": storage.max_attempts, "deadline_s": float(storage.deadline_s)}
        if storage.endpoint():
            kwargs["endpoint_url"] = storage.endpoint()
        if storage.region:
            kwargs["client_kwargs"] = {"region_name": storage.region}
        return RetryingS3FileSystem(**kwargs)

    def pyarrow_filesystem(self):
        """The pyarrow filesystem for this location; paths for it are :attr:`path`.

        On S3 it is :attr:`fs` behind pyarrow's fsspec adapter, so Ray Data and Ray Train make
        their requests through the same client, retries and deadline as everything else.
        """
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

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
        return sorted(self.file_sizes(suffix))

    def file_sizes(self, suffix: str = "") -> dict[str, int]:
        """Bytes of each file directly below this folder ending in ``suffix``, by name (one listing, no reads)."""
        self.fs.invalidate_cache(self.path)
        if not self.fs.exists(self.path):
            return {}
        entries = self.fs.ls(self.path, detail=True)
        # some S3 stores answer with a zero-byte "folder/" marker object: it is not a file
        files = [e for e in entries if e["type"] == "file" and not e["name"].endswith("/")]
        return {posixpath.basename(e["name"]): int(e["size"]) for e in files if e["name"].endswith(suffix)}

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


class RetryingS3FileSystem(s3fs.S3FileSystem):
    """s3fs whose botocore client retries every failed request by botocore's standard retry policy
    (which errors, jittered exponential backoff) up to ``max_attempts``, until ``deadline_s`` after
    its first failed try; then it raises :class:`StoreUnavailable`.

    botocore's own retry handler also draws from a client-wide retry quota that an outage of a
    few seconds drains, after which it stops retrying anything; this handler, registered first,
    decides instead, with the same conditions and backoff but without the quota.
    """

    retries = 5  # s3fs's own loop around a call, for what botocore cannot replay (a body cut off while streaming)

    def __init__(self, *args, retry_mode: str, max_attempts: int, deadline_s: float, **kwargs):
        self.max_attempts, self.deadline_s = max_attempts, deadline_s
        # a fresh dict each time: botocore rewrites it in place, and a pickled copy must rebuild the same client
        config = {"retries": {"mode": retry_mode, "max_attempts": max_attempts}}
        super().__init__(*args, config_kwargs=config, **kwargs)

    async def set_session(self, refresh=False, kwargs={}):  # noqa: B006 - s3fs's signature
        client = await super().set_session(refresh=refresh, kwargs=kwargs)
        client.meta.events.register_first("needs-retry.s3", self.needs_retry, unique_id="teran-needs-retry")
        return client

    def needs_retry(self, attempts: int, request_dict: dict, operation, **kwargs) -> float | None:
        """botocore's ``needs-retry`` event: None (done), seconds to wait before the next try, or a raise."""
        from botocore.retries.standard import ExponentialBackoff, RetryEventAdapter, StandardRetryConditions

        context = RetryEventAdapter().create_retry_context(attempts=attempts, request_dict=request_dict,
                                                           operation=operation, **kwargs)
        if not StandardRetryConditions(max_attempts=attempts + 1).is_retryable(context):
            return None  # a success, or an answer that retrying does not change (404, 403, ...)
        started = request_dict["context"].setdefault("teran_first_failure", time.monotonic())
        left = started + self.deadline_s - time.monotonic()
        max_attempts = self.max_attempts
        if attempts < max_attempts and left > 0:
            return min(ExponentialBackoff().delay_amount(context), left)
        raise StoreUnavailable(redact(
            f"the object store at {self.endpoint_url or self.client_kwargs.get('endpoint_url') or 'AWS S3'} failed "
            f"{operation.name} {urlparse(request_dict.get('url', '')).path} {attempts} time(s) over {time.monotonic() - started:.0f} s "
            f"(storage.max_attempts={max_attempts}, storage.deadline_s={self.deadline_s:g}); last error: "
            f"{_describe(context)}. Once the store answers, rerun the same command: finished work is kept"))


def _describe(context) -> str:
    if context.caught_exception is not None:
        return " ".join(str(context.caught_exception).split())
    status = context.http_response.status_code if context.http_response is not None else "?"
    code = (context.parsed_response or {}).get("Error", {}).get("Code", "")
    return f"HTTP {status} {code}".strip()


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
