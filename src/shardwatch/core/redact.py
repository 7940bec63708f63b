"""Redaction: the one place a URL loses its secrets before anything shows, stores or sends it.

A URL may carry a secret in two places shardwatch can see: its user info
(`https://user:password@host/`) and its query string (signed URLs:
`?X-Amz-Signature=...&X-Amz-Credential=...`, `?token=`, `?sig=`...). `redact_url` replaces
the whole user info with `REDACTED@` (a database URL masked already, `user:***@`, is
kept), EVERY query value with `REDACTED` (parameter names
stay; a parameter without `=` becomes `REDACTED`) and drops the fragment. Every query value,
not a list of credential-like names: a list misses the names nobody thought of, and the
values of a signed URL that are not secret (`X-Amz-Date`, `Expires`) change at every signing,
so leaving them would give a re-signed shard a new identity each pass.

This redacted form is what the store keeps as a shard's URI and what every output shows:
a shard's identity is its redacted URI plus its content hash (docs/reliability.md). The
secret-bearing URL lives only in memory, for the request itself.

A URL whose authority cannot be parsed (a password holding an unescaped `/`, `?` or `#`
makes the rest look like a path or a port) is shown as `<scheme>://<unparseable URL>`,
never in part. A password holding an unescaped `@` is fine here: the host is what follows
the last `@`. `redact_text` applies `redact_url` to every URL inside free text (error
messages from libraries).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

MARK: Final = "REDACTED"
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s'\"<>]*")


_HOSTPORT = re.compile(r"(?:\[[^\]@]*\]|[^:\[\]@]*)(?::[0-9]*)?")


def _authority(netloc: str) -> str | None:
    """`netloc` without user info, or None when its host and port cannot be trusted (a
    password cut at an unescaped `/`, `?` or `#` leaves `user:pa` here, `pa` as the port)."""
    userinfo, at, hostport = netloc.rpartition("@")
    if not _HOSTPORT.fullmatch(hostport):
        return None
    if re.fullmatch(r"[^:@]*:\*\*\*", userinfo):  # masked already (SQLAlchemy)
        return netloc
    return (f"{MARK}@" if at else "") + hostport


def _query(query: str) -> str:
    items = []
    for item in query.split("&"):
        if not item:
            continue
        name, eq, _ = item.partition("=")
        items.append(f"{name}={MARK}" if eq and name else MARK)
    return "&".join(items)


def redact_url(url: str) -> str:
    """`url` without secrets: user info `REDACTED@`, every query value `REDACTED`, no
    fragment. A string without `scheme://` (a local path) is returned as it is."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{scheme}://<unparseable URL>"
    netloc = _authority(parts.netloc)
    if netloc is None:
        return f"{scheme}://<unparseable URL>"
    query = _query(parts.query)
    return f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def redact_target(text: str) -> str:
    """A URL, or a request target (`/path?query`, as urllib3 logs it), redacted."""
    if "://" in text:
        return redact_url(text)
    path, q, query = text.partition("?")
    return path + (f"?{_query(query.partition('#')[0])}" if q else "")


UNPARSEABLE_HINT: Final = (
    "its host or port cannot be parsed (a password holding '/', '?' or '#' must be "
    "percent-encoded, e.g. %2F for '/')"
)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be used safely (None: it can): said without any part of it."""
    return UNPARSEABLE_HINT if redact_url(url).endswith("://<unparseable URL>") else None


def has_secret_parts(url: str) -> bool:
    """Whether `redact_url` changes `url` (it holds user info, a query or a fragment)."""
    return redact_url(url) != url


def redact_text(text: str) -> str:
    """`text` with every `scheme://...` URL in it redacted (`redact_url`)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m[0]), text)


def redact_tree(value: object) -> object:
    """A JSON-like value (dicts, lists, strings) with every URL in its strings redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v) for v in value]
    return value
