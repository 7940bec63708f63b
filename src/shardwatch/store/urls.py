"""Database URLs: say in one line what is wrong with a malformed one, never echoing it.

A database URL carries a password, so a problem is described by its shape only: no part of
the URL but a well-formed scheme is ever repeated (`url_problem`).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,40}")
EXAMPLES = "postgresql://user:password@host:5432/dbname or sqlite:///path/shardwatch.sqlite"
# Schemes other tools accept for PostgreSQL that SQLAlchemy does not.
_POSTGRES_ALIASES = ("postgres", "pgsql", "psql")


def _scheme(raw: str) -> str | None:
    head, sep, _ = raw.partition("://")
    return head if sep and _SCHEME.fullmatch(head) else None


def url_problem(raw: str) -> str | None:
    """Why `raw` is not a usable database URL (one line, no part of the URL but its scheme),
    or None."""
    if not raw.strip():
        return f"the database URL is empty: expected e.g. {EXAMPLES}"
    scheme = _scheme(raw)
    if scheme is None:
        return f"the database URL has no scheme (`name://`): expected e.g. {EXAMPLES}"
    if scheme.split("+", 1)[0].lower() in _POSTGRES_ALIASES:
        return (
            f"database URL scheme {scheme}:// is not supported: use postgresql:// "
            "(e.g. postgresql://user:password@host:5432/dbname)"
        )
    rest = raw.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.count("@") > 1:  # SQLAlchemy splits at the first: the host would hold the rest
        return (
            "the database URL holds '@' more than once before the host (a password holding "
            "'@', ':' or '/' must be percent-encoded, e.g. %40 for '@')"
        )
    netloc = authority.rsplit("@", 1)[-1]  # host[:port], after any credentials
    if netloc.startswith("[") and "]" not in netloc:
        return "the database URL's IPv6 host has no closing ']' (write it as [::1]:5432)"
    try:
        make_url(raw)
    except ValueError:  # int(port): the message would show the "port", maybe a password
        return (
            "the database URL's port is not a number (a password holding ':', '@' or '/' "
            "must be percent-encoded, e.g. %40 for '@')"
        )
    except ArgumentError:
        return f"the database URL cannot be parsed: expected e.g. {EXAMPLES}"
    return None
