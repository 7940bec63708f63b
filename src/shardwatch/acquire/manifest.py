"""Manifest parsing: the shard entries of an HTTP manifest, JSON or one URL per line, bounded.

A manifest is untrusted: JSON (a list of URLs or of objects with `url`, `size`, `sha256`,
`etag`, or `{"shards": [...]}`) is parsed within the listing limits (core.bounded_json), a
text manifest may not list more URLs than allowed, and every field is checked for its type.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass

from shardwatch.acquire.sources import SHA256, SourceError
from shardwatch.core import bounded_json
from shardwatch.core.bounded_json import ListingLimits


@dataclass(frozen=True)
class Entry:
    """One manifest entry: a URL (maybe relative) and what the manifest says of it."""

    url: str
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None


def parse_manifest(
    source: str, where: str, body: bytes, content_type: str | None, limits: ListingLimits
) -> builtins.list[Entry]:
    """JSON (list of URLs or objects, or {"shards": [...]}) or text (one URL per line),
    within `limits` (bounded_json.py)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(source, f"manifest {where}: not UTF-8 (byte {exc.start})") from None
    is_json = "json" in (content_type or "").lower() or text.lstrip()[:1] in ("[", "{")
    if not is_json:
        urls = [u for line in text.splitlines() if (u := line.strip()) and not u.startswith("#")]
        if len(urls) > limits.max_entries:
            raise SourceError(
                source,
                f"manifest {where}: refused: lists {len(urls):,} URLs, above the limit of"
                f" {limits.max_entries:,}",
            )
        return [Entry(u) for u in urls]
    try:
        data = bounded_json.parse(body, limits)
    except bounded_json.ListingRefused as exc:
        raise SourceError(source, f"manifest {where}: refused: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(
            source,
            f"manifest {where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    if isinstance(data, dict):
        if "shards" not in data:
            raise SourceError(source, f"manifest {where}: JSON object without a 'shards' list")
        data = data["shards"]
    if not isinstance(data, builtins.list):
        raise SourceError(source, f"manifest {where}: expected a JSON list of shards")
    return [_entry(source, where, i, item) for i, item in enumerate(data)]


def _entry(source: str, where: str, i: int, item: object) -> Entry:
    def bad(reason: str) -> SourceError:
        return SourceError(source, f"manifest {where}: entry {i}: {reason}")

    if isinstance(item, str):
        return Entry(item)
    if not isinstance(item, dict):
        raise bad("expected a URL string or an object with 'url'")
    url, size, sha, etag = item.get("url"), item.get("size"), item.get("sha256"), item.get("etag")
    if not isinstance(url, str) or not url:
        raise bad("missing 'url' (a string)")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad("'size' must be a non-negative integer")
    if sha is not None and (not isinstance(sha, str) or not SHA256.match(sha)):
        raise bad("'sha256' must be 64 hex digits")
    if etag is not None and not isinstance(etag, str):
        raise bad("'etag' must be a string")
    return Entry(url, size, sha.lower() if sha else None, etag)
