"""Download policy: which origins a request may reach, with what timeouts, retries and limits.

`DownloadPolicy` is what every HTTP(S) request of a source obeys (acquire.http): the
allow-list of origins (`host` for the scheme's default port, `host:port` for another port),
the connect and read timeouts, the minimum speed, whether loopback and private addresses may
be reached, the bounded attempts and their backoff, the redirect limit and the size caps. Its
`headers` may hold a secret: they are sent, never shown. `DownloadError` is what a refused or
failed request raises; its URL is redacted and it never carries a header value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shardwatch.core.redact import redact_url
from shardwatch.settings.download import DownloadSettings

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
        return any(names_private(entry) for entry in self.allowed_hosts)


def policy_from(d: DownloadSettings, hosts: frozenset[str]) -> DownloadPolicy:
    """The `[download]` settings' policy for requests to `hosts` (the allow-list)."""
    return DownloadPolicy(
        allowed_hosts=hosts,
        connect_timeout=d.connect_timeout,
        read_timeout=d.read_timeout,
        attempts=d.attempts,
        backoff=d.backoff,
        backoff_cap=d.backoff_cap,
        max_bytes=d.max_bytes,
        min_speed=d.min_speed,
        speed_window=d.speed_window,
        allow_private=d.allow_private_addresses,
        cache_max_bytes=d.cache_max_bytes,
    )


class DownloadError(Exception):
    """A request failed. `permanent`: retrying will not help (refused, 4xx, mismatch).
    `url` has no query string and no user info; nothing here carries a header value."""

    def __init__(
        self, url: str, reason: str, *, permanent: bool, status: int | None = None
    ) -> None:
        self.url = safe_url(url)
        self.reason = reason
        self.permanent = permanent
        self.status = status  # the HTTP status that failed the request, if one did
        super().__init__(f"{self.url}: {reason}")


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
        port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return False
    host = host_of(url)
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return False
    return _with_port(host, port) in allowed or (port == _DEFAULT_PORTS[scheme] and host in allowed)


def display_origin(url: str) -> str:
    """`host` or `host:port` (non-default port) of a URL, for messages."""
    try:
        return origin_entry(url)
    except ValueError:
        return host_of(url)


def safe_url(url: str) -> str:
    """The URL for messages: redacted (shardwatch.core.redact: no user info or query values)."""
    return redact_url(url)


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in from the scheme's default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (
        scheme,
        host_of(url),
        parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme),
    )


def same_origin(url: str, base: str) -> bool:
    """True when both URLs have the same scheme, host and port (default ports filled in);
    False for an invalid port."""
    try:
        return origin_of(url) == origin_of(base)
    except ValueError:
        return False


def names_private(entry: str) -> bool:
    """Does an allow-list entry name localhost or a loopback/private IP address?"""
    host = entry[1:].partition("]")[0] if entry.startswith("[") else entry
    if not entry.startswith("[") and entry.count(":") == 1:
        host = entry.partition(":")[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ip_address(host).is_global
    except ValueError:
        return False


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP address (a zone suffix ignored), an IPv4-mapped IPv6 address as its IPv4 form."""
    ip = ipaddress.ip_address(text.partition("%")[0])
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped if mapped is not None else ip
