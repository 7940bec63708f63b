"""The store's boundary: SQLAlchemy's errors become the store's own (`errors`) at its public
entry points, so no SQLAlchemy type leaves `store/`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from shardwatch.store.errors import StoreError, StoreFailed, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATEs of a server that is going away or not yet accepting connections.
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03"})


def server_unavailable(exc: BaseException) -> bool:
    """The connection dropped, or none could be made (refused, server starting or shutting
    down): worth trying again on a new connection. Other errors are not (a constraint, a
    deadlock, SQLite's own locking)."""
    if isinstance(exc, StoreUnavailable):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError) or not hasattr(exc.orig, "pgcode"):
        return False  # SQLite, or not an operational error: the server answered
    code = getattr(exc.orig, "pgcode", None)  # None: psycopg2 could not reach the server
    return code is None or code in _UNAVAILABLE


def store_error(exc: SQLAlchemyError) -> StoreFailed:
    """`exc` as the store's own error: StoreUnavailable when the server was unreachable."""
    orig = getattr(exc, "orig", None)
    message = str(orig or exc)
    cls = StoreUnavailable if server_unavailable(exc) else StoreFailed
    return cls(type(exc).__name__, message, type(orig).__name__)


@contextmanager
def store_errors() -> Iterator[None]:
    """Raise any SQLAlchemy error of the block as the store's own (see `store_error`)."""
    try:
        yield
    except StoreError:
        raise
    except SQLAlchemyError as exc:
        raise store_error(exc) from exc


def translated(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` with its SQLAlchemy errors raised as the store's own (a public entry point)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with store_errors():
            return fn(*args, **kwargs)

    return wrapper
