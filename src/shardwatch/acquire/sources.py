"""Sources: list a dataset's shards where they live, and fetch one into the local cache.

A source is a local folder or glob (`LocalSource`), an HTTP(S) manifest of shard URLs
(`HttpListingSource`), a Hugging Face dataset repository (`HuggingFaceSource`) or an object
store prefix (`ObjectStoreSource`: s3://, gs://, file://). `list()` returns `RemoteShard`s
sorted by URI or raises `SourceError`; `fetch()` returns a local parquet file (`Fetched`).

Network rules: every HTTP(S) request hop goes through `shardwatch.acquire.download`, whose policy
refuses origins (host and port) outside the source's allow-list (redirects included) and
forbidden addresses. The one exception is the Hub's paginated tree listing, which needs the
`Link` response header: `_HubLister` requests it itself under the same rules (allow-list
checked on every hop, the address guard and low-speed watch, no automatic redirects, the
policy's timeouts, attempts and backoff, a size cap). Secrets (the Hub token) are `SecretStr`,
read only when a request is made, and never appear in a repr, an error or a log line. Names
from a listing are untrusted: `cache_name` turns them into a file name that stays inside the
cache directory.
"""

from __future__ import annotations

import builtins
import dataclasses
import glob
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
from pydantic import SecretStr
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from shardwatch.acquire.download import (
    AddressRefused,
    DownloadError,
    DownloadPolicy,
    Watch,
    download,
    fetch_bytes,
    guarded_session,
    host_of,
    origin_entry,
    watched,
)
from shardwatch.core import bounded_json
from shardwatch.core.bounded_json import DEFAULT_LISTING_LIMITS, ListingLimits
from shardwatch.core.errors import first_line
from shardwatch.core.redact import redact_url, url_problem

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]

_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_GLOB_MAGIC = re.compile(r"[*?[]")
_MAX_NAME = 120  # sanitized name characters kept in a cache file name
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
DEFAULT_HF_EXTRA_HOSTS = frozenset(
    {
        "cdn-lfs.huggingface.co",
        "cdn-lfs-us-1.huggingface.co",
        "cdn-lfs.hf.co",
        "cas-bridge.xethub.hf.co",
    }
)


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


def allowed_hosts(sources: Iterable[Source]) -> frozenset[str]:
    """The union of the origins (`host` or `host:port`) the network sources (HTTP listing,
    Hugging Face) may contact."""
    hosts: set[str] = set()
    for source in sources:
        if isinstance(source, HttpListingSource | HuggingFaceSource):
            hosts |= source.hosts
    return frozenset(hosts)


# --- local files --------------------------------------------------------------------------


class LocalSource:
    """Local parquet files: a folder's `*.parquet` (not recursive) or a glob (`**` allowed)."""

    def __init__(self, name: str, pattern: str) -> None:
        self.name = name
        self.pattern = pattern

    def __repr__(self) -> str:
        return f"LocalSource(name={self.name!r}, pattern={self.pattern!r})"

    def list(self) -> builtins.list[RemoteShard]:
        """Size and mtime of each file (no checksum: that means reading it; fetch does)."""
        expanded = os.path.expanduser(self.pattern)
        base = Path(expanded)
        try:
            if base.is_dir():
                files = [p for p in base.iterdir() if _is_parquet(p.name) and p.is_file()]
            elif base.is_file():
                files = [base]
            elif _GLOB_MAGIC.search(expanded):
                files = [Path(p) for p in glob.glob(expanded, recursive=True)]
                files = [p for p in files if p.is_file()]
            else:
                raise SourceError(self.name, f"no such folder or file: {self.pattern}")
            shards = [self._shard(p) for p in files]
        except OSError as exc:
            raise SourceError(
                self.name, f"cannot list {self.pattern}: {first_line(exc, limit=300)}"
            ) from None
        shards.sort(key=lambda s: s.uri)
        logger.debug("source %r: %d local shards", self.name, len(shards))
        return shards

    def _shard(self, path: Path) -> RemoteShard:
        absolute = os.path.abspath(path)
        st = os.stat(absolute)
        return RemoteShard(
            source=self.name,
            uri=absolute,
            name=os.path.basename(absolute),
            size=st.st_size,
            etag=None,
            sha256=None,
            mtime=_from_ns(st.st_mtime_ns),
        )

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """The file itself (no copy), hashed by streaming it once."""
        path = Path(shard.uri)
        try:
            with path.open("rb") as fh:
                digest = hashlib.sha256()
                size = 0
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise SourceError(
                self.name, f"cannot read {shard.uri}: {first_line(exc, limit=300)}"
            ) from None
        if shard.size is not None and size != shard.size:
            raise SourceError(
                self.name, f"{shard.uri} changed since listing: {size} bytes, listed {shard.size}"
            )
        return Fetched(path=path, size=size, sha256=digest.hexdigest())


