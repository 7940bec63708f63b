"""A dataset's exact total, summed in SQL over the latest done version of each shard URI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Connection, select
from sqlalchemy.sql.selectable import CTE

from shardwatch.core.lexicon import MatchMode
from shardwatch.core.metrics import (
    HIST_BINS,
    Histogram,
    ShardMetrics,
    SimilarityStats,
    TermStats,
)
from shardwatch.core.profiles import BUILTIN_PROFILES, EXTRA_TAG_KEYS, tag_keys
from shardwatch.store import tables as t
from shardwatch.store.aggregates import Aggregates, aggregate
from shardwatch.store.errors import ReportError
from shardwatch.store.report_model import (
    DatasetReport,
    ProfileResolver,
    ShardEntry,
    as_int,
    opt_float,
    opt_int,
)
from shardwatch.store.snapshots import latest_done, newest


def _not_done(conn: Connection, dataset_id: int) -> list[ShardEntry]:
    """The newest version of each URI, where that version is not done."""
    ranked = newest(dataset_id)
    rows = conn.execute(
        select(
            ranked.c.uri, ranked.c.version, ranked.c.status, ranked.c.reason, ranked.c.history
        ).where(ranked.c.rank == 1, ranked.c.status != "done")
    ).all()
    return [
        ShardEntry(
            r.uri,
            r.version,
            r.status,
            reason=r.reason,
            history=tuple(h for h in r.history or () if isinstance(h, dict)),
        )
        for r in rows
    ]


def _label_order(
    labels: Sequence[str], profiles: Sequence[str], resolve: ProfileResolver
) -> list[str]:
    """The stored profiles' labels in their declared order, then any others, then other/null."""
    order: list[str] = []
    for name in profiles:
        profile = resolve(name)
        if profile is not None:
            order += [label for label in profile.nsfw_labels if label not in order]
    present = [label for label in dict.fromkeys(labels) if label not in EXTRA_TAG_KEYS]
    known = [label for label in order if label in present]
    extra = sorted(label for label in present if label not in order)
    return known + extra


