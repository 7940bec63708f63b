"""Download: stream a remote shard into the cache, resumable, verified, never following a
redirect off the allow-list.

Every request hop (the first URL and each redirect target) must be http(s) on an origin in
`DownloadPolicy.allowed_hosts` (`host` for the scheme's default port, `host:port` for another
port), or it is never requested: this is the SSRF guard (a redirect to 169.254.169.254, or
from a shard server on loopback to a database on another loopback port, is refused before
any connection is made). The address a host name resolves to is checked when connecting, and
the connection is made to that checked address: link-local (cloud metadata) and unspecified
addresses never, loopback and private addresses only when the policy allows them (by default
when the allow-list itself names such an address or `localhost`), so a public name that
resolves, or is rebound, to an internal address is refused. Redirects are followed by hand,
at most `max_redirects`, a loop is named as such, and `Authorization` (and `Cookie`,
`Proxy-Authorization`) is dropped as soon as a hop leaves the first URL's origin.

Connect and read timeouts are always set, and a transfer slower than `min_speed` bytes/s over
any `speed_window` seconds (headers included) is cut off, so a drip of a few bytes per second
cannot hold a worker. Retries are bounded (`attempts`) with capped exponential backoff,
honouring a numeric `Retry-After` on 429 and 503; other 4xx are permanent at once. Bodies are
asked for and kept unencoded (`Accept-Encoding: identity`): a response with another
`Content-Encoding` (a gzip bomb) is refused before any of its body is read.

A download streams into `<dest>.part`, hashing as it goes, verifies size and sha256, and only
then renames it onto `dest` (`os.replace`), so `dest` is either absent or complete. A previous
part is resumed with `Range` only under `If-Range: <validator>`, the strong ETag or
Last-Modified persisted beside it in `<dest>.part.meta` (acquire.partial): without one the
download starts from zero, and a 206 whose validator or Content-Range does not continue the
part is discarded, so two versions of a file are never spliced. The cache folder's budget
(`cache_max_bytes`) counts partial files; a download that would exceed it, or that hits a
full disk, removes its partial file and fails alone. Errors never carry a header value or a
query string (signed URLs carry tokens), and urllib3's DEBUG request lines have their query
redacted.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from urllib3.util import parse_url

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
from shardwatch.core.redact import redact_target, redact_url

logger = logging.getLogger(__name__)

Sleep = Callable[[float], None]
T = TypeVar("T")

CHUNK = 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Dropped from the headers as soon as a redirect leaves the first URL's origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class DownloadPolicy:
    """Where and how to download. `headers` may hold a secret (e.g. `Authorization`): it is
    sent, never logged, never put in an error."""

    # Lower-case origins every hop must be on: `host` (the scheme's default port, 80 or 443)
    # or `host:port` (`[v6]:port`); `origin_entry(url)` gives a configured URL's entry.
    allowed_hosts: frozenset[str]
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    min_speed: int = 1024  # bytes/s: a transfer slower than this over speed_window is cut off
    speed_window: float = 60.0  # seconds (headers included)
    # Loopback/private addresses: None = allowed iff the allow-list names one (or localhost).
    allow_private: bool | None = None
    attempts: int = 4  # total tries per download (bounded)
    backoff: float = 1.0  # first wait; doubles per attempt
    backoff_cap: float = 30.0  # also caps Retry-After
    max_redirects: int = 5
    max_bytes: int | None = None  # refuse a body larger than this (declared or actual)
    cache_max_bytes: int | None = None  # the cache folder's budget, partial files included
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show header values
        return (
            f"DownloadPolicy(allowed_hosts={sorted(self.allowed_hosts)!r}, "
            f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}, "
            f"min_speed={self.min_speed}, speed_window={self.speed_window}, "
            f"allow_private={self.allow_private}, attempts={self.attempts}, "
            f"backoff={self.backoff}, "
            f"backoff_cap={self.backoff_cap}, max_redirects={self.max_redirects}, "
            f"max_bytes={self.max_bytes}, cache_max_bytes={self.cache_max_bytes}, "
            f"headers={sorted(self.headers)!r})"
        )

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based): backoff * 2**(attempt-1), capped."""
        return float(min(self.backoff_cap, self.backoff * 2 ** (attempt - 1)))

    def allows(self, url: str) -> bool:
        """True when the URL's origin (scheme's default port or explicit port) is allowed."""
        return is_allowed(url, self.allowed_hosts)

    def private_ok(self) -> bool:
        """May a connection go to a loopback or private address? (Link-local: never.)"""
        if self.allow_private is not None:
            return self.allow_private
        return any(_names_private(entry) for entry in self.allowed_hosts)


