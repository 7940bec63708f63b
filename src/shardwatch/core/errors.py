"""An exception as one line: what a stored reason, a rejection or a CLI outcome can hold.

`first_line` keeps the first line of a message; `one_line` keeps all of it, on one line.
The other packages use these two, not helpers of their own."""

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


def one_line(error: BaseException | str, *, limit: int = 400) -> str:
    """The whole message of `error` (an exception or its text) on one line: its non-blank
    lines joined with "; " (pyarrow's messages span several), runs of whitespace collapsed,
    cut at `limit` characters ending in "..."; an exception's type name when it is empty."""
    text = error if isinstance(error, str) else str(error)
    text = "; ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
