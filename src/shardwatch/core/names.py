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


# Characters that reorder or break what a reader sees: bidi embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069), the bidi marks (U+200E, U+200F, U+061C) and the
# line and paragraph separators (U+2028, U+2029), besides every control character (C0, DEL,
# C1: Unicode category Cc, which includes ESC and so every ANSI/OSC escape sequence).
_OBEYED: Final = frozenset(
    "\u061c\u200e\u200f\u2028\u2029"
    + "".join(map(chr, range(0x202A, 0x202F)))
    + "".join(map(chr, range(0x2066, 0x206A)))
)


def _escaped(c: str) -> str:
    if unicodedata.category(c) == "Cc":
        return c.encode("unicode_escape").decode("ascii")  # \n, \x1b, \x85
    if c in _OBEYED:
        return f"\\u{ord(c):04x}"
    return c


def shown(value: str) -> str:
    """`value` as text that a terminal, a mail reader or a chat shows and never obeys: control
    characters (C0, DEL, C1, so ANSI and OSC escapes), bidi controls and line separators are
    escaped visibly (`\\n`, `\\x1b`, `\\u202e`), and so are undecodable bytes (`\\xff`). The
    result holds no line break: a name cannot start a line. Every place that prints or sends
    a name (shard, URI, dataset, term, host, rule label) goes through here."""
    try:  # a file name's undecodable bytes, back as the bytes they were
        out = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        out = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(_escaped(c) for c in out)


_JSON_ESCAPED: Final = {
    ord(c): f"\\u{ord(c):04x}" for c in _OBEYED | {chr(0x7F)} | set(map(chr, range(0x80, 0xA0)))
}


def json_shown(text: str) -> str:
    """JSON text (`json.dumps(..., ensure_ascii=False)`) with DEL, C1 and the bidi and line
    separator characters written as `\\uXXXX` escapes: the same JSON value, and nothing a
    terminal obeys (JSON already escapes C0 controls)."""
    return text.translate(_JSON_ESCAPED)
