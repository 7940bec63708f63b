"""Download: stream a remote shard into the cache, resumable, verified, never spliced.

Every request goes through acquire.http (`HttpClient`: hops checked against the allow-list
and the address guard, the one credential rule across redirects, bounded retries with
backoff and Retry-After, identity bodies only). A download streams into `<dest>.part`,
hashing as it goes, verifies size and sha256, and only then renames it onto `dest`
(`os.replace`), so `dest` is either absent or complete. A previous part is resumed with
`Range` only under `If-Range: <validator>`, the strong ETag or Last-Modified persisted beside
it in `<dest>.part.meta` (acquire.partial): without one the download starts from zero, and a
206 whose validator or Content-Range does not continue the part is discarded, so two
versions of a file are never spliced. The cache folder's budget (`cache_max_bytes`) counts
partial files; a download that would exceed it, or that hits a full disk, removes its
partial file and fails alone. Errors never carry a header value or a query string (signed
URLs carry tokens).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from shardwatch.acquire.guard import watched
from shardwatch.acquire.http import (
    CHUNK,
    HttpClient,
    Retry,
    Sleep,
    check_url,
    chunks,
    declared_length,
    refuse_encoding,
    refuse_status,
)
from shardwatch.acquire.partial import (
    DISK_FULL,
    PartMeta,
    Validator,
    change_validator,
    drop,
    read_meta,
    resume_validator,
    url_digest,
    usage,
    write_meta,
)
from shardwatch.acquire.policy import DownloadError, DownloadPolicy

logger = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Downloaded:
    """A complete, verified file at `path`."""

    path: Path
    size: int
    sha256: str  # hex
    etag: str | None  # the final response's ETag header, if any
    resumed: bool  # True if a previous partial file was continued with Range
    # The server's validator for a later "changed?" request (partial.Validator.text()).
    validator: str | None = None


def download(
    url: str,
    dest: Path,
    *,
    policy: DownloadPolicy,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    sleep: Sleep = time.sleep,
) -> Downloaded:
    """Download `url` to `dest` (resuming `<dest>.part`), verified; or raise DownloadError.
    An existing `dest` that matches the expectations is returned without any request."""
    check_url(url, policy)
    want_sha = expected_sha256.lower() if expected_sha256 is not None else None
    if dest.exists() and want_sha is None:  # nothing proves it is the server's current file
        dest.unlink()
    if dest.exists():
        size, sha = _hash_file(dest)
        if (want_sha is None or sha == want_sha) and (
            expected_size is None or size == expected_size
        ):
            return Downloaded(dest, size, sha, None, False)
        logger.debug("%s: cached file does not match, downloading again", dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create the cache directory ({exc.strerror})"
        raise DownloadError(url, reason, permanent=False) from None
    job = _Download(url, dest, part, policy, expected_size, want_sha)
    with HttpClient(policy, sleep=sleep) as client:
        return client.retrying(url, lambda: job.attempt(client))


class _Download:
    """One download's state across attempts. Errors name the URL asked for. What a partial
    file continues lives on disk (`<part>.meta`), so it holds across attempts, Prefect's
    fetch retries and passes alike."""

    def __init__(
        self,
        url: str,
        dest: Path,
        part: Path,
        policy: DownloadPolicy,
        expected_size: int | None,
        expected_sha256: str | None,
    ) -> None:
        self.url, self.dest, self.part, self.policy = url, dest, part, policy
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256
        self.meta: PartMeta | None = None  # what the part continues (None: no part)

    def error(self, reason: str, *, permanent: bool) -> DownloadError:
        return DownloadError(self.url, reason, permanent=permanent)

    def attempt(self, client: HttpClient) -> Downloaded:
        have = self.resumable()
        if have and have == self.expected_size:  # complete, and a sha256 will prove it
            return self.finish(self.part_digest(), have, None, resumed=False, from_part=True)
        extra: dict[str, str] = {}
        if have and self.meta is not None:
            extra["Range"] = f"bytes={have}-"
            extra["If-Range"] = self.meta.validator.value
        with watched(self.policy):
            response = client.open(self.url, extra)
            try:
                return self.receive(response, have)
            finally:
                response.close()

    def resumable(self) -> int:
        """The bytes of the part a request may continue: 0 (and no part) unless its meta
        names this URL and a validator. A part as long as the file is shortened by a byte,
        so the server confirms the validator before it is used (unless a sha256 proves it)."""
        have = self.part.stat().st_size if self.part.exists() else 0
        meta = read_meta(self.part) if have else None
        if meta is None or meta.url_hash != url_digest(self.url):
            if have:
                logger.debug("%s: a partial file without a validator: from zero", self.dest)
            drop(self.part)
            self.meta = None
            return 0
        self.meta = meta
        full = self.expected_size if self.expected_size is not None else meta.total
        if full is not None and have >= full:
            if have > full or have <= 1:
                drop(self.part)
                return 0
            if self.expected_sha256 is None:
                os.truncate(self.part, have - 1)
                return have - 1
        return have

    def part_digest(self) -> hashlib._Hash:
        digest = hashlib.sha256()
        with self.part.open("rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
        return digest

    def restart(self, reason: str) -> Retry:
        """Discard the part: the next attempt starts from zero, without waiting."""
        drop(self.part)
        return Retry(self.error(reason, permanent=False), 0.0)

    def receive(self, response: requests.Response, have: int) -> Downloaded:
        status = response.status_code
        if status == 416 and have:  # the part does not fit the object (any more)
            raise self.restart("HTTP 416 for the partial file; restarting from zero")
        refuse_status(response, self.url, self.policy)
        refuse_encoding(response, self.url)
        length = declared_length(response)
        resumed = status == 206
        if resumed:
            if not have or self.meta is None:
                raise self.error("HTTP 206 to a request without Range", permanent=True)
            if not self.meta.validator.seen_in(response.headers):
                raise self.restart(
                    "HTTP 206 without the partial file's validator (the file changed);"
                    " restarting from zero"
                )
            total = self.content_range(response, have, length)
            if self.meta.total is not None and total != self.meta.total:
                raise self.restart("HTTP 206 for a file of another size; restarting from zero")
        elif status == 200:
            have = 0  # the server ignored Range (or there was none): from zero
            total = length
        else:
            raise self.error(f"unexpected HTTP {status}", permanent=True)
        if total is not None:
            self.check_declared(total)
            self.check_budget(total - have, have)
        if not resumed:
            self.begin(resume_validator(response.headers), total)
        digest = self.part_digest() if resumed else hashlib.sha256()
        received = self.stream(response, have, digest, append=resumed)
        size = have + received
        if length is not None and received < length:
            reason = f"body truncated at {size:,} of {have + length:,} bytes"
            raise Retry(self.error(reason, permanent=False))
        if total is None and self.expected_size is not None and size < self.expected_size:
            reason = f"body ended at {size:,} of {self.expected_size:,} bytes"
            raise Retry(self.error(reason, permanent=False))
        if total is not None and size != total:
            drop(self.part)
            reason = f"got {size:,} bytes, the server declared {total:,}"
            raise self.error(reason, permanent=True)
        found = change_validator(response.headers)
        seen = found.text() if found is not None else None
        etag = response.headers.get("ETag")
        return self.finish(digest, size, etag, resumed=resumed, from_part=resumed, seen=seen)

    def begin(self, validator: Validator | None, total: int | None) -> None:
        """A body from zero: the old part and meta go first, then the new meta (if the server
        gave a validator a resume can send), then the body is written."""
        drop(self.part)
        self.meta = None
        if validator is None:
            return
        meta = PartMeta.of(self.url, validator, total)
        try:
            write_meta(self.part, meta)
        except OSError as exc:
            raise self.disk_error(exc) from None
        self.meta = meta

    def disk_error(self, exc: OSError) -> DownloadError:
        """A write failed: on a full disk the part goes (it would keep the cache full)."""
        if exc.errno in DISK_FULL:
            drop(self.part)
            reason = f"the cache is full ({exc.strerror}); the partial file was removed"
            return self.error(reason, permanent=False)
        return self.error(f"cannot write the partial file ({exc.strerror})", permanent=False)

    def check_budget(self, more: int, have: int) -> None:
        """Refuse a download that would take the cache folder over its budget."""
        budget = self.policy.cache_max_bytes
        if budget is None:
            return
        used = usage(self.part.parent, besides=self.part)
        if used + have + more > budget:
            drop(self.part)
            reason = (
                f"the cache is full: {used + have + more:,} bytes with this file, above the"
                f" cache budget of {budget:,}; the partial file was removed"
            )
            raise self.error(reason, permanent=False)

    def content_range(
        self, response: requests.Response, have: int, length: int | None
    ) -> int | None:
        """The total size from a 206's Content-Range, which must start where the part ends."""
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != have:
            raise self.restart(
                "HTTP 206 with a Content-Range that does not continue the partial file"
            )
        start, end, total = int(match.group(1)), int(match.group(2)), match.group(3)
        if end < start or (length is not None and length != end - start + 1):
            raise self.restart("HTTP 206 whose Content-Length does not match its Content-Range")
        return None if total == "*" else int(total)

    def check_declared(self, total: int) -> None:
        """Refuse a declared size above `max_bytes` or other than `expected_size`."""
        cap = self.policy.max_bytes
        if cap is not None and total > cap:
            drop(self.part)
            raise self.error(
                f"declares {total:,} bytes, above the limit of {cap:,}", permanent=True
            )
        if self.expected_size is not None and total != self.expected_size:
            drop(self.part)
            reason = f"declares {total:,} bytes, expected {self.expected_size:,}"
            raise self.error(reason, permanent=True)

    def stream(
        self, response: requests.Response, have: int, digest: hashlib._Hash, *, append: bool
    ) -> int:
        """Append the body to the part (or replace the part), hashing; the bytes received.
        A network failure keeps what arrived (the next attempt resumes it, if the part has a
        validator); the cache budget or a full disk removes it."""
        cap = self.policy.max_bytes
        budget = self.policy.cache_max_bytes
        room = None if budget is None else budget - usage(self.part.parent, besides=self.part)
        received = 0
        try:
            with self.part.open("ab" if append else "wb") as fh:
                try:
                    for chunk in chunks(response, self.url):
                        received += len(chunk)
                        if cap is not None and have + received > cap:
                            reason = f"body exceeds the limit of {cap:,} bytes"
                            raise self.error(reason, permanent=True)
                        if room is not None and have + received > room:
                            reason = (
                                f"the cache is full: the body exceeds the cache budget of"
                                f" {budget:,} bytes; the partial file was removed"
                            )
                            raise self.error(reason, permanent=False)
                        fh.write(chunk)
                        digest.update(chunk)
                finally:
                    fh.flush()
                    os.fsync(fh.fileno())
        except DownloadError:
            drop(self.part)
            raise
        except OSError as exc:
            raise self.disk_error(exc) from None
        return received

    def finish(
        self,
        digest: hashlib._Hash,
        size: int,
        etag: str | None,
        *,
        resumed: bool,
        from_part: bool,
        seen: str | None = None,
    ) -> Downloaded:
        """Verify the complete part, then rename it onto `dest`. A sha256 mismatch of a file
        that continued an earlier part is retried from zero (the part may be stale)."""
        if self.expected_size is not None and size != self.expected_size:
            drop(self.part)
            reason = f"got {size:,} bytes, expected {self.expected_size:,}"
            raise self.error(reason, permanent=True)
        sha = digest.hexdigest()
        if self.expected_sha256 is not None and sha != self.expected_sha256:
            drop(self.part)
            reason = f"sha256 mismatch: got {sha}, expected {self.expected_sha256}"
            if from_part:
                raise Retry(self.error(reason, permanent=True), 0.0)
            raise self.error(reason, permanent=True)
        try:
            os.replace(self.part, self.dest)
        except OSError as exc:
            reason = f"cannot move the file into place ({exc.strerror})"
            raise self.error(reason, permanent=False) from None
        drop(self.part)  # the meta
        if seen is None and self.meta is not None:
            seen = self.meta.validator.text()
        return Downloaded(self.dest, size, sha, etag, resumed, seen)


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
