"""Public URLs: what a base URL for published Data Docs or reports may be, and which links a
message that leaves the machine may carry (http(s), a host, no credentials, nothing Slack or
HTML would read as syntax)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Characters a base URL may not hold: whitespace and controls, and what Slack (`<`, `>`, `|`)
# or HTML attributes (`"`, `'`) would read as syntax.
_UNSAFE_URL = re.compile(r"[\s\x00-\x1f\x7f<>|\"'`\\^{}]")


def base_url_problem(value: str) -> str | None:
    """Why `value` cannot be a public base URL (None: it can)."""
    if _UNSAFE_URL.search(value):
        return "holds whitespace, a control character or one of < > | \" ' ` \\ ^ { }"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "must not have a query or a fragment (page names are appended to it)"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    return None


def normalise_base_url(value: str | None) -> str | None:
    """A validated base URL without its trailing `/` (None or blank: unset). Raises
    ValueError with the reason."""
    if value is None or not value.strip():
        return None
    problem = base_url_problem(value)
    if problem is not None:
        raise ValueError(f"{problem}: e.g. https://example.org/shardwatch/docs")
    return value.rstrip("/")


def is_public_url(link: str | None) -> bool:
    """An http(s) URL with a host and no credentials: the only kind of link a message may
    carry."""
    if not link or _UNSAFE_URL.search(link):
        return False
    parts = urlsplit(link)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and parts.password is None
    )
