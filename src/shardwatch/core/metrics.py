"""Metrics: the typed, mergeable results of scanning shards; a dataset total is their merge."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shardwatch.core.blocklist import BlocklistStats, merge_all_blocklists, merge_blocklists
from shardwatch.core.domain_sketch import DomainSketch
from shardwatch.core.lexicon import MatchMode

HIST_LO = -1.0
HIST_HI = 1.0
HIST_BINS_PER_UNIT = 200  # 0.005-wide bins
HIST_BINS = int((HIST_HI - HIST_LO) * HIST_BINS_PER_UNIT)

# Metric names used in `unavailable`.
NSFW_FLAG_COUNTS = "nsfw_flag_counts"
KEYWORD_NSFW_ROWS = "keyword_nsfw_rows"
SIMILARITY = "similarity"
TERMS = "terms"
DUPLICATE_IDS = "duplicates.id"
DUPLICATE_URLS = "duplicates.url"
UNSAFE_ROWS = "unsafe_rows"
DOMAINS = "domains"
ALL_METRICS = (
    NSFW_FLAG_COUNTS,
    KEYWORD_NSFW_ROWS,
    SIMILARITY,
    TERMS,
    DUPLICATE_IDS,
    DUPLICATE_URLS,
    UNSAFE_ROWS,
    DOMAINS,
)


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _sum_optional(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _merge_optional(a: Any, b: Any) -> Any:
    """Merge two optional metrics: a missing side contributes nothing."""
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


@dataclass(frozen=True)
class Histogram:
    """Fixed 0.005-wide bins over [-1, 1]; the same bins everywhere, so histograms add."""

    counts: tuple[int, ...] = (0,) * HIST_BINS
    underflow: int = 0
    overflow: int = 0

    def merge(self, other: Histogram) -> Histogram:
        return Histogram(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.underflow + other.underflow,
            self.overflow + other.overflow,
        )

    @property
    def total(self) -> int:
        return sum(self.counts) + self.underflow + self.overflow

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bin holding the q-quantile (within 0.005 of the true value
        for values inside [-1, 1]); None for an empty histogram."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        seen = self.underflow
        if seen >= rank:
            return HIST_LO
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return HIST_LO + (i + 1) / HIST_BINS_PER_UNIT
        return HIST_HI

    def to_dict(self) -> dict[str, Any]:
        return {
            "lo": HIST_LO,
            "hi": HIST_HI,
            "bins_per_unit": HIST_BINS_PER_UNIT,
            "counts": list(self.counts),
            "underflow": self.underflow,
            "overflow": self.overflow,
        }


@dataclass(frozen=True)
class SimilarityStats:
    """Caption-image similarity: counts, extrema, sum and a fixed-bin histogram."""

    threshold: float
    count: int = 0
    null: int = 0
    below_threshold: int = 0
    min: float | None = None
    max: float | None = None
    sum: float = 0.0
    histogram: Histogram = field(default_factory=Histogram)

    def merge(self, other: SimilarityStats) -> SimilarityStats:
        if self.threshold != other.threshold:
            raise ValueError(
                f"cannot merge similarity stats with thresholds {self.threshold} and "
                f"{other.threshold}"
            )
        mins = [v for v in (self.min, other.min) if v is not None]
        maxs = [v for v in (self.max, other.max) if v is not None]
        return SimilarityStats(
            threshold=self.threshold,
            count=self.count + other.count,
            null=self.null + other.null,
            below_threshold=self.below_threshold + other.below_threshold,
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
            sum=self.sum + other.sum,
            histogram=self.histogram.merge(other.histogram),
        )

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def to_dict(self) -> dict[str, Any]:
        quantiles = {f"p{int(q * 100):02d}": self.histogram.quantile(q) for q in _QUANTILES}
        return {
            "count": self.count,
            "null": self.null,
            "below_threshold": self.below_threshold,
            "threshold": self.threshold,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "sum": self.sum if self.count else None,
            "quantiles": quantiles,
            "histogram": self.histogram.to_dict(),
        }


_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class TermStats:
    """One watched term in one shard (or merged over many)."""

    mode: MatchMode
    matches: int = 0
    keyword_nsfw: int = 0
    substring_matches: int = 0
    nsfw_flag_counts: Mapping[str, int] | None = None
    # The tag buckets among the term's keyword-NSFW matches (sums to keyword_nsfw): the
    # paper's Table 1 column. None without a tag column.
    keyword_nsfw_by_tag: Mapping[str, int] | None = None
    # The paper's method (report --paper): of the substring_matches rows (the term itself as a
    # plain substring of TEXT), those whose TEXT or URL holds one of the paper's 7 keywords as
    # a substring, and their tag buckets. None where not computed (e.g. older stored shards).
    paper_keyword_nsfw: int | None = None
    paper_keyword_nsfw_by_tag: Mapping[str, int] | None = None

    def merge(self, other: TermStats) -> TermStats:
        if self.mode != other.mode:
            raise ValueError(f"cannot merge term stats in modes {self.mode} and {other.mode}")
        return TermStats(
            mode=self.mode,
            matches=self.matches + other.matches,
            keyword_nsfw=self.keyword_nsfw + other.keyword_nsfw,
            substring_matches=self.substring_matches + other.substring_matches,
            nsfw_flag_counts=_merge_optional_counts(self.nsfw_flag_counts, other.nsfw_flag_counts),
            keyword_nsfw_by_tag=_merge_optional_counts(
                self.keyword_nsfw_by_tag, other.keyword_nsfw_by_tag
            ),
            paper_keyword_nsfw=_sum_optional(self.paper_keyword_nsfw, other.paper_keyword_nsfw),
            paper_keyword_nsfw_by_tag=_merge_optional_counts(
                self.paper_keyword_nsfw_by_tag, other.paper_keyword_nsfw_by_tag
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "matches": self.matches,
            "keyword_nsfw": self.keyword_nsfw,
            "substring_matches": self.substring_matches,
        }
        if self.nsfw_flag_counts is not None:
            out["nsfw_flag_counts"] = dict(self.nsfw_flag_counts)
        if self.keyword_nsfw_by_tag is not None:
            out["keyword_nsfw_by_tag"] = dict(self.keyword_nsfw_by_tag)
        if self.paper_keyword_nsfw is not None:
            out["paper_keyword_nsfw"] = self.paper_keyword_nsfw
        if self.paper_keyword_nsfw_by_tag is not None:
            out["paper_keyword_nsfw_by_tag"] = dict(self.paper_keyword_nsfw_by_tag)
        return out


def _merge_optional_counts(
    a: Mapping[str, int] | None, b: Mapping[str, int] | None
) -> dict[str, int] | None:
    if a is None and b is None:
        return None
    return _add_counts(a or {}, b or {})


def _merge_terms(
    a: Mapping[str, TermStats] | None, b: Mapping[str, TermStats] | None
) -> dict[str, TermStats] | None:
    if a is None:
        return None if b is None else dict(b)
    if b is None:
        return dict(a)
    if list(a) != list(b):
        raise ValueError("cannot merge metrics computed with different lexicons")
    return {term: a[term].merge(b[term]) for term in a}


@dataclass(frozen=True)
class ShardMetrics:
    """Everything the engine computes for a shard; `merge` sums shards into a total.

    A metric is None when a column it needs is missing. `missing_in` counts, per metric name,
    the merged shards that lacked it, so a total can say what was unavailable everywhere.
    """

    rows: int = 0
    shards: int = 1
    nulls: Mapping[str, int] = field(default_factory=dict)
    nsfw_flag_counts: Mapping[str, int] | None = None
    keyword_nsfw_rows: int | None = None
    # The tag x keyword cross-tab: keyword-NSFW rows per tag bucket (None without both).
    keyword_nsfw_by_tag: Mapping[str, int] | None = None
    # Rows flagged by the paper's keyword rule (its 7 substrings in TEXT or URL), whatever the
    # lexicon: the base of report --paper (None without TEXT and URL, or not computed).
    paper_keyword_nsfw_rows: int | None = None
    similarity: SimilarityStats | None = None
    terms: Mapping[str, TermStats] | None = None
    # The second NSFW signal (a score such as punsafe) above its threshold: rows, the
    # keyword-NSFW ones among them, and the cross-tab against the tag (None without it).
    unsafe_rows: int | None = None
    keyword_unsafe_rows: int | None = None
    unsafe_by_tag: Mapping[str, int] | None = None
    domains: DomainSketch | None = None
    # Per configured blocklist (core/blocklist.py); None when no list was checked.
    blocklists: Mapping[str, BlocklistStats] | None = None
    duplicates: Mapping[str, int] = field(default_factory=dict)
    missing_in: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def merge(self, other: ShardMetrics) -> ShardMetrics:
        kw = (
            None
            if self.keyword_nsfw_rows is None and other.keyword_nsfw_rows is None
            else (self.keyword_nsfw_rows or 0) + (other.keyword_nsfw_rows or 0)
        )
        return ShardMetrics(
            rows=self.rows + other.rows,
            shards=self.shards + other.shards,
            nulls=_add_counts(self.nulls, other.nulls),
            nsfw_flag_counts=_merge_optional_counts(self.nsfw_flag_counts, other.nsfw_flag_counts),
            keyword_nsfw_rows=kw,
            keyword_nsfw_by_tag=_merge_optional_counts(
                self.keyword_nsfw_by_tag, other.keyword_nsfw_by_tag
            ),
            paper_keyword_nsfw_rows=_sum_optional(
                self.paper_keyword_nsfw_rows, other.paper_keyword_nsfw_rows
            ),
            similarity=_merge_optional(self.similarity, other.similarity),
            terms=_merge_terms(self.terms, other.terms),
            unsafe_rows=_sum_optional(self.unsafe_rows, other.unsafe_rows),
            keyword_unsafe_rows=_sum_optional(self.keyword_unsafe_rows, other.keyword_unsafe_rows),
            unsafe_by_tag=_merge_optional_counts(self.unsafe_by_tag, other.unsafe_by_tag),
            domains=_merge_optional(self.domains, other.domains),
            blocklists=merge_blocklists(self.blocklists, other.blocklists),
            duplicates=_add_counts(self.duplicates, other.duplicates),
            missing_in=_add_counts(self.missing_in, other.missing_in),
            notes=tuple(dict.fromkeys(self.notes + other.notes)),
        )

    @staticmethod
    def merge_all(items: Iterable[ShardMetrics]) -> ShardMetrics:
        """The exact total of any number of shards (zero shards give an empty total). The
        blocklists' matched entries are united once, not at every step of the fold
        (`merge_all_blocklists`): linear in the entries however many shards match them."""
        shards = list(items)
        if len(shards) <= 1:
            return shards[0] if shards else ShardMetrics(shards=0)
        total = replace(shards[0], blocklists=None)
        for item in shards[1:]:
            total = total.merge(replace(item, blocklists=None))
        return replace(total, blocklists=merge_all_blocklists(s.blocklists for s in shards))

    @property
    def unavailable(self) -> list[str]:
        """Metrics missing from every merged shard."""
        return sorted(m for m, n in self.missing_in.items() if n >= self.shards > 0)

    @property
    def partially_available(self) -> dict[str, int]:
        """Metrics missing from some (not all) merged shards, with how many lacked them."""
        return {m: n for m, n in sorted(self.missing_in.items()) if 0 < n < self.shards}

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of `shardwatch scan --json` (docs/metrics.md)."""
        out: dict[str, Any] = {"rows": self.rows, "nulls": dict(self.nulls)}
        if self.nsfw_flag_counts is not None:
            out["nsfw_flag_counts"] = dict(self.nsfw_flag_counts)
        if self.keyword_nsfw_rows is not None:
            out["keyword_nsfw_rows"] = self.keyword_nsfw_rows
        if self.keyword_nsfw_by_tag is not None:
            out["keyword_nsfw_by_tag"] = dict(self.keyword_nsfw_by_tag)
        if self.paper_keyword_nsfw_rows is not None:
            out["paper_keyword_nsfw_rows"] = self.paper_keyword_nsfw_rows
        if self.similarity is not None:
            out["similarity"] = self.similarity.to_dict()
        if self.terms is not None:
            out["terms"] = {term: stats.to_dict() for term, stats in self.terms.items()}
        if self.unsafe_rows is not None:
            out["unsafe_rows"] = self.unsafe_rows
        if self.keyword_unsafe_rows is not None:
            out["keyword_unsafe_rows"] = self.keyword_unsafe_rows
        if self.unsafe_by_tag is not None:
            out["unsafe_by_tag"] = dict(self.unsafe_by_tag)
        if self.domains is not None:
            out["domains"] = self.domains.to_dict()
        if self.blocklists is not None:
            out["blocklists"] = {name: b.to_dict() for name, b in self.blocklists.items()}
        out["duplicates"] = dict(self.duplicates)
        out["unavailable"] = self.unavailable
        if self.partially_available:
            out["partially_available"] = self.partially_available
        if self.shards != 1:
            out["shards"] = self.shards
        if self.notes:
            out["notes"] = list(self.notes)
        return out
