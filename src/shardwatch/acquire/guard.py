"""Guarded session: connect only to addresses the policy allows, and cut off a slow drip.

A host name is resolved when connecting and each address it resolves to is checked: a
link-local address (cloud metadata) and an unspecified or multicast one never, a loopback or
private address only when the policy allows it (`DownloadPolicy.private_ok`); the connection
is then made to the checked address, so a second lookup cannot rebind it. A `Watch` holds
one attempt's guards for the thread that enters it: the host being requested (a connection to
another host is a proxy's, left to the proxy) and the low-speed limit, enforced by a watchdog
thread that cuts the attempt's connections when fewer than `min_speed * speed_window` bytes
arrived in a window. urllib3's DEBUG request lines have their query redacted (signed URLs
carry tokens there).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import requests.adapters
import requests.auth
import requests.utils
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from shardwatch.acquire.policy import DownloadPolicy, host_of, ip_address, names_private
from shardwatch.core.redact import redact_target

logger = logging.getLogger(__name__)


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


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the low 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT) ::ffff:0:a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through: mapped, translated, 6to4, Teredo,
    NAT64 or the old IPv4-compatible form (a private one behind them is as private)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, private_ok: bool) -> str | None:
    """Why a connection to `ip` is refused (None: it is not)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL and not private_ok:
            return "a local-use NAT64 address (it may reach a private IPv4 network)"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            reason = _refusal(embedded, private_ok)
            return None if reason is None else f"{reason}, embedded in an IPv6 address"
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
        self.host = ascii_host(host_of(url))

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


def current_watch() -> Watch:
    """The `Watch` this thread entered; a guarded session is never used outside one."""
    watch: Watch | None = getattr(_local, "watch", None)
    if watch is None:
        raise RuntimeError("a guarded session is used outside `watched(policy)`")
    return watch


def _guarded_conn(connection: Any, connect: Callable[[], socket.socket]) -> socket.socket:
    """Resolve the host, refuse a forbidden address, and connect to the checked address (so
    a second lookup cannot rebind it)."""
    watch = current_watch()
    host = str(connection.host).strip("[]").rstrip(".").lower()
    if ascii_host(host) != watch.host:  # a proxy: it resolves and connects itself
        return connect()
    try:
        infos = socket.getaddrinfo(host, connection.port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        # Never connect unchecked: a second lookup (urllib3's) could answer differently.
        failure = exc if isinstance(exc, socket.gaierror) else socket.gaierror(str(exc))
        raise urllib3.exceptions.NameResolutionError(host, connection, failure) from None
    if not infos:
        raise urllib3.exceptions.NameResolutionError(
            host, connection, socket.gaierror("no address")
        )
    private_ok = watch.policy.private_ok()
    for info in infos:
        reason = _refusal(ip_address(str(info[4][0])), private_ok)
        if reason is not None:
            where = host if not names_private(host) else f"{host} ({info[4][0]})"
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
        current_watch().register(self)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_conn(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        current_watch().register(self)
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


def _url_auth_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A URL's own user info as Basic auth, as requests does, and never ~/.netrc's: netrc
    credentials go to a host on any port or scheme, outside the one credential rule."""
    user, password = requests.utils.get_auth_from_url(request.url or "")
    if user or password:
        return requests.auth.HTTPBasicAuth(user, password)(request)
    return request


def guarded_session() -> requests.Session:
    """A session whose direct connections obey the address rule of the active `Watch`. It
    keeps no cookies and reads no ~/.netrc: the only credentials it sends are the ones the
    client's credential rule lets through (http.keeps_credentials)."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.auth = _url_auth_only
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def ascii_host(host: str) -> str:
    """An internationalised host name in its ASCII (IDNA) form, as urllib3 connects to it."""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host
