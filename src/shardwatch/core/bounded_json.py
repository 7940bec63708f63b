"""Bounded JSON: parse a listing (a manifest, a Hub tree page) a hostile server wrote.

`json.loads` recurses once per nesting level, so `'[' * 200_000` raises RecursionError
(with a traceback, and whatever was running stops); and a 16 MB body of `[{},{},...]`
becomes five million dicts. `parse` refuses both before the parser sees the text:

- more than `max_bytes` bytes;
- nesting deeper than `max_depth` (counted over the structural characters outside strings);
- more than `max_entries` values (each `[`, `{` and `,` outside strings starts one, so the
  count bounds the objects the parser could build).

The scan is linear (regular expressions drop the escapes, then the strings; numpy counts
the rest): a 16 MB listing costs at most a few seconds, whatever it holds. A refusal is a
`ListingRefused` whose reason names the limit; nothing else escapes but `ValueError` for
invalid JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Escapes (a backslash and the character after it) go first, then the strings they were in,
# which then hold no quote: both patterns are linear. (One pattern for strings with escapes
# backtracks quadratically on `"\"\"\"...` with no closing quote.)
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')


@dataclass(frozen=True)
class ListingLimits:
    """Caps on what one source's listing may hold (`[download]` max_listing_*)."""

    max_bytes: int = 16 * 1024**2  # one manifest or one Hub page
    max_depth: int = 64
    max_entries: int = 1_000_000  # values of one body; shards of one listing
    max_pages: int = 10_000  # Hub pages followed in one listing


DEFAULT_LISTING_LIMITS = ListingLimits()


class ListingRefused(ValueError):
    """A listing broke a limit; `reason` says which (no content of the listing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(body: bytes, limits: ListingLimits) -> object:
    """The JSON value of `body` (UTF-8, a BOM allowed), within `limits`; raises
    ListingRefused, or ValueError (json.JSONDecodeError, UnicodeDecodeError) if invalid."""
    if len(body) > limits.max_bytes:
        raise ListingRefused(f"{len(body):,} bytes, above the limit of {limits.max_bytes:,}")
    import numpy as np  # loaded when a listing is parsed, not with the settings

    structure = np.frombuffer(_STRING.sub(b"", _ESCAPE.sub(b"", body)), dtype=np.uint8)
    opens = (structure == ord("[")) | (structure == ord("{"))
    closes = (structure == ord("]")) | (structure == ord("}"))
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    depth = int(np.cumsum(steps).max()) if len(steps) else 0
    if depth > limits.max_depth:
        raise ListingRefused(f"nested {depth:,} levels deep, above the limit of {limits.max_depth}")
    values = int(opens.sum() + (structure == ord(",")).sum())
    if values > limits.max_entries:
        raise ListingRefused(
            f"holds {values:,} values or more, above the limit of {limits.max_entries:,}"
        )
    return json.loads(body.decode("utf-8-sig"))
