"""Hub source: the parquet files of a Hugging Face dataset repository, via the Hub HTTP API.

`HubRepo` names the files (repository, revision, path, endpoint, and the CDN hosts downloads
are redirected to); `HuggingFaceSource` lists them with
`GET {endpoint}/api/datasets/{repo}/tree/{revision}/{path}?recursive=true`, following
`Link: <...>; rel="next"` pages on the endpoint's own origin, and downloads each `resolve`
URL. Every request, tree pages included, goes through acquire.http under the source's
`DownloadPolicy` (its allow-list is the repository's hosts): each hop checked, bounded
retries, the page size capped, and the one credential rule, so the token (a `SecretStr`, read
only when a request is made) goes to the endpoint's origin only and never to the CDN or any
other origin a redirect leads to.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from shardwatch.acquire.download import download
from shardwatch.acquire.http import Body, HttpClient, Sleep, check_url
from shardwatch.acquire.policy import (
    DownloadError,
    DownloadPolicy,
    host_of,
    origin_entry,
    same_origin,
)
from shardwatch.acquire.sources import (
    SHA256,
    Fetched,
    RemoteShard,
    SourceError,
    cache_name,
    is_parquet,
)
from shardwatch.core import bounded_json
from shardwatch.core.bounded_json import DEFAULT_LISTING_LIMITS, ListingLimits
from shardwatch.core.redact import redact_url

logger = logging.getLogger(__name__)

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
DEFAULT_HF_EXTRA_HOSTS = frozenset(
    {
        "cdn-lfs.huggingface.co",
        "cdn-lfs-us-1.huggingface.co",
        "cdn-lfs.hf.co",
        "cas-bridge.xethub.hf.co",
    }
)


@dataclass(frozen=True)
class HubRepo:
    """Which files of which Hub dataset repository, checked when made: `repo` is
    `owner/name`, `path` a folder in it (no `.` or `..`), `endpoint` an http(s) URL without
    query or credentials, `extra_hosts` the CDN origins its downloads redirect to."""

    repo: str
    revision: str = "main"
    path: str = ""
    endpoint: str = "https://huggingface.co"
    extra_hosts: frozenset[str] = DEFAULT_HF_EXTRA_HOSTS

    def __post_init__(self) -> None:
        repo, revision = self.repo, self.revision
        if not _REPO.match(repo) or any(part in (".", "..") for part in repo.split("/")):
            raise ValueError(f"repo must be 'owner/name' ([A-Za-z0-9_.-]): {repo!r}")
        if not revision or revision in (".", ".."):
            raise ValueError(f"invalid revision: {revision!r}")
        segments = [s for s in self.path.split("/") if s]
        if any(s in (".", "..") or "\x00" in s for s in segments):
            raise ValueError(f"invalid path in repo: {self.path!r}")
        ep = urlsplit(self.endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname or ep.query or ep.fragment:
            raise ValueError(f"endpoint must be an http(s) URL without query: {self.endpoint!r}")
        if ep.username or ep.password:
            raise ValueError("endpoint must not contain credentials")
        object.__setattr__(self, "path", "/".join(segments))
        object.__setattr__(self, "endpoint", self.endpoint.rstrip("/"))
        object.__setattr__(self, "extra_hosts", frozenset(h.lower() for h in self.extra_hosts))

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


class HuggingFaceSource:
    """The parquet files of a Hub dataset repository (`HubRepo`). `policy` gives the
    timeouts, retries and limits of every request (its allow-list and headers are replaced
    by the repository's hosts and, at request time, the token); `listing` bounds the tree."""

    def __init__(
        self,
        name: str,
        hub: HubRepo,
        *,
        token: SecretStr | None = None,
        policy: DownloadPolicy | None = None,
        listing: ListingLimits = DEFAULT_LISTING_LIMITS,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.name = name
        self.hub = hub
        secret = token.get_secret_value() if token is not None else ""
        self._token: SecretStr | None = token if secret else None
        self.listing = listing
        self._sleep = sleep
        # No headers here: the token is put into a copy only at the moment of a request.
        base = policy if policy is not None else DownloadPolicy(allowed_hosts=hub.hosts)
        self._policy = dataclasses.replace(base, allowed_hosts=hub.hosts, headers={})

    def __repr__(self) -> str:
        token = "SecretStr('**********')" if self._token is not None else "None"
        hub = self.hub
        return (
            f"HuggingFaceSource(name={self.name!r}, repo={hub.repo!r},"
            f" revision={hub.revision!r}, path={hub.path!r}, endpoint={hub.endpoint!r},"
            f" token={token})"
        )

    @property
    def hosts(self) -> frozenset[str]:
        """The endpoint's origin and the CDN hosts downloads are redirected to."""
        return self.hub.hosts

    def list(self) -> builtins.list[RemoteShard]:
        """Every `*.parquet` file under `path` (directories and other files skipped)."""
        shards: dict[str, RemoteShard] = {}
        entries = 0
        with HttpClient(self._policy, sleep=self._sleep) as client:
            for page_no, items in enumerate(self._pages(client)):
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
        logger.debug("source %r: %d parquet files in %s", self.name, len(shards), self.hub.repo)
        return sorted(shards.values(), key=lambda s: s.uri)

    def _pages(self, client: HttpClient) -> Iterator[builtins.list[object]]:
        """Each page's JSON list, following `next` links: at most `listing.max_pages` pages
        (a server that always offers a new one is cut off there), each within the byte,
        depth and value limits."""
        limits = self.listing
        seen: set[str] = set()
        url: str | None = self.hub.tree_url()
        while url is not None:
            if url in seen:
                raise SourceError(self.name, f"Hub pagination loops at {redact_url(url)}")
            if len(seen) >= limits.max_pages:
                raise SourceError(
                    self.name, f"Hub tree: refused: more than {limits.max_pages:,} pages"
                )
            seen.add(url)
            page = self._page(client, url)
            url = self._next(page)
            try:
                data = bounded_json.parse(page.content, limits)
            except bounded_json.ListingRefused as exc:
                raise SourceError(
                    self.name, f"Hub tree page {len(seen)}: refused: {exc.reason}"
                ) from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SourceError(
                    self.name, f"Hub tree page {len(seen)}: invalid JSON ({exc})"
                ) from None
            if not isinstance(data, builtins.list):
                raise SourceError(self.name, f"Hub tree page {len(seen)}: expected a JSON list")
            yield data

    def _page(self, client: HttpClient, url: str) -> Body:
        """One tree page through the client (retried; the token goes to the endpoint's
        origin only, by the client's credential rule)."""
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            return client.get(url, limit=self.listing.max_bytes, headers=headers)
        except DownloadError as exc:  # its reason is secret-free
            after = "" if exc.permanent else f" (after {self._policy.attempts} attempts)"
            reason = f"GET {redact_url(url)}: {exc.reason}{_hint(exc.status)}{after}"
            raise SourceError(self.name, reason) from None

    def _next(self, page: Body) -> str | None:
        """The next page's URL, which must be on the endpoint's own origin."""
        following = page.next_url
        if following is None:
            return None
        try:
            check_url(following, self._policy)
            on_endpoint = same_origin(following, self.hub.endpoint)
        except DownloadError:
            on_endpoint = False
        if not on_endpoint:
            raise SourceError(
                self.name,
                f"Hub next page on host {host_of(following)!r}, not on {self.hub.endpoint}",
            )
        return following

    def _shard(self, page: int, i: int, item: object) -> RemoteShard | None:
        def bad(reason: str) -> SourceError:
            return SourceError(self.name, f"Hub tree page {page + 1}: entry {i}: {reason}")

        if not isinstance(item, dict):
            raise bad("expected an object")
        kind, path = item.get("type"), item.get("path")
        if not isinstance(path, str) or not path:
            raise bad("missing 'path'")
        if kind != "file" or not is_parquet(path):
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
            if not isinstance(lfs_oid, str) or not SHA256.match(lfs_oid):
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
            uri=self.hub.resolve_url(path),
            name=segments[-1],
            size=size,
            etag=oid,
            sha256=sha256,
        )

    def fetch(self, shard: RemoteShard, cache: Path) -> Fetched:
        """Download the resolve URL (token to the endpoint only) checking size and sha256."""
        if not same_origin(shard.uri, self.hub.endpoint):
            raise SourceError(self.name, f"{redact_url(shard.uri)} is not on {self.hub.endpoint}")
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


def _hint(status: int | None) -> str:
    if status in (401, 403):
        return " (private or gated repository? give a token with access)"
    if status == 404:
        return " (no such dataset repository, revision or path)"
    return ""


def _quote_path(path: str) -> str:
    return "/".join(quote(segment, safe="") for segment in path.split("/"))
