"""HTTP listing source: shard URLs listed by an HTTP(S) manifest, on the allowed origins only.

The manifest is read with `fetch_bytes` and each shard with `download` (acquire.http: every
hop checked, the one credential rule, bounded retries), under the source's `DownloadPolicy`;
its entries (acquire.manifest) must be http(s) URLs on the policy's allowed origins. A URL's
user info and query are secrets: the shard's `uri` is the redacted URL, the URL as listed is
used for the request only.
"""

from __future__ import annotations

import builtins
import logging
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from shardwatch.acquire.download import download
from shardwatch.acquire.http import Sleep, fetch_bytes
from shardwatch.acquire.manifest import Entry, parse_manifest
from shardwatch.acquire.policy import DownloadError, DownloadPolicy, origin_entry
from shardwatch.acquire.sources import Fetched, RemoteShard, SourceError, cache_name
from shardwatch.core.bounded_json import DEFAULT_LISTING_LIMITS, ListingLimits
from shardwatch.core.redact import redact_url, url_problem

logger = logging.getLogger(__name__)


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
        scheme = urlsplit(manifest_url).scheme
        if scheme not in ("http", "https"):
            shown = f"scheme {scheme!r}" if scheme else "no scheme (http:// or https://)"
            raise ValueError(f"manifest URL must be http(s), not {shown}")
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
        entries = parse_manifest(self.name, where, body, content_type, self.listing)
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

    def _shard(self, i: int, entry: Entry) -> RemoteShard:
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


def _display(url: str) -> str:
    """A URL for messages: redacted (redact.py: no user info, no query value, no fragment)."""
    return redact_url(url)