# --- HTTP(S) manifest ---------------------------------------------------------------------


class HttpListingSource:
    """Shard URLs listed by an HTTP(S) manifest (JSON or one URL per line) on allowed hosts."""

    def __init__(
        self,
        name: str,
        manifest_url: str,
        *,
        policy: DownloadPolicy,
        listing: ListingLimits = DEFAULT_LISTING_LIMITS,
        sleep: Sleep = time.sleep,
    ) -> None:
        problem = url_problem(manifest_url)
        if problem is not None:
            raise ValueError(f"manifest URL: {problem}")
        if urlsplit(manifest_url).scheme not in ("http", "https"):
            raise ValueError(f"manifest URL must be http(s): {_display(manifest_url)}")
        self.name = name
        self.manifest_url = manifest_url
        self.policy = policy
        self.listing = listing
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"HttpListingSource(name={self.name!r}, manifest_url={_display(self.manifest_url)!r},"
            f" hosts={sorted(self.hosts)!r})"
        )

    @property
    def hosts(self) -> frozenset[str]:
        """The origins (`host`, or `host:port` off the default port) this source may contact."""
        return self.policy.allowed_hosts

    def list(self) -> builtins.list[RemoteShard]:
        """Read the manifest; every URL must be http(s) on an allowed origin."""
        where = _display(self.manifest_url)
        if not self.policy.allows(self.manifest_url):
            host = origin_entry(self.manifest_url)
            raise SourceError(self.name, f"manifest host {host!r} is not in the allowed hosts")
        try:
            body, content_type = fetch_bytes(
                self.manifest_url,
                policy=self.policy,
                limit=self.listing.max_bytes,
                sleep=self._sleep,
            )
        except DownloadError as exc:  # its reason is secret-free
            raise SourceError(self.name, f"manifest {where}: {exc.reason}") from None
        entries = _parse_manifest(self.name, where, body, content_type, self.listing)
        shards: dict[str, RemoteShard] = {}
        for i, entry in enumerate(entries):
            shard = self._shard(i, entry)
            previous = shards.setdefault(shard.uri, shard)
            if previous.request_url != shard.request_url:
                raise SourceError(
                    self.name,
                    f"manifest {where}: entry {i}: {shard.uri} is listed twice with a different"
                    " query or user info; those are not part of a shard's identity (redacted)",
                )
            if previous != shard:
                raise SourceError(
                    self.name,
                    f"manifest {where}: entry {i}: {_display(shard.uri)} listed twice with"
                    " different size, sha256 or etag",
                )
        logger.debug("source %r: %d shards in manifest %s", self.name, len(shards), where)
        return sorted(shards.values(), key=lambda s: s.uri)

    def _shard(self, i: int, entry: _Entry) -> RemoteShard:
        url = urljoin(self.manifest_url, entry.url)
        problem = url_problem(url)
        if problem is not None:  # said without the URL: it may hold part of a password
            raise SourceError(
                self.name, f"manifest {_display(self.manifest_url)}: entry {i}: {problem}"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(
                self.name,
                f"manifest {_display(self.manifest_url)}: entry {i}: not an http(s) URL:"
                f" {_display(url)!r}",
            )
        if not self.policy.allows(url):
            host = origin_entry(url)
            raise SourceError(
                self.name,
                f"manifest {_display(self.manifest_url)}: entry {i}: host {host!r} is not in"
                " the allowed hosts",
            )
        name = unquote(parts.path.rsplit("/", 1)[-1])
        if not name:
            raise SourceError(
                self.name,
                f"manifest {_display(self.manifest_url)}: entry {i}: URL has no file name:"
                f" {_display(url)!r}",
            )
        shown = redact_url(url)
        return RemoteShard(
            source=self.name,
            uri=shown,
            name=name,
            size=entry.size,
            etag=entry.etag,
            sha256=entry.sha256,
            fetch_url=url if url != shown else None,
        )

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """Download into `cache`, checking the listed size and sha256 (raises DownloadError)."""
        cache.mkdir(parents=True, exist_ok=True)
        got = download(
            shard.request_url,
            cache / cache_name(shard),
            policy=self.policy,
            expected_size=shard.size,
            expected_sha256=shard.sha256,
            sleep=self._sleep,
        )
        return Fetched(path=got.path, size=got.size, sha256=got.sha256, validator=got.validator)


@dataclass(frozen=True)
class _Entry:
    url: str
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None


def _parse_manifest(
    source: str, where: str, body: bytes, content_type: str | None, limits: ListingLimits
) -> builtins.list[_Entry]:
    """JSON (list of URLs or objects, or {"shards": [...]}) or text (one URL per line),
    within `limits` (bounded_json.py)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(source, f"manifest {where}: not UTF-8 (byte {exc.start})") from None
    is_json = "json" in (content_type or "").lower() or text.lstrip()[:1] in ("[", "{")
    if not is_json:
        urls = [u for line in text.splitlines() if (u := line.strip()) and not u.startswith("#")]
        if len(urls) > limits.max_entries:
            raise SourceError(
                source,
                f"manifest {where}: refused: lists {len(urls):,} URLs, above the limit of"
                f" {limits.max_entries:,}",
            )
        return [_Entry(u) for u in urls]
    try:
        data = bounded_json.parse(body, limits)
    except bounded_json.ListingRefused as exc:
        raise SourceError(source, f"manifest {where}: refused: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(
            source,
            f"manifest {where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    if isinstance(data, dict):
        if "shards" not in data:
            raise SourceError(source, f"manifest {where}: JSON object without a 'shards' list")
        data = data["shards"]
    if not isinstance(data, builtins.list):
        raise SourceError(source, f"manifest {where}: expected a JSON list of shards")
    return [_entry(source, where, i, item) for i, item in enumerate(data)]


def _entry(source: str, where: str, i: int, item: object) -> _Entry:
    def bad(reason: str) -> SourceError:
        return SourceError(source, f"manifest {where}: entry {i}: {reason}")

    if isinstance(item, str):
        return _Entry(item)
    if not isinstance(item, dict):
        raise bad("expected a URL string or an object with 'url'")
    url, size, sha, etag = item.get("url"), item.get("size"), item.get("sha256"), item.get("etag")
    if not isinstance(url, str) or not url:
        raise bad("missing 'url' (a string)")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad("'size' must be a non-negative integer")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        raise bad("'sha256' must be 64 hex digits")
    if etag is not None and not isinstance(etag, str):
        raise bad("'etag' must be a string")
    return _Entry(url, size, sha.lower() if sha else None, etag)


# --- Hugging Face Hub ---------------------------------------------------------------------


class HuggingFaceSource:
    """The parquet files of a Hugging Face DATASET repository, via the Hub HTTP API.

    Lists `GET {endpoint}/api/datasets/{repo}/tree/{revision}/{path}?recursive=true`, following
    `Link: <...>; rel="next"` pages on the endpoint's own origin. Shard URIs are the `resolve`
    URLs; the token (if any) is sent to the endpoint only: the Hub redirects downloads to its
    CDN (`extra_hosts`), which gets no Authorization header.
    """

    def __init__(
        self,
        name: str,
        repo: str,
        *,
        revision: str = "main",
        path: str = "",
        token: SecretStr | None = None,
        endpoint: str = "https://huggingface.co",
        extra_hosts: frozenset[str] = DEFAULT_HF_EXTRA_HOSTS,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 1.0,
        backoff_cap: float = 30.0,
        max_redirects: int = 5,
        max_bytes: int | None = None,
        min_speed: int = 1024,
        speed_window: float = 60.0,
        allow_private: bool | None = None,
        listing: ListingLimits = DEFAULT_LISTING_LIMITS,
        cache_max_bytes: int | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if not _REPO.match(repo) or any(part in (".", "..") for part in repo.split("/")):
            raise ValueError(f"repo must be 'owner/name' ([A-Za-z0-9_.-]): {repo!r}")
        if not revision or revision in (".", ".."):
            raise ValueError(f"invalid revision: {revision!r}")
        segments = [s for s in path.split("/") if s]
        if any(s in (".", "..") or "\x00" in s for s in segments):
            raise ValueError(f"invalid path in repo: {path!r}")
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname or ep.query or ep.fragment:
            raise ValueError(f"endpoint must be an http(s) URL without query: {endpoint!r}")
        if ep.username or ep.password:
            raise ValueError("endpoint must not contain credentials")
        self.name = name
        self.repo = repo
        self.revision = revision
        self.path = "/".join(segments)
        self.endpoint = endpoint.rstrip("/")
        self.extra_hosts = frozenset(h.lower() for h in extra_hosts)
        secret = token.get_secret_value() if token is not None else ""
        self._token: SecretStr | None = token if secret else None
        self.listing = listing
        self._sleep = sleep
        # No headers here: the token is put into a copy only at the moment of a request.
        self._policy = DownloadPolicy(
            allowed_hosts=self.hosts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            attempts=attempts,
            backoff=backoff,
            backoff_cap=backoff_cap,
            max_redirects=max_redirects,
            max_bytes=max_bytes,
            min_speed=min_speed,
            speed_window=speed_window,
            allow_private=allow_private,
            cache_max_bytes=cache_max_bytes,
        )

    def __repr__(self) -> str:
        token = "SecretStr('**********')" if self._token is not None else "None"
        return (
            f"HuggingFaceSource(name={self.name!r}, repo={self.repo!r},"
            f" revision={self.revision!r}, path={self.path!r}, endpoint={self.endpoint!r},"
            f" token={token})"
        )

    @property
    def hosts(self) -> frozenset[str]:
        """The endpoint's origin and the CDN hosts downloads are redirected to."""
        return frozenset({origin_entry(self.endpoint)}) | self.extra_hosts

    def tree_url(self) -> str:
        """The first page of the recursive tree listing."""
        url = f"{self.endpoint}/api/datasets/{self.repo}/tree/{quote(self.revision, safe='')}"
        if self.path:
            url += "/" + _quote_path(self.path)
        return url + "?recursive=true"

    def resolve_url(self, path: str) -> str:
        """The download URL of a file of the repository."""
        return (
            f"{self.endpoint}/datasets/{self.repo}/resolve/{quote(self.revision, safe='')}/"
            f"{_quote_path(path)}"
        )

    def list(self) -> builtins.list[RemoteShard]:
        """Every `*.parquet` file under `path` (directories and other files skipped)."""
        lister = _HubLister(
            self.name, self.endpoint, self._policy, self._token, self._sleep, self.listing
        )
        shards: dict[str, RemoteShard] = {}
        entries = 0
        for page_no, items in enumerate(lister.pages(self.tree_url())):
            entries += len(items)
            if entries > self.listing.max_entries:
                raise SourceError(
                    self.name,
                    f"Hub tree: refused: more than {self.listing.max_entries:,} entries"
                    f" (by page {page_no + 1:,})",
                )
            for i, item in enumerate(items):
                shard = self._shard(page_no, i, item)
                if shard is not None:
                    shards[shard.uri] = shard
        logger.debug("source %r: %d parquet files in %s", self.name, len(shards), self.repo)
        return sorted(shards.values(), key=lambda s: s.uri)

    def _shard(self, page: int, i: int, item: object) -> RemoteShard | None:
        def bad(reason: str) -> SourceError:
            return SourceError(self.name, f"Hub tree page {page + 1}: entry {i}: {reason}")

        if not isinstance(item, dict):
            raise bad("expected an object")
        kind, path = item.get("type"), item.get("path")
        if not isinstance(path, str) or not path:
            raise bad("missing 'path'")
        if kind != "file" or not _is_parquet(path):
            return None
        segments = path.split("/")
        if any(s in ("", ".", "..") or "\x00" in s for s in segments):
            raise bad(f"unsafe path {path!r}")
        oid, size, lfs = item.get("oid"), item.get("size"), item.get("lfs")
        sha256: str | None = None
        if lfs is not None:
            if not isinstance(lfs, dict):
                raise bad("'lfs' must be an object")
            lfs_oid, lfs_size = lfs.get("oid"), lfs.get("size")
            if not isinstance(lfs_oid, str) or not _SHA256.match(lfs_oid):
                raise bad("'lfs.oid' must be a sha256 (64 hex digits)")
            sha256 = lfs_oid.lower()
            if lfs_size is not None:
                size = lfs_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise bad("'size' must be a non-negative integer")
        if oid is not None and not isinstance(oid, str):
            raise bad("'oid' must be a string")
        return RemoteShard(
            source=self.name,
            uri=self.resolve_url(path),
            name=segments[-1],
            size=size,
            etag=oid,
            sha256=sha256,
        )

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """Download the resolve URL (token to the endpoint only) checking size and sha256."""
        if not _same_origin(shard.uri, self.endpoint):
            raise SourceError(self.name, f"{_display(shard.uri)} is not on {self.endpoint}")
        policy = self._policy
        if self._token is not None:
            auth = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
            policy = dataclasses.replace(policy, headers=auth)
        cache.mkdir(parents=True, exist_ok=True)
        got = download(
            shard.uri,
            cache / cache_name(shard),
            policy=policy,
            expected_size=shard.size,
            expected_sha256=shard.sha256,
            sleep=self._sleep,
        )
        return Fetched(path=got.path, size=got.size, sha256=got.sha256, validator=got.validator)


class _HubLister:
    """GET the Hub's paginated JSON listing: allow-listed hops, retries, a size cap."""

    def __init__(
        self,
        source: str,
        endpoint: str,
        policy: DownloadPolicy,
        token: SecretStr | None,
        sleep: Sleep,
        limits: ListingLimits,
    ) -> None:
        self.source = source
        self.endpoint = endpoint
        self.policy = policy
        self.token = token
        self.sleep = sleep
        self.limits = limits

    def pages(self, first: str) -> Iterator[builtins.list[object]]:
        """Each page's JSON list, following `next` links: at most `limits.max_pages`
        pages (a server that always offers a new one is cut off there), each within the
        byte, depth and value limits."""
        seen: set[str] = set()
        url: str | None = first
        with guarded_session() as session:
            while url is not None:
                if url in seen:
                    raise SourceError(self.source, f"Hub pagination loops at {_display(url)}")
                if len(seen) >= self.limits.max_pages:
                    raise SourceError(
                        self.source,
                        f"Hub tree: refused: more than {self.limits.max_pages:,} pages",
                    )
                seen.add(url)
                body, url = self._get(session, url)
                try:
                    data = bounded_json.parse(body, self.limits)
                except bounded_json.ListingRefused as exc:
                    raise SourceError(
                        self.source, f"Hub tree page {len(seen)}: refused: {exc.reason}"
                    ) from None
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise SourceError(
                        self.source, f"Hub tree page {len(seen)}: invalid JSON ({exc})"
                    ) from None
                if not isinstance(data, builtins.list):
                    raise SourceError(
                        self.source, f"Hub tree page {len(seen)}: expected a JSON list"
                    )
                yield data

    def _get(self, session: requests.Session, url: str) -> tuple[bytes, str | None]:
        """One page, retried on transient failures: (body, next page URL or None)."""
        last = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                with watched(self.policy) as watch:
                    return self._attempt(session, url, watch)
            except _Transient as exc:
                last = str(exc)
                logger.debug("source %r: %s (attempt %d)", self.source, last, attempt)
                wait = self.policy.backoff * 2 ** (attempt - 1) if exc.wait is None else exc.wait
                if attempt < self.policy.attempts:
                    self.sleep(min(self.policy.backoff_cap, wait))
        raise SourceError(self.source, f"{last} (after {self.policy.attempts} attempts)")

    def _attempt(
        self, session: requests.Session, url: str, watch: Watch
    ) -> tuple[bytes, str | None]:
        hop = url
        for _ in range(self.policy.max_redirects + 1):
            if not _unambiguous(hop):
                raise SourceError(self.source, f"refusing a malformed URL: {_display(hop)!r}")
            if not self.policy.allows(hop):
                host = origin_entry(hop)
                raise SourceError(self.source, f"refusing host {host!r}: not in the allowed hosts")
            watch.expect(hop)
            headers = {"Accept": "application/json"}
            if self.token is not None and _same_origin(hop, self.endpoint):
                headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
            try:
                response = session.get(
                    hop,
                    headers=headers,
                    allow_redirects=False,
                    stream=True,
                    timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                )
            except AddressRefused as exc:
                raise SourceError(self.source, f"GET {_display(hop)}: {exc.reason}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                why = watch.expired or type(exc).__name__
                raise _Transient(f"GET {_display(hop)}: {why}") from None
            except requests.RequestException as exc:  # its text may carry the URL
                raise SourceError(
                    self.source, f"GET {_display(hop)}: {type(exc).__name__}"
                ) from None
            with response:
                status = response.status_code
                if status in _REDIRECT_STATUS and "Location" in response.headers:
                    hop = urljoin(hop, response.headers["Location"])
                    continue
                if status in _TRANSIENT_STATUS:
                    wait = _retry_after(response.headers.get("Retry-After"))
                    raise _Transient(f"GET {_display(hop)}: HTTP {status}", wait)
                if status != 200:
                    raise SourceError(
                        self.source, f"GET {_display(hop)}: HTTP {status}{_hint(status)}"
                    )
                body = self._read(response, hop, watch)
                following = response.links.get("next", {}).get("url")
            if following is None:
                return body, None
            following = urljoin(hop, following)
            if not _unambiguous(following) or not _same_origin(following, self.endpoint):
                raise SourceError(
                    self.source,
                    f"Hub next page on host {host_of(following)!r}, not on {self.endpoint}",
                )
            return body, following
        raise SourceError(
            self.source, f"GET {_display(url)}: more than {self.policy.max_redirects} redirects"
        )

    def _read(self, response: requests.Response, hop: str, watch: Watch) -> bytes:
        chunks: builtins.list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(1 << 16):
                watch.progress(len(chunk))
                total += len(chunk)
                if total > self.limits.max_bytes:
                    raise SourceError(
                        self.source,
                        f"GET {_display(hop)}: refused: page larger than"
                        f" {self.limits.max_bytes:,} bytes",
                    )
                chunks.append(chunk)
        except requests.RequestException as exc:
            why = watch.expired or type(exc).__name__
            raise _Transient(f"GET {_display(hop)}: {why}") from None
        if watch.expired is not None:  # cut off: the page is not whole
            raise _Transient(f"GET {_display(hop)}: {watch.expired}")
        return b"".join(chunks)


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, 429, 5xx); the text is secret-free.
    `wait`: the server's Retry-After in seconds, if it sent a numeric one."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or seconds != seconds else max(0.0, seconds)


def _unambiguous(url: str) -> bool:
    """http(s), no whitespace, backslash or control character, and urllib and urllib3 agree
    on the host (a disagreement is how allow-list checks get bypassed)."""
    if any(c in url for c in "\\ ") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port
        other = (parse_url(url).host or "").strip("[]").rstrip(".").lower()
    except (ValueError, LocationParseError):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and other == host_of(url)


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (private or gated repository? give a token with access)"
    if status == 404:
        return " (no such dataset repository, revision or path)"
    return ""


# --- object stores (pyarrow.fs) -----------------------------------------------------------


class ObjectStoreSource:
    """Parquet files under an object store prefix: s3://bucket/prefix, gs://..., file:///dir.

    Lists recursively through `pyarrow.fs` (size, mtime). `fetch` streams the object into the
    cache, hashing it as it goes, checks the size, and renames it into place atomically, then
    writes `<file>.sha256`; a later fetch re-uses the cache file while its size and mtime (set
    to the object's) match the listing and the sidecar holds its hash. Paths are taken
    literally (no percent-decoding), like S3 keys.
    """

    _SCHEMES = ("s3", "gs", "file")

    def __init__(
        self,
        name: str,
        uri: str,
        *,
        region: str | None = None,
        endpoint_override: str | None = None,
        anonymous: bool = False,
    ) -> None:
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme not in self._SCHEMES:
            raise ValueError(f"object store URI must be s3://, gs:// or file:///: {uri!r}")
        if scheme == "file":
            if not rest.startswith("/"):
                raise ValueError(f"file URI must be absolute (file:///dir): {uri!r}")
            base = "/" + rest.strip("/")
        else:
            base = rest.strip("/")
            if not base or rest.startswith("/"):
                raise ValueError(f"object store URI needs a bucket: {uri!r}")
        self.name = name
        self.uri = uri
        self.scheme = scheme
        self.base = base
        self.region = region
        self.endpoint_override = endpoint_override
        self.anonymous = anonymous
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"ObjectStoreSource(name={self.name!r}, uri={self.uri!r})"

    def _filesystem(self) -> Any:
        if self._fs is None:
            from pyarrow import fs as pa_fs

            if self.scheme == "s3":
                self._fs = pa_fs.S3FileSystem(
                    region=self.region,
                    endpoint_override=self.endpoint_override,
                    anonymous=self.anonymous,
                )
            elif self.scheme == "gs":
                self._fs = pa_fs.GcsFileSystem(
                    anonymous=self.anonymous, endpoint_override=self.endpoint_override
                )
            else:
                self._fs = pa_fs.LocalFileSystem()
        return self._fs

    def _uri(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def _path(self, uri: str) -> str:
        prefix = f"{self.scheme}://"
        path = uri[len(prefix) :] if uri.startswith(prefix) else ""
        under = path.startswith(self.base.rstrip("/") + "/")
        if not under or any(s in (".", "..") for s in path.split("/")):
            raise SourceError(self.name, f"{uri!r} is not under {self.uri}")
        return path

    def list(self) -> builtins.list[RemoteShard]:
        """Every `*.parquet` object under the prefix (recursive), with size and mtime."""
        from pyarrow import fs as pa_fs

        try:
            infos = self._filesystem().get_file_info(pa_fs.FileSelector(self.base, recursive=True))
        except (OSError, ValueError) as exc:
            raise SourceError(
                self.name, f"cannot list {self.uri}: {first_line(exc, limit=300)}"
            ) from None
        shards = [
            RemoteShard(
                source=self.name,
                uri=self._uri(info.path),
                name=info.base_name,
                size=info.size,
                etag=None,
                sha256=None,
                mtime=_utc(info.mtime),
            )
            for info in infos
            if info.type == pa_fs.FileType.File and _is_parquet(info.base_name)
        ]
        shards.sort(key=lambda s: s.uri)
        logger.debug("source %r: %d objects under %s", self.name, len(shards), self.uri)
        return shards

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """The cached copy if still valid, else stream the object into the cache."""
        path = self._path(shard.uri)
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / cache_name(shard)
        sidecar = target.with_name(target.name + ".sha256")
        reused = _reuse(target, sidecar, shard)
        if reused is not None:
            logger.debug("source %r: cache hit for %s", self.name, shard.uri)
            return reused
        sidecar.unlink(missing_ok=True)
        fd, part_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=cache)
        part = Path(part_name)
        try:
            with os.fdopen(fd, "wb") as out:
                size, sha256 = self._copy(shard, path, out)
            if shard.mtime is not None:
                ns = _ns(shard.mtime)
                os.utime(part, ns=(ns, ns))
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        _write_atomic(sidecar, f"{sha256}\n")
        logger.debug("source %r: fetched %s (%d bytes)", self.name, shard.uri, size)
        return Fetched(path=target, size=size, sha256=sha256)

    def _copy(self, shard: RemoteShard, path: str, out: Any) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._filesystem().open_input_stream(path) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if shard.size is not None and size > shard.size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, ValueError) as exc:
            raise SourceError(
                self.name, f"cannot read {shard.uri}: {first_line(exc, limit=300)}"
            ) from None
        if shard.size is not None and size != shard.size:
            got = f"{size}" if size <= shard.size else f"more than {shard.size}"
            raise SourceError(
                self.name, f"{shard.uri}: size mismatch: read {got} bytes, listed {shard.size}"
            )
        return size, digest.hexdigest()


def _reuse(target: Path, sidecar: Path, shard: RemoteShard) -> Fetched | None:
    """The cache file, if its size (and mtime) match the listing and the sidecar is sound."""
    if shard.size is None:
        return None
    try:
        st = target.stat()
        recorded = sidecar.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if st.st_size != shard.size or not _SHA256.match(recorded):
        return None
    if shard.mtime is not None and st.st_mtime_ns // 1000 != _ns(shard.mtime) // 1000:
        return None
    return Fetched(path=target, size=st.st_size, sha256=recorded.lower())


# --- helpers ------------------------------------------------------------------------------


def _is_parquet(name: str) -> bool:
    return name.lower().endswith(".parquet")


def _quote_path(path: str) -> str:
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    try:
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:  # an invalid port
        return False


def _display(url: str) -> str:
    """A URL for messages: redacted (redact.py: no user info, no query value, no fragment)."""
    return redact_url(url)


def _from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns // 1000) % 1_000_000
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ns(value: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (no float rounding)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
