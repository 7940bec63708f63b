"""Sources: what every kind of source lists (`RemoteShard`) and fetches (`Fetched`), and how.

A source is a local folder or glob (acquire.local), an HTTP(S) manifest of shard URLs
(acquire.http_listing), a Hugging Face dataset repository (acquire.hub) or an object store
prefix (acquire.object_store: s3://, gs://, file://). Each `list()` returns `RemoteShard`s
sorted by URI or raises `SourceError`; `fetch()` returns a local parquet file (`Fetched`).
Network sources send every request through acquire.http, under their `DownloadPolicy`.
Secrets (a Hub token, a signed query) never appear in a repr, an error or a log line. Names
from a listing are untrusted: `cache_name` turns them into a file name that stays inside the
cache directory.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")  # a checksum as listings give it
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 120  # sanitized name characters kept in a cache file name


@dataclass(frozen=True)
class RemoteShard:
    """One shard as a source lists it."""

    source: str  # the source's name
    uri: str  # stable identity: redacted URL (redact.py), s3://bucket/key, or local path
    name: str  # file name (last path component), for display and cache file naming
    size: int | None
    etag: str | None  # HTTP ETag / HF oid / None
    sha256: str | None  # the source's checksum when it offers one, lower-case hex
    mtime: datetime | None = None  # tz-aware UTC when known
    # The URL as listed, secrets included (user info, a signed query), when it differs from
    # `uri`: used for the request only, never shown, stored or compared.
    fetch_url: str | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def request_url(self) -> str:
        return self.fetch_url or self.uri


@dataclass(frozen=True)
class Fetched:
    """A local parquet file ready to read, with its size and SHA-256."""

    path: Path
    size: int
    sha256: str
    # The server's validator (ETag, else Last-Modified) for a later "changed?" request.
    validator: str | None = None


class SourceError(Exception):
    """Listing (or a non-HTTP fetch) failed; the reason never contains a secret."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"source {source!r}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes (Prefect workers)
        return (type(self), (self.source, self.reason))


class Source(Protocol):
    """Where a dataset's shards live: list them, fetch one into a cache folder."""

    name: str

    def list(self) -> builtins.list[RemoteShard]:
        """The shards, sorted by URI; raises SourceError."""
        ...

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """A local copy of `shard` (or the file itself); raises DownloadError or SourceError."""
        ...


def cache_name(shard: RemoteShard) -> str:
    """A safe, collision-free local file name: `<sha256(uri)[:16]>-<sanitized name>.parquet`.

    The result has no path separator, no NUL and never is `.` or `..`, so joining it to the
    cache directory stays inside it whatever the (untrusted) listed name was.
    """
    digest = hashlib.sha256(shard.uri.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    safe = _UNSAFE.sub("_", shard.name)
    if safe.endswith(".parquet"):
        safe = safe[: -len(".parquet")]
    safe = safe[:_MAX_NAME] or "shard"
    return f"{digest}-{safe}.parquet"


@runtime_checkable
class NetworkSource(Protocol):
    """A source that contacts HTTP(S) origins (an HTTP manifest, the Hub)."""

    @property
    def hosts(self) -> frozenset[str]:
        """The origins (`host`, or `host:port` off the default port) it may contact."""
        ...


def allowed_hosts(sources: Iterable[Source]) -> frozenset[str]:
    """The union of the origins (`host` or `host:port`) the network sources (HTTP listing,
    Hugging Face) may contact."""
    hosts: set[str] = set()
    for source in sources:
        if isinstance(source, NetworkSource):
            hosts |= source.hosts
    return frozenset(hosts)


def is_parquet(name: str) -> bool:
    return name.lower().endswith(".parquet")
