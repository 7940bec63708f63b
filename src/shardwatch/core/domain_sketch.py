"""Domain sketch: rows per registrable URL domain as a mergeable top-k summary.

A shard's sketch is exact for the domains it lists; merged sketches carry an error bound per
domain (docs/metrics.md). `ShardMetrics.domains` holds one; scan/domains.py builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class DomainStat:
    """One registrable domain's rows, keyword-NSFW rows and tag-NSFW rows. The counts are
    exact in a shard; in a merged total they are lower bounds and each true count is at most
    count + error (the floors of the shards that did not list the domain)."""

    rows: int
    keyword_nsfw: int = 0
    tag_nsfw: int = 0
    rows_error: int = 0
    keyword_error: int = 0
    tag_error: int = 0

    def plus(self, other: DomainStat) -> DomainStat:
        return DomainStat(
            self.rows + other.rows,
            self.keyword_nsfw + other.keyword_nsfw,
            self.tag_nsfw + other.tag_nsfw,
            self.rows_error + other.rows_error,
            self.keyword_error + other.keyword_error,
            self.tag_error + other.tag_error,
        )

    def unlisted_in(self, sketch: DomainSketch) -> DomainStat:
        """This stat, merged with a sketch that did not list the domain: its floors add to
        the error (the domain may hold up to a floor of rows there)."""
        return replace(
            self,
            rows_error=self.rows_error + sketch.floor_rows,
            keyword_error=self.keyword_error + sketch.floor_keyword,
            tag_error=self.tag_error + sketch.floor_tag,
        )

    def to_dict(self) -> dict[str, int]:
        out = {"rows": self.rows, "keyword_nsfw": self.keyword_nsfw, "tag_nsfw": self.tag_nsfw}
        if self.rows_error or self.keyword_error or self.tag_error:
            out |= {
                "rows_error": self.rows_error,
                "keyword_error": self.keyword_error,
                "tag_error": self.tag_error,
            }
        return out


@dataclass(frozen=True)
class DomainSketch:
    """Rows per registrable URL domain as a mergeable top-k summary (docs/metrics.md).

    A shard lists its top `k` domains by rows, by keyword-NSFW rows and by tag-NSFW rows
    (the union, with exact counts), the floors (the largest count of any domain it left out)
    and the rest (the exact sums over the domains it left out), so listed + rest = rows.
    Merging sums counts, floors and rests; a domain one side did not list gets that side's
    floors as error. The bound: every listed count <= the true count <= count + error, and
    an unlisted domain holds at most the summed floors.
    """

    k: int
    top: Mapping[str, DomainStat] = field(default_factory=dict)
    floor_rows: int = 0
    floor_keyword: int = 0
    floor_tag: int = 0
    rest_rows: int = 0
    rest_keyword: int = 0
    rest_tag: int = 0

    def merge(self, other: DomainSketch) -> DomainSketch:
        top: dict[str, DomainStat] = {}
        for domain, stat in self.top.items():
            theirs = other.top.get(domain)
            top[domain] = stat.plus(theirs) if theirs is not None else stat.unlisted_in(other)
        for domain, stat in other.top.items():
            if domain not in self.top:
                top[domain] = stat.unlisted_in(self)
        return DomainSketch(
            k=max(self.k, other.k),
            top=top,
            floor_rows=self.floor_rows + other.floor_rows,
            floor_keyword=self.floor_keyword + other.floor_keyword,
            floor_tag=self.floor_tag + other.floor_tag,
            rest_rows=self.rest_rows + other.rest_rows,
            rest_keyword=self.rest_keyword + other.rest_keyword,
            rest_tag=self.rest_tag + other.rest_tag,
        )

    def ranked(self, by: str = "keyword_nsfw") -> list[tuple[str, DomainStat]]:
        """The listed domains, largest `by` count first (then most rows, then name)."""
        return sorted(self.top.items(), key=lambda kv: (-getattr(kv[1], by), -kv[1].rows, kv[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "top": {domain: stat.to_dict() for domain, stat in self.ranked()},
            "floor": {
                "rows": self.floor_rows,
                "keyword_nsfw": self.floor_keyword,
                "tag_nsfw": self.floor_tag,
            },
            "rest": {
                "rows": self.rest_rows,
                "keyword_nsfw": self.rest_keyword,
                "tag_nsfw": self.rest_tag,
            },
        }
