"""An exception as one line: what a stored reason, a rejection or a CLI outcome can hold."""

from __future__ import annotations


def first_line(exc: BaseException, *, limit: int | None = None, cause: bool = False) -> str:
    """The first line of `exc`'s message, cut at `limit` characters (the exception's type name
    when the message is empty). With `cause`, the message of the error `exc` wraps (a
    database driver's, in SQLAlchemy's `orig`) when there is one."""
    source = (getattr(exc, "orig", None) or exc) if cause else exc
    lines = str(source).strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = lines[0].strip()
    return line if limit is None else line[:limit]
