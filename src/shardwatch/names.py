"""Names: which untrusted names (datasets, shard URIs, terms) the results store keeps verbatim.

Names come from config, the command line, file systems and remote listings. The store keeps
them byte for byte on SQLite and PostgreSQL alike, so a name it could not keep on one of
them is refused up front, with the reason, on both: PostgreSQL text cannot hold NUL, no
database text holds invalid UTF-8 (a file name's undecodable bytes arrive as lone
surrogates), and the columns and unique indexes bound the length. Names that label one line
of output (datasets, terms) must also be free of control characters, so that a newline in a
name cannot forge a line of an alert or a report. Nothing is ever cut short or replaced.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# A shard URI is part of a unique index: PostgreSQL's btree entries hold at most 2704 bytes.
MAX_URI_BYTES: Final = 2048
MAX_DATASET_CHARS: Final = 200  # datasets.name
MAX_TERM_CHARS: Final = 200  # term_metrics.term
MAX_CONFIG_NAME_CHARS: Final = 100  # shard_metrics.profile and .lexicon


def name_problem(
    value: str, *, max_chars: int | None = None, max_bytes: int | None = None, one_line: bool
) -> str | None:
    """Why `value` cannot be stored verbatim (None: it can)."""
    if not value:
        return "is empty"
    if "\x00" in value:
        return "holds a NUL character, which PostgreSQL text cannot store"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return f"is not valid UTF-8 (an undecodable byte at character {exc.start})"
    if max_chars is not None and len(value) > max_chars:
        return f"is {len(value):,} characters long; at most {max_chars:,} are stored"
    if max_bytes is not None and size > max_bytes:
        return f"is {size:,} bytes long; at most {max_bytes:,} are stored"
    if one_line:
        bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            return f"holds the control character U+{ord(bad):04X}"
    return None


def uri_problem(uri: str) -> str | None:
    """Why a shard URI cannot be stored verbatim (None: it can)."""
    return name_problem(uri, max_bytes=MAX_URI_BYTES, one_line=False)


def shown(value: str) -> str:
    """`value` as printable text: control characters and undecodable bytes are escaped
    (`\\x00`, `\\xff`), so a refused name can be named in a message."""
    try:  # a file name's undecodable bytes, back as the bytes they were
        out = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        out = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if unicodedata.category(c) != "Cc" else c.encode("unicode_escape").decode("ascii")
        for c in out
    )
