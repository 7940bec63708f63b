"""HTTP client: the one way shardwatch sends an HTTP(S) request to a source.

Listings (an HTTP manifest, the Hub's tree pages), downloads, `fetch_bytes` and the "changed?"
question all go through `HttpClient`, one guarded session (acquire.guard) under one
`DownloadPolicy`:

- Every hop (the first URL and each redirect target) is checked before it is requested: http(s),
  not malformed or ambiguous (urllib and urllib3 must agree on the host), on an allowed origin.
  Redirects are followed by hand, at most `max_redirects`, and a loop is named as such.
- One credential rule across redirects: `Authorization`, `Proxy-Authorization` and `Cookie`
  (the policy's headers and the request's, a Hub token included) are sent while the hops stay
  on the first URL's origin (scheme, host, port; an upgrade from http:80 to https:443 on the
  same host counts as the same origin, as in requests), and are dropped for the rest of the
  chain as soon as one hop leaves it: they never come back, even if a later hop returns.
- One retry rule: 408, 425, 429 and 5xx are transient; a numeric `Retry-After` on 429 and 503
  is honoured (core.retry_after, capped at `backoff_cap`); other waits are the policy's capped
  exponential backoff; at most `attempts` tries; other statuses are permanent at once.
- Bodies are asked for unencoded (`Accept-Encoding: identity`); one with another
  `Content-Encoding` (a gzip bomb) is refused before any of it is read, and a small body
  (`get`, `fetch_bytes`) is cut off at its size limit. Errors are `DownloadError`s that carry
  neither a header value nor a query string.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from urllib3.util import parse_url

from shardwatch.acquire.guard import (
    AddressRefused,
    ascii_host,
    current_watch,
    guarded_session,
    watched,
)
from shardwatch.acquire.policy import (
    DownloadError,
    DownloadPolicy,
    display_origin,
    host_of,
    origin_of,
    safe_url,
)
from shardwatch.core.retry_after import retry_after

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]
T = TypeVar("T")

CHUNK = 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Dropped from the headers for the rest of a chain once a redirect leaves the first origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
TRANSIENT = frozenset({408, 425, 429})  # and every 5xx
_NO_HEADERS: Mapping[str, str] = {}


class Retry(Exception):
    """A transient failure: retry after `wait` seconds (None: the policy's backoff)."""

    def __init__(self, error: DownloadError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


@dataclass(frozen=True)
class Body:
    """A small response body read whole (`HttpClient.get`)."""

    content: bytes
    content_type: str | None
    # The `Link: <...>; rel="next"` target, resolved against the final hop's URL.
    next_url: str | None = None


def check_url(
    url: str, policy: DownloadPolicy, *, redirect: bool = False, origin: str | None = None
) -> None:
    """Refuse (permanently) a URL that may not be requested: not http(s), malformed or
    ambiguous (urllib and urllib3 disagree on its host), or a host off the allow-list.
    Errors name `origin` (the URL asked for) when given."""
    what = "redirect to" if redirect else "URL with"
    named = url if origin is None else origin
    if any(c in url for c in "\\ ") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise DownloadError(named, f"{what} a malformed URL is not allowed", permanent=True)
    try:
        parts = urlsplit(url)
        host = host_of(url)
        parsed = (parse_url(url).host or "").strip("[]").rstrip(".").lower()
        _ = parts.port  # raises on a bad port
    except (ValueError, urllib3.exceptions.LocationParseError):
        reason = f"{what} a malformed URL is not allowed"
        raise DownloadError(named, reason, permanent=True) from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme.lower()[:16] or "none"
        raise DownloadError(named, f"{what} scheme {scheme!r} is not allowed", permanent=True)
    if not host or ascii_host(host) != ascii_host(parsed):
        raise DownloadError(named, f"{what} an ambiguous host is not allowed", permanent=True)
    if not policy.allows(url):
        where = display_origin(url)
        raise DownloadError(named, f"{what} host {where} is not allowed", permanent=True)


def keeps_credentials(first: str, target: str) -> bool:
    """May a request to `target`, reached by redirects from `first`, carry credentials?
    Only on the first URL's origin (an upgrade from http:80 to https:443 on the same host
    included, as requests does). `HttpClient.open` also drops them for good once a hop
    has left that origin."""
    a, b = origin_of(first), origin_of(target)
    if a == b:
        return True
    return a[1] == b[1] and (a[0], a[2], b[0], b[2]) == ("http", 80, "https", 443)


class HttpClient:
    """One guarded session under one policy: `open` one request (its redirects followed by
    hand), `retrying` attempts of a job, and `get` a small body. A context manager: the
    session closes on exit."""

    def __init__(self, policy: DownloadPolicy, *, sleep: Sleep = time.sleep) -> None:
        self.policy = policy
        self.sleep = sleep
        self.session = guarded_session()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def retrying(self, url: str, attempt: Callable[[], T]) -> T:
        """Call `attempt()` up to `policy.attempts` times, sleeping between transient
        failures (`Retry`); raise the last error. `url` is checked first."""
        check_url(url, self.policy)
        policy = self.policy
        last = DownloadError(url, "not attempted", permanent=False)
        attempts = max(1, policy.attempts)
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except Retry as retry:
                last = retry.error
                wait = policy.delay(number) if retry.wait is None else retry.wait
                logger.debug("%s (attempt %d of %d)", last, number, attempts)
            if number < attempts and wait > 0:
                self.sleep(wait)
        raise last

    def open(self, url: str, headers: Mapping[str, str] = _NO_HEADERS) -> requests.Response:
        """GET `url` inside a `watched(policy)` block, following redirects by hand with each
        hop checked before it is requested. Returns the first non-redirect response
        (streaming, not yet read). `headers` (the policy's, then these) lose their
        credentials for good once a hop leaves the first URL's origin."""
        policy = self.policy
        base = {"Accept-Encoding": "identity", **policy.headers, **headers}
        current = url
        visited = [url]
        credentials = True
        watch = current_watch()
        while True:
            credentials = credentials and keeps_credentials(url, current)
            sent = base
            if not credentials:
                sent = {k: v for k, v in base.items() if k.lower() not in CREDENTIAL_HEADERS}
            where = "" if current == url else f" (redirected to host {display_origin(current)})"
            watch.expect(current)
            try:
                response = self.session.get(
                    current,
                    headers=sent,
                    stream=True,
                    allow_redirects=False,
                    timeout=(policy.connect_timeout, policy.read_timeout),
                )
            except AddressRefused as exc:
                raise DownloadError(url, f"{exc.reason}{where}", permanent=True) from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                if watch.expired is not None:
                    reason = f"{watch.expired}{where}"
                elif isinstance(exc, requests.Timeout):
                    reason = f"timed out{where}"
                else:
                    reason = f"connection failed or was reset{where}"
                raise Retry(DownloadError(url, reason, permanent=False)) from None
            except requests.RequestException as exc:  # its text would carry the URL or a header
                raise DownloadError(url, f"{type(exc).__name__}{where}", permanent=True) from None
            logger.debug("GET %s: HTTP %d", safe_url(current), response.status_code)
            if response.status_code not in REDIRECTS:
                return response
            status = response.status_code
            location = response.headers.get("Location")
            response.close()
            if not location:
                reason = f"HTTP {status} without a Location{where}"
                raise DownloadError(url, reason, permanent=True, status=status)
            if len(visited) > policy.max_redirects:
                reason = f"more than {policy.max_redirects} redirects"
                raise DownloadError(url, reason, permanent=True)
            target = urljoin(current, location.strip())
            check_url(target, policy, redirect=True, origin=url)
            if target in visited:
                loop = " -> ".join(safe_url(u) for u in [*visited[visited.index(target) :], target])
                raise DownloadError(url, f"redirect loop: {loop}", permanent=True)
            visited.append(target)
            current = target

    def get(self, url: str, *, limit: int, headers: Mapping[str, str] = _NO_HEADERS) -> Body:
        """A small body (a manifest, an API page), at most `limit` bytes, with retries."""

        def once() -> Body:
            with watched(self.policy):
                response = self.open(url, headers)
                try:
                    return _small_body(response, url, self.policy, limit)
                finally:
                    response.close()

        return self.retrying(url, once)


def _small_body(response: requests.Response, url: str, policy: DownloadPolicy, limit: int) -> Body:
    refuse_status(response, url, policy)
    refuse_encoding(response, url)
    length = declared_length(response)
    if length is not None and length > limit:
        reason = f"declares {length:,} bytes, above the limit of {limit:,}"
        raise DownloadError(url, reason, permanent=True)
    body = bytearray()
    for chunk in chunks(response, url):
        body += chunk
        if len(body) > limit:
            raise DownloadError(url, f"body exceeds the limit of {limit:,} bytes", permanent=True)
    if length is not None and len(body) < length:
        reason = f"body truncated at {len(body):,} of {length:,} bytes"
        raise Retry(DownloadError(url, reason, permanent=False))
    following = response.links.get("next", {}).get("url")
    next_url = urljoin(response.url, following) if following is not None else None
    return Body(bytes(body), response.headers.get("Content-Type"), next_url)


def fetch_bytes(
    url: str,
    *,
    policy: DownloadPolicy,
    limit: int = 16 * 1024 * 1024,
    sleep: Sleep = time.sleep,
) -> tuple[bytes, str | None]:
    """Small GET (e.g. a manifest) through `HttpClient.get`: the same hop checks, credential
    rule, timeouts and retries; returns (body, final content-type). Refuses bodies over
    `limit` (or the policy's `max_bytes`, if lower)."""
    cap = limit if policy.max_bytes is None else min(limit, policy.max_bytes)
    with HttpClient(policy, sleep=sleep) as client:
        body = client.get(url, limit=cap)
    return body.content, body.content_type


def refuse_status(response: requests.Response, url: str, policy: DownloadPolicy) -> None:
    """Raise for a status that is not a success: 408, 425, 429 and 5xx are transient (with a
    capped Retry-After on 429 and 503), other statuses permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    response.close()
    transient = status in TRANSIENT or status >= 500
    error = DownloadError(url, f"HTTP {status}", permanent=not transient, status=status)
    if not transient:
        raise error
    wait = None
    if status in (429, 503):
        wait = retry_after(response.headers.get("Retry-After"), policy.backoff_cap)
    raise Retry(error, wait)


def refuse_encoding(response: requests.Response, url: str) -> None:
    """Refuse a body the server encoded although identity was asked for (e.g. a gzip bomb):
    it is never decoded, and never kept as if it were the file."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        response.close()
        reason = (
            f"refused Content-Encoding {encoding[:24]!r} (identity was asked for; an encoded"
            " body is never decoded)"
        )
        raise DownloadError(url, reason, permanent=True)


def declared_length(response: requests.Response) -> int | None:
    """The Content-Length header as a number (None when absent or not a number)."""
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def chunks(response: requests.Response, url: str) -> Iterator[bytes]:
    """The raw body (no content decoding) in chunks as they arrive (so the watch sees the
    progress); network failures and a transfer the watch cut off become `Retry`."""
    watch = current_watch()
    while True:
        try:
            chunk = response.raw.read1(CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            timeout = isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError)
            reason = "timed out while reading" if timeout else "body truncated (connection lost)"
            reason = watch.expired or reason
            raise Retry(DownloadError(url, reason, permanent=False)) from None
        if watch.expired is not None:  # the watch cut the connection: the body is not whole
            raise Retry(DownloadError(url, watch.expired, permanent=False))
        if not chunk:
            return
        watch.progress(len(chunk))
        yield chunk