def _ordered(counts: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    keys = list(tag_keys(order))
    out = {k: counts[k] for k in keys if k in counts}
    out.update({k: v for k, v in counts.items() if k not in out})
    return out


def dataset_total(
    conn: Connection, dataset_id: int, sums: Aggregates | None = None
) -> ShardMetrics | None:
    """The exact total over the latest done versions, on `conn` (e.g. inside the
    transaction that just stored a shard, which then counts); None if nothing is done.
    `sums`: their aggregates, when just computed on `conn`."""
    latest = latest_done(dataset_id)
    total = build_report(conn, "", dataset_id, latest, BUILTIN_PROFILES.get, sums).total
    return total if total.shards else None


def build_report(
    conn: Connection,
    dataset: str,
    dataset_id: int,
    latest: CTE,
    resolve: ProfileResolver,
    sums: Aggregates | None = None,
) -> DatasetReport:
    """The report over the versions `latest` lists; `sums`: their aggregates, when known
    (store/stored_totals.py), else summed here."""
    sums = sums if sums is not None else aggregate(conn, latest)
    scalars = SimpleNamespace(**sums.scalars)
    sm = t.shard_metrics

    # Per-shard JSON columns (nulls, unavailable, notes) are merged here, in URI order.
    per_shard = conn.execute(
        select(latest.c.uri, latest.c.version, sm.c.rows, sm.c.profile, sm.c.lexicon)
        .add_columns(sm.c.nulls, sm.c.unavailable, sm.c.notes, t.shards.c.schema_drift)
        .join(sm, sm.c.shard_id == latest.c.id)
        .join(t.shards, t.shards.c.id == latest.c.id)
        .order_by(latest.c.uri)
    ).all()
    nulls: dict[str, int] = {}
    missing_in: dict[str, int] = {}
    notes: dict[str, None] = {}
    for row in per_shard:
        for name, n in (row.nulls or {}).items():
            nulls[name] = nulls.get(name, 0) + int(n)
        for name in row.unavailable or []:
            missing_in[name] = missing_in.get(name, 0) + 1
        notes.update(dict.fromkeys(row.notes or []))
    profile_names = tuple(dict.fromkeys(sorted(r.profile for r in per_shard)))
    lexicon_names = tuple(dict.fromkeys(sorted(r.lexicon for r in per_shard)))

    tag_rows, term_tag_rows = sums.tags, sums.term_tags
    labels = _label_order(
        [r[0] for r in tag_rows] + [r[1] for r in term_tag_rows], profile_names, resolve
    )

    n_shards = as_int(scalars.shards)
    tags = _ordered({r[0]: as_int(r[1]) for r in tag_rows}, labels) if scalars.with_tag else None
    with_crosstab = any(r[3] for r in tag_rows)
    by_tag = _ordered({r[0]: as_int(r[2]) for r in tag_rows}, labels) if with_crosstab else None
    with_unsafe = any(r[5] for r in tag_rows)
    unsafe_by_tag = (
        _ordered({r[0]: as_int(r[4]) for r in tag_rows}, labels) if with_unsafe else None
    )
    # Per term and label: all matches, keyword-NSFW matches, the paper's figure; a cross-tab
    # is kept only when every stored shard has it (older rows lack the last two).
    term_tags: dict[str, dict[str, int]] = {}
    term_kw_tags: dict[str, dict[str, int]] | None = {}
    term_paper_tags: dict[str, dict[str, int]] | None = {}
    for term, label, count, kw, kw_n, n, paper, paper_n in term_tag_rows:
        term_tags.setdefault(term, {})[label] = as_int(count)
        if term_kw_tags is not None:
            term_kw_tags = None if kw_n != n else term_kw_tags
        if term_kw_tags is not None:
            term_kw_tags.setdefault(term, {})[label] = as_int(kw)
        if term_paper_tags is not None:
            term_paper_tags = None if paper_n != n else term_paper_tags
        if term_paper_tags is not None:
            term_paper_tags.setdefault(term, {})[label] = as_int(paper)
    if len(lexicon_names) > 1 and scalars.with_terms:
        raise ReportError(
            f"the shards were scanned with different lexicons ({', '.join(lexicon_names)}); "
            "re-ingest them with one (shardwatch ingest --force --lexicon NAME), or select "
            "the lexicon they were scanned with"
        )
    terms = _terms(sums.terms, scalars, TermTags(term_tags, term_kw_tags, term_paper_tags), labels)
    same_paper = scalars.with_paper == scalars.with_keyword
    total = ShardMetrics(
        rows=as_int(scalars.rows),
        shards=n_shards,
        nulls=nulls,
        nsfw_flag_counts=tags,
        keyword_nsfw_rows=opt_int(scalars.keyword_nsfw_rows),
        paper_keyword_nsfw_rows=opt_int(scalars.paper_keyword_nsfw_rows) if same_paper else None,
        keyword_nsfw_by_tag=by_tag,
        similarity=_similarity(sums.bins, scalars),
        terms=terms,
        unsafe_rows=opt_int(scalars.unsafe_rows),
        keyword_unsafe_rows=opt_int(scalars.keyword_unsafe_rows),
        unsafe_by_tag=unsafe_by_tag,
        duplicates={
            **({"id": as_int(scalars.dup_ids)} if scalars.with_dup_ids else {}),
            **({"url": as_int(scalars.dup_urls)} if scalars.with_dup_urls else {}),
        },
        missing_in=missing_in,
        notes=tuple(notes),
    )

    entries = [
        ShardEntry(r.uri, r.version, "done", rows=int(r.rows), schema_drift=_drift_text(r))
        for r in per_shard
    ]
    not_done = _not_done(conn, dataset_id)
    entries = sorted(entries + not_done, key=lambda e: (e.uri, e.version))
    statuses = [e.status for e in not_done]
    return DatasetReport(
        dataset=dataset,
        total=total,
        shards=tuple(entries),
        failed=statuses.count("failed"),
        quarantined=statuses.count("quarantined"),
        pending=len(statuses) - statuses.count("failed") - statuses.count("quarantined"),
        profiles=profile_names,
        lexicons=lexicon_names,
        labels=tuple(labels),
        drifted=sum(1 for e in entries if e.schema_drift is not None),
    )


def _drift_text(row: Any) -> str | None:
    """The stored schema drift's one-line summary (None: the columns matched)."""
    drift = row.schema_drift
    if not drift:
        return None
    return str(drift.get("summary") or "columns differ from the profile")


def _similarity(bins: list[list[Any]], scalars: Any) -> SimilarityStats | None:
    if not scalars.with_similarity:
        return None
    if scalars.thresholds > 1:
        raise ReportError(
            "the shards were scanned with different similarity thresholds "
            f"({scalars.threshold_lo} to {scalars.threshold_hi}); re-ingest them with one "
            "profile (shardwatch ingest --force)"
        )
    counts = [0] * HIST_BINS
    for index, count in bins:
        counts[index] = as_int(count)
    return SimilarityStats(
        threshold=float(scalars.threshold_lo),
        count=as_int(scalars.sim_count),
        null=as_int(scalars.sim_null),
        below_threshold=as_int(scalars.sim_below),
        min=opt_float(scalars.sim_min),
        max=opt_float(scalars.sim_max),
        sum=float(scalars.sim_sum or 0.0),
        histogram=Histogram(tuple(counts), as_int(scalars.underflow), as_int(scalars.overflow)),
    )


@dataclass(frozen=True)
class TermTags:
    """Summed per term and label: the tag among all matches, among keyword-NSFW matches and
    among the paper's keyword-flagged substring rows (None: some shard lacks that one)."""

    matches: Mapping[str, Mapping[str, int]]
    keyword: Mapping[str, Mapping[str, int]] | None
    paper: Mapping[str, Mapping[str, int]] | None


def _terms(
    term_rows: list[dict[str, Any]],
    scalars: Any,
    tags: TermTags,
    labels: Sequence[str],
) -> dict[str, TermStats] | None:
    with_terms = as_int(scalars.with_terms)
    if not with_terms:
        return None
    rows = [SimpleNamespace(**r) for r in term_rows]
    # The same refusal as ShardMetrics.merge: every shard with terms has the same term list.
    names = [r.term for r in rows]
    if (
        len(set(names)) != len(names)
        or any(r.shards != with_terms or r.position != r.last_position for r in rows)
        or [r.position for r in rows] != list(range(len(rows)))
    ):
        raise ReportError(
            "the shards were scanned with different lexicons (term lists or modes differ); "
            "re-ingest them with one lexicon (shardwatch ingest --force)"
        )
    with_tags = bool(scalars.with_term_tags)

    def tag_map(source: Mapping[str, Mapping[str, int]] | None, term: str) -> Any:
        if not with_tags or source is None:
            return None
        return _ordered(source.get(term, {}), labels)

    return {
        r.term: TermStats(
            mode=cast(MatchMode, r.mode),
            matches=as_int(r.matches),
            keyword_nsfw=as_int(r.keyword_nsfw),
            substring_matches=as_int(r.substring_matches),
            nsfw_flag_counts=tag_map(tags.matches, r.term),
            keyword_nsfw_by_tag=tag_map(tags.keyword, r.term),
            paper_keyword_nsfw=as_int(r.paper_keyword_nsfw) if r.with_paper == r.shards else None,
            paper_keyword_nsfw_by_tag=tag_map(tags.paper, r.term),
        )
        for r in rows
    }