class DownloadError(Exception):
    """A download failed. `permanent`: retrying will not help (refused, 4xx, mismatch).
    `url` has no query string and no user info; nothing here carries a header value."""

    def __init__(self, url: str, reason: str, *, permanent: bool) -> None:
        self.url = safe_url(url)
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"{self.url}: {reason}")


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


def host_of(url: str) -> str:
    """The lower-case host name of a URL, without port, brackets or a trailing dot ("" if
    there is none)."""
    return (urlsplit(url).hostname or "").rstrip(".").lower()


def _with_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def origin_entry(url: str) -> str:
    """The allow-list entry for a URL's origin: its host, plus `:port` unless the port is the
    scheme's default (so `https://hub.example` gives `hub.example`, `http://127.0.0.1:8080/m`
    gives `127.0.0.1:8080`)."""
    parts = urlsplit(url)
    host = host_of(url)
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return _with_port(host, port)


def is_allowed(url: str, allowed: frozenset[str]) -> bool:
    """True when `url` is http(s) and its origin is in `allowed`: `host:port`, or `host` alone
    when the port is the scheme's default. A bare host never allows another port."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return False
    host = host_of(url)
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return False
    return _with_port(host, port) in allowed or (port == _DEFAULT_PORTS[scheme] and host in allowed)


def _display_origin(url: str) -> str:
    """`host` or `host:port` (non-default port) of a URL, for messages."""
    try:
        return origin_entry(url)
    except ValueError:
        return host_of(url)


def safe_url(url: str) -> str:
    """The URL for messages: redacted (shardwatch.core.redact: no user info or query values)."""
    return redact_url(url)


# ------------------------------------------------------------------------------ internals
class _Retry(Exception):
    """A transient failure: retry after `wait` seconds (None: the policy's backoff)."""

    def __init__(self, error: DownloadError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class _RedactQuery(logging.Filter):
    """urllib3 logs each request line (path and query) at DEBUG, and a URL with a header
    parsing warning; signed URLs carry tokens in the query, so it is replaced by
    `?name=REDACTED` (shardwatch.core.redact)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "?" in a for a in record.args
        ):
            record.args = tuple(_redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact(text: str) -> str:
    if "?" in text and (text.startswith("/") or "://" in text):
        return redact_target(text)
    return text


# urllib3.connection logs the full URL when a response's headers do not parse (a server
# cut off mid-headers): redacted there too.
for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager"):
    logging.getLogger(_name).addFilter(_RedactQuery())


# ------------------------------------------------------- address guard and low-speed watch
class AddressRefused(Exception):
    """A connection the address rule refused before connecting (raised inside requests)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _names_private(entry: str) -> bool:
    """Does an allow-list entry name localhost or a loopback/private IP address?"""
    host = entry[1:].partition("]")[0] if entry.startswith("[") else entry
    if not entry.startswith("[") and entry.count(":") == 1:
        host = entry.partition(":")[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not _address(host).is_global
    except ValueError:
        return False


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.partition("%")[0])
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped if mapped is not None else ip


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, private_ok: bool) -> str | None:
    """Why a connection to `ip` is refused (None: it is not)."""
    if ip.is_link_local:
        return "a link-local address (cloud metadata)"
    if ip.is_unspecified or ip.is_multicast:
        return "an unspecified or multicast address"
    if not ip.is_global and not private_ok:
        return "a loopback or private address (the sources are not on one)"
    return None


class Watch:
    """One attempt's guards, for the requests made in this thread while it is entered: the
    address rule for each connection (`expect(url)` names the host being requested; a
    connection to another host is a proxy's, left to the proxy) and the low-speed limit. A
    watchdog thread cuts the attempt's connections when fewer than `min_speed *
    speed_window` bytes arrived in a window; `expired` then says why."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self.policy = policy
        self.host = ""
        self.received = 0
        self.expired: str | None = None
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-watch", daemon=True)

    def __enter__(self) -> Watch:
        if getattr(_local, "watch", None) is not None:
            raise RuntimeError("a download watch is already active in this thread")
        _local.watch = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _local.watch = None
        self._stop.set()

    def expect(self, url: str) -> None:
        self.host = _ascii_host(host_of(url))

    def progress(self, n: int) -> None:
        with self._lock:
            self.received += n

    def register(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)

    def _run(self) -> None:
        window = max(0.05, self.policy.speed_window)
        floor = self.policy.min_speed * window
        mark, mark_bytes = time.monotonic(), 0
        while not self._stop.wait(min(1.0, window / 4)):
            now = time.monotonic()
            if now - mark < window:
                continue
            with self._lock:
                got = self.received - mark_bytes
                if got >= floor:
                    mark, mark_bytes = now, self.received
                    continue
                self.expired = (
                    f"too slow: {got:,} bytes in {window:g} s (the minimum is "
                    f"{self.policy.min_speed:,} bytes/s)"
                )
                connections = list(self._connections)
            logger.debug("download watch: %s; cutting the connection", self.expired)
            for connection in connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            return


_local = threading.local()


def watched(policy: DownloadPolicy) -> Watch:
    """The guards for one attempt: `with watched(policy) as watch:` around the requests of a
    `guarded_session()`."""
    return Watch(policy)


def _watch() -> Watch:
    watch: Watch | None = getattr(_local, "watch", None)
    if watch is None:
        raise RuntimeError("a guarded session is used outside `watched(policy)`")
    return watch


def _guarded_conn(connection: Any, connect: Callable[[], socket.socket]) -> socket.socket:
    """Resolve the host, refuse a forbidden address, and connect to the checked address (so
    a second lookup cannot rebind it)."""
    watch = _watch()
    host = str(connection.host).strip("[]").rstrip(".").lower()
    if _ascii_host(host) != watch.host:  # a proxy: it resolves and connects itself
        return connect()
    try:
        infos = socket.getaddrinfo(host, connection.port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return connect()  # urllib3 raises its own name resolution error
    private_ok = watch.policy.private_ok()
    for info in infos:
        reason = _refusal(_address(str(info[4][0])), private_ok)
        if reason is not None:
            where = host if not _names_private(host) else f"{host} ({info[4][0]})"
            raise AddressRefused(f"connection to {where} refused: {reason}")
    saved = connection._dns_host
    connection._dns_host = str(infos[0][4][0])
    try:
        return connect()
    finally:
        connection._dns_host = saved


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_conn(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch().register(self)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_conn(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch().register(self)
        super().request(*args, **kwargs)


class _GuardedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def guarded_session() -> requests.Session:
    """A session whose direct connections obey the address rule of the active `Watch`."""
    session = requests.Session()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _checked(
    url: str, policy: DownloadPolicy, *, redirect: bool, origin: str | None = None
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
    if not host or _ascii_host(host) != _ascii_host(parsed):
        raise DownloadError(named, f"{what} an ambiguous host is not allowed", permanent=True)
    if not policy.allows(url):
        where = _display_origin(url)
        raise DownloadError(named, f"{what} host {where} is not allowed", permanent=True)


def _ascii_host(host: str) -> str:
    """An internationalised host name in its ASCII (IDNA) form, as urllib3 connects to it."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, host_of(url), parts.port or _DEFAULT_PORTS.get(scheme)


def _keeps_credentials(first: str, target: str) -> bool:
    """Credentials follow a redirect only within the first URL's origin (an upgrade from
    http to https on default ports included), as requests does."""
    a, b = _origin(first), _origin(target)
    if a == b:
        return True
    return a[1] == b[1] and (a[0], a[2], b[0], b[2]) == ("http", 80, "https", 443)


def _retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a numeric Retry-After header, capped; None when absent or not numeric."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return float(min(cap, max(0.0, seconds)))


def _open(
    session: requests.Session,
    url: str,
    policy: DownloadPolicy,
    extra: Mapping[str, str],
) -> requests.Response:
    """GET `url`, following redirects by hand with the allow-list checked before each hop.
    Returns the first non-redirect response (streaming, not yet read). Credentials are
    dropped for good once a hop leaves the first URL's origin."""
    base = {"Accept-Encoding": "identity", **policy.headers}
    current = url
    visited = [url]
    credentials = True
    watch = _watch()
    while True:
        credentials = credentials and _keeps_credentials(url, current)
        headers = dict(base)
        if not credentials:
            headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
        headers.update(extra)
        where = "" if current == url else f" (redirected to host {_display_origin(current)})"
        watch.expect(current)
        try:
            response = session.get(
                current,
                headers=headers,
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
            raise _Retry(DownloadError(url, reason, permanent=False)) from None
        except requests.RequestException as exc:  # its text would carry the URL or a header
            raise DownloadError(url, f"{type(exc).__name__}{where}", permanent=True) from None
        logger.debug("GET %s: HTTP %d", safe_url(current), response.status_code)
        if response.status_code not in REDIRECTS:
            return response
        status = response.status_code
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise DownloadError(url, f"HTTP {status} without a Location{where}", permanent=True)
        if len(visited) > policy.max_redirects:
            reason = f"more than {policy.max_redirects} redirects"
            raise DownloadError(url, reason, permanent=True)
        target = urljoin(current, location.strip())
        _checked(target, policy, redirect=True, origin=url)
        if target in visited:
            loop = " -> ".join(safe_url(u) for u in [*visited[visited.index(target) :], target])
            raise DownloadError(url, f"redirect loop: {loop}", permanent=True)
        visited.append(target)
        current = target


def _refuse_status(response: requests.Response, url: str, policy: DownloadPolicy) -> None:
    """Raise for a status that is not a success: 429 and 5xx are transient (with a capped
    Retry-After on 429 and 503), other statuses permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    response.close()
    if status == 429 or status >= 500:
        wait = None
        if status in (429, 503):
            wait = _retry_after(response.headers.get("Retry-After"), policy.backoff_cap)
        raise _Retry(DownloadError(url, f"HTTP {status}", permanent=False), wait)
    raise DownloadError(url, f"HTTP {status}", permanent=True)


def _refuse_encoding(response: requests.Response, url: str) -> None:
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


def _declared_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _chunks(response: requests.Response, url: str) -> Iterator[bytes]:
    """The raw body (no content decoding) in chunks as they arrive (so the watch sees the
    progress); network failures and a transfer the watch cut off become `_Retry`."""
    watch = _watch()
    while True:
        try:
            chunk = response.raw.read1(CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            timeout = isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError)
            reason = "timed out while reading" if timeout else "body truncated (connection lost)"
            reason = watch.expired or reason
            raise _Retry(DownloadError(url, reason, permanent=False)) from None
        if watch.expired is not None:  # the watch cut the connection: the body is not whole
            raise _Retry(DownloadError(url, watch.expired, permanent=False))
        if not chunk:
            return
        watch.progress(len(chunk))
        yield chunk


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _run(url: str, policy: DownloadPolicy, sleep: Sleep, attempt_once: Callable[[int], T]) -> T:
    """Call `attempt_once(attempt)` up to `policy.attempts` times, sleeping between
    transient failures; raise the last error."""
    last = DownloadError(url, "not attempted", permanent=False)
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        try:
            return attempt_once(attempt)
        except _Retry as retry:
            last = retry.error
            wait = policy.delay(attempt) if retry.wait is None else retry.wait
            logger.debug("%s (attempt %d of %d)", last, attempt, attempts)
        if attempt < attempts and wait > 0:
            sleep(wait)
    raise last


# -------------------------------------------------------------------------------- download
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
    _checked(url, policy, redirect=False)
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
    with guarded_session() as session:
        return _run(url, policy, sleep, lambda attempt: job.attempt(session))


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

    def attempt(self, session: requests.Session) -> Downloaded:
        have = self.resumable()
        if have and have == self.expected_size:  # complete, and a sha256 will prove it
            return self.finish(self.part_digest(), have, None, resumed=False, from_part=True)
        extra: dict[str, str] = {}
        if have and self.meta is not None:
            extra["Range"] = f"bytes={have}-"
            extra["If-Range"] = self.meta.validator.value
        with watched(self.policy):
            response = _open(session, self.url, self.policy, extra)
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

    def restart(self, reason: str) -> _Retry:
        """Discard the part: the next attempt starts from zero, without waiting."""
        drop(self.part)
        return _Retry(self.error(reason, permanent=False), 0.0)

    def receive(self, response: requests.Response, have: int) -> Downloaded:
        status = response.status_code
        if status == 416 and have:  # the part does not fit the object (any more)
            raise self.restart("HTTP 416 for the partial file; restarting from zero")
        _refuse_status(response, self.url, self.policy)
        _refuse_encoding(response, self.url)
        length = _declared_length(response)
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
            raise _Retry(self.error(reason, permanent=False))
        if total is None and self.expected_size is not None and size < self.expected_size:
            reason = f"body ended at {size:,} of {self.expected_size:,} bytes"
            raise _Retry(self.error(reason, permanent=False))
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
                    for chunk in _chunks(response, self.url):
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
                raise _Retry(self.error(reason, permanent=True), 0.0)
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


# ----------------------------------------------------------------------------- fetch_bytes
def fetch_bytes(
    url: str,
    *,
    policy: DownloadPolicy,
    limit: int = 16 * 1024 * 1024,
    sleep: Sleep = time.sleep,
) -> tuple[bytes, str | None]:
    """Small GET (e.g. a manifest or an API listing) with the same redirect checks, timeouts
    and retries; returns (body, final content-type). Refuses bodies over `limit`."""
    _checked(url, policy, redirect=False)
    cap = limit if policy.max_bytes is None else min(limit, policy.max_bytes)

    def once(session: requests.Session) -> tuple[bytes, str | None]:
        with watched(policy):
            return received(session)

    def received(session: requests.Session) -> tuple[bytes, str | None]:
        response = _open(session, url, policy, {})
        try:
            _refuse_status(response, url, policy)
            _refuse_encoding(response, url)
            length = _declared_length(response)
            if length is not None and length > cap:
                reason = f"declares {length:,} bytes, above the limit of {cap:,}"
                raise DownloadError(url, reason, permanent=True)
            body = bytearray()
            for chunk in _chunks(response, url):
                body += chunk
                if len(body) > cap:
                    reason = f"body exceeds the limit of {cap:,} bytes"
                    raise DownloadError(url, reason, permanent=True)
            if length is not None and len(body) < length:
                reason = f"body truncated at {len(body):,} of {length:,} bytes"
                raise _Retry(DownloadError(url, reason, permanent=False))
            return bytes(body), response.headers.get("Content-Type")
        finally:
            response.close()

    with guarded_session() as session:
        return _run(url, policy, sleep, lambda attempt: once(session))
