"""Blocklists: published remove-lists (hashed URLs, URLs, sample ids, domains) and what one
shard, or a merge of shards, holds of them. Pure: no I/O.

An entry is known by a fixed-size id (`ENTRY_ID_BYTES` bytes, see `entry_id`), never by its
text, so a stored or merged result holds no URL, id or domain, only how many rows matched and
which entries (as ids) they matched. Merging unions the matched entries, so a dataset's
`matched_entries` counts each entry once however many shards match it, whatever the split.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, get_args

BlocklistKind = Literal["url", "url_sha256", "id", "domain"]
BLOCKLIST_KINDS: tuple[str, ...] = get_args(BlocklistKind)
BlocklistSeverity = Literal["critical", "warning"]
FLAG_PREFIX: Final = "blocklist_"  # a list's per-row flag in the features (scan/features.py)
# A list's name is a plain slug: it names a feature column, report rows and alerts (the one
# rule, used by the settings and the store).
BLOCKLIST_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
FLAG_CHECK: Final = "expect_column_values_to_not_be_in_set"  # validation's check on the flag
ENTRY_ID_BYTES = 16  # 128 bits: a collision needs about 2^64 entries (as dedup's keys)


def is_flag_check(expectation: str, column: str | None, condition: str | None) -> bool:
    """A check on a list's flag column (`validate/suites.with_flag_checks`): its failures are
    the `blocklisted-rows` alert's, not the `validation` rule's (one cause, one alert)."""
    return (
        expectation == FLAG_CHECK and condition is None and (column or "").startswith(FLAG_PREFIX)
    )


def entry_id(kind: BlocklistKind, canonical: bytes) -> bytes:
    """An entry's id: the first 16 bytes of its SHA-256 digest.

    `canonical` is the entry in its one comparable form: for `url` and `url_sha256` the
    SHA-256 digest of the URL's UTF-8 bytes (so a URL and its hash are the same entry); for
    `id` the id's text (an integral number as its decimal digits); for `domain` the host in
    lower-case ASCII (punycode). The kind is part of the digest for `id` and `domain`."""
    if kind in ("url", "url_sha256"):
        return canonical[:ENTRY_ID_BYTES]
    return hashlib.sha256(kind.encode() + b"\x00" + canonical).digest()[:ENTRY_ID_BYTES]


@dataclass(frozen=True)
class BlocklistStats:
    """One list checked against one shard (or a merge of shards).

    `entries`: the list's entries (distinct) in the version checked; when the merged shards
    were checked against different versions, the largest (`versions` gives each version's
    content SHA-256 and how many shards were checked against it). `rows`: rows matching any
    entry. `matched`: the ids of the entries matched (`matched_entries` counts them)."""

    kind: BlocklistKind
    entries: int
    rows: int = 0
    matched: frozenset[bytes] = frozenset()
    versions: Mapping[str, int] = field(default_factory=dict)

    @property
    def matched_entries(self) -> int:
        return len(self.matched)

    @property
    def shards(self) -> int:
        """Shards checked against the list."""
        return sum(self.versions.values())

    def describe(self) -> str:
        """`3 rows (2 of 1,000 entries)`: counts only."""
        rows = f"{self.rows:,} row{'s' if self.rows != 1 else ''}"
        return f"{rows} ({self.matched_entries:,} of {self.entries:,} entries)"

    def merge(self, other: BlocklistStats) -> BlocklistStats:
        if self.kind != other.kind:
            kinds = f"{self.kind} and {other.kind}"
            raise ValueError(f"cannot merge blocklist results of kinds {kinds}")
        versions = dict(self.versions)
        for version, shards in other.versions.items():
            versions[version] = versions.get(version, 0) + shards
        return BlocklistStats(
            kind=self.kind,
            entries=max(self.entries, other.entries),
            rows=self.rows + other.rows,
            matched=self.matched | other.matched,
            versions=dict(sorted(versions.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        """Counts only: no entry, and no entry id, is ever printed."""
        return {
            "kind": self.kind,
            "entries": self.entries,
            "rows": self.rows,
            "matched_entries": self.matched_entries,
            "shards": self.shards,
            "versions": dict(self.versions),
        }


def merge_blocklists(
    a: Mapping[str, BlocklistStats] | None, b: Mapping[str, BlocklistStats] | None
) -> dict[str, BlocklistStats] | None:
    """Merge per-list results: a list one side was not checked against keeps the other's."""
    if a is None and b is None:
        return None
    out = dict(a or {})
    for name, stats in (b or {}).items():
        out[name] = out[name].merge(stats) if name in out else stats
    return dict(sorted(out.items()))


def merge_all_blocklists(
    items: Iterable[Mapping[str, BlocklistStats] | None],
) -> dict[str, BlocklistStats] | None:
    """`merge_blocklists` folded over many shards' results, equal to it, in linear time: each
    list's matched entries are united once (a fold of `merge` copies the growing set at every
    shard: quadratic over a dataset whose shards match millions of entries)."""
    per_list: dict[str, list[BlocklistStats]] = {}
    seen = False
    for item in items:
        if item is None:
            continue
        seen = True
        for name, stats in item.items():
            per_list.setdefault(name, []).append(stats)
    if not seen:
        return None
    out = {}
    for name, results in per_list.items():
        counts = [replace(r, matched=frozenset()) for r in results]
        merged = counts[0]
        for other in counts[1:]:  # kinds checked, entries, rows and versions as `merge`
            merged = merged.merge(other)
        matched = results[0].matched
        if len(results) > 1:
            matched = matched.union(*(r.matched for r in results[1:]))
        out[name] = replace(merged, matched=matched)
    return dict(sorted(out.items()))
