"""Report: a dataset's total, summed in SQL over the latest done version of each shard URI."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

from sqlalchemy import Connection, Engine, and_, case, func, literal, select
from sqlalchemy.sql.selectable import CTE, Subquery

from shardwatch.core.lexicon import MatchMode
from shardwatch.core.metrics import (
    HIST_BINS,
    Histogram,
    ShardMetrics,
    SimilarityStats,
    TermStats,
)
from shardwatch.core.profiles import BUILTIN_PROFILES, EXTRA_TAG_KEYS, DatasetProfile, tag_keys
from shardwatch.core.stats import Drift, drift, rate_bounds, term_lifts
from shardwatch.store import models as t
from shardwatch.store.database import is_sqlite
from shardwatch.store.report_domains import domain_sketch
from shardwatch.store.repository import ResultStore

ProfileResolver = Callable[[str], DatasetProfile | None]


class ReportError(Exception):
    """The report cannot be made (unknown dataset, or shards that do not add up)."""


class UnknownDataset(ReportError):
    """No dataset of that name is in the store."""

    def __init__(self, dataset: str, known: Sequence[str]) -> None:
        self.dataset = dataset
        self.known = tuple(known)
        listed = ", ".join(repr(k) for k in known) if known else "none yet"
        super().__init__(f"no dataset {dataset!r} in the results store (known: {listed})")


@dataclass(frozen=True)
class ShardEntry:
    """One shard URI in the report: the version counted, or the newest one that is not done."""

    uri: str
    version: int
    status: str
    rows: int | None = None
    reason: str | None = None
    schema_drift: str | None = None  # how its columns differ from the profile, if they do
    # A version that is not done: its last failures, oldest first ({"at", "status", "reason"}).
    history: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uri": self.uri,
            "version": self.version,
            "status": self.status,
            "rows": self.rows,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.schema_drift is not None:
            out["schema_drift"] = self.schema_drift
        if self.history:
            out["history"] = list(self.history)
        return out


@dataclass(frozen=True)
class DatasetReport:
    """A dataset's total over the latest done version of every shard URI, plus its gaps.

    `shards` lists, in URI order, every counted version (status `done`) and every URI whose
    newest version is not done (failed, quarantined, or still pending); such a URI also
    appears with its older done version, which is what the total counts.
    """

    dataset: str
    total: ShardMetrics
    shards: tuple[ShardEntry, ...]
    failed: int
    quarantined: int
    pending: int
    profiles: tuple[str, ...]
    lexicons: tuple[str, ...]
    labels: tuple[str, ...]  # NSFW tag labels in display order, without `other` and `null`
    drifted: int = 0  # counted versions whose columns drifted from their profile

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `shardwatch report --json`."""
        return {
            "dataset": self.dataset,
            "profiles": list(self.profiles),
            "lexicons": list(self.lexicons),
            "shards": [s.to_dict() for s in self.shards],
            "total": self.total.to_dict(),
            "lift": {
                term: {kind: (v.to_dict() if v else None) for kind, v in kinds.items()}
                for term, kinds in term_lifts(self.total).items()
            },
            "failed": self.failed,
            "quarantined": self.quarantined,
            "pending": self.pending,
            "schema_drift": self.drifted,
        }


def _int(value: Any) -> int:
    """SUM over BIGINT is NUMERIC on PostgreSQL (a Decimal in Python)."""
    return 0 if value is None else int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only snapshot for all of the report's queries, so they see the same shards."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            # pysqlite emits no BEGIN before a SELECT: without one each query would see the
            # database as of its own start. In WAL mode a read transaction is a snapshot.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()
    else:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn


def _newest(dataset_id: int, *conditions: Any) -> Subquery:
    """Each URI's versions meeting `conditions`, the most recently seen first (`rank` 1):
    content A -> B -> A makes A current again.

    A window function, not a join on MAX(version): one sort whatever the planner believes
    about the table sizes (a freshly filled, never-analysed PostgreSQL table otherwise gets
    a quadratic nested loop)."""
    rank = func.row_number().over(
        partition_by=t.Shard.uri,
        order_by=(t.Shard.last_seen_at.desc(), t.Shard.version.desc()),
    )
    return (
        select(
            t.Shard.id,
            t.Shard.uri,
            t.Shard.version,
            t.Shard.status,
            t.Shard.reason,
            t.Shard.history,
            rank.label("rank"),
        )
        .where(t.Shard.dataset_id == dataset_id, *conditions)
        .subquery()
    )


def latest_done(dataset_id: int) -> CTE:
    """(id, uri, version) of the current (most recently seen) done version of each URI."""
    ranked = _newest(dataset_id, t.Shard.status == "done")
    return (
        select(ranked.c.id, ranked.c.uri, ranked.c.version)
        .where(ranked.c.rank == 1)
        .cte("latest_done")
    )


def _not_done(conn: Connection, dataset_id: int) -> list[ShardEntry]:
    """The newest version of each URI, where that version is not done."""
    ranked = _newest(dataset_id)
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


def dataset_report(
    source: ResultStore | Engine,
    dataset: str,
    *,
    profiles: ProfileResolver | None = None,
) -> DatasetReport:
    """Sum the latest done version of every shard URI of `dataset`, in SQL.

    `report.total.to_dict()` equals `shardwatch scan --json`'s total over the same files
    (float sums up to rounding). `profiles` resolves the stored profile names, to put the NSFW
    tag labels in their declared order (default: the built-in profiles; unknown labels are
    sorted). Raises UnknownDataset, or ReportError when the shards cannot be added up
    (different similarity thresholds or term lists, as `ShardMetrics.merge` would refuse).
    """
    engine = source.engine if isinstance(source, ResultStore) else source
    resolve = profiles or BUILTIN_PROFILES.get
    with _snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            known = conn.scalars(select(t.Dataset.name).order_by(t.Dataset.name)).all()
            raise UnknownDataset(dataset, known)
        latest = latest_done(dataset_id)
        built = _build(conn, dataset, dataset_id, latest, resolve)
        # The domain sketch only here: dataset_total runs in every shard's commit.
        total = replace(built.total, domains=domain_sketch(conn, latest))
        return replace(built, total=total)


def dataset_total(conn: Connection, dataset_id: int) -> ShardMetrics | None:
    """The exact total over the latest done versions, on `conn` (e.g. inside the
    transaction that just stored a shard, which then counts); None if nothing is done."""
    total = _build(conn, "", dataset_id, latest_done(dataset_id), BUILTIN_PROFILES.get).total
    return total if total.shards else None


@dataclass(frozen=True)
class ShardRates:
    """One current shard's counts behind its NSFW rates (for per-shard charts)."""

    uri: str
    rows: int
    tag_nsfw: int | None  # rows whose tag is the label; None: the shard has no tag column
    keyword_nsfw: int | None


def shard_rates(engine: Engine, dataset: str, label: str = "NSFW") -> list[ShardRates]:
    """Per current done shard of `dataset`: rows, rows tagged `label`, keyword-NSFW rows."""
    with _snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        sm, tc = t.ShardMetricsRow, t.ShardTagCount
        tagged = select(tc.shard_id, tc.count.label("n")).where(tc.label == label).subquery()
        rows = conn.execute(
            select(latest.c.uri, sm.rows, sm.has_nsfw_tag, tagged.c.n, sm.keyword_nsfw_rows)
            .join(sm, sm.shard_id == latest.c.id)
            .outerjoin(tagged, tagged.c.shard_id == latest.c.id)
            .order_by(latest.c.uri)
        ).all()
    return [
        ShardRates(
            r.uri,
            int(r.rows),
            (int(r.n or 0) if r.has_nsfw_tag else None),
            _opt_int(r.keyword_nsfw_rows),
        )
        for r in rows
    ]


def shard_drift(engine: Engine, dataset: str, label: str = "NSFW") -> list[tuple[str, Drift]]:
    """Every current shard of `dataset` against the rest of the dataset (see stats.drift),
    from the stored counts and histograms."""
    with _snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            return []
        latest = latest_done(dataset_id)
        total = _build(conn, dataset, dataset_id, latest, BUILTIN_PROFILES.get).total
        sm = t.ShardMetricsRow
        shards = conn.execute(
            select(latest.c.id, latest.c.uri, sm.rows, sm.keyword_nsfw_rows, sm.has_nsfw_tag)
            .add_columns(sm.similarity_threshold, sm.hist_underflow, sm.hist_overflow)
            .join(sm, sm.shard_id == latest.c.id)
            .order_by(latest.c.uri)
        ).all()
        bins: dict[int, list[int]] = {}
        for shard_id, index, count in conn.execute(
            select(t.SimilarityBin.shard_id, t.SimilarityBin.bin, t.SimilarityBin.count).join(
                latest, latest.c.id == t.SimilarityBin.shard_id
            )
        ):
            bins.setdefault(shard_id, [0] * HIST_BINS)[index] = int(count)
        tags: dict[int, dict[str, int]] = {}
        for shard_id, tag, count in conn.execute(
            select(t.ShardTagCount.shard_id, t.ShardTagCount.label, t.ShardTagCount.count).join(
                latest, latest.c.id == t.ShardTagCount.shard_id
            )
        ):
            tags.setdefault(shard_id, {})[tag] = int(count)
    out = []
    for r in shards:
        sim = None
        if r.similarity_threshold is not None:
            hist = Histogram(
                tuple(bins.get(r.id, [0] * HIST_BINS)),
                _int(r.hist_underflow),
                _int(r.hist_overflow),
            )
            sim = SimilarityStats(threshold=float(r.similarity_threshold), histogram=hist)
        metrics = ShardMetrics(
            rows=int(r.rows),
            nsfw_flag_counts=tags.get(r.id, {}) if r.has_nsfw_tag else None,
            keyword_nsfw_rows=_opt_int(r.keyword_nsfw_rows),
            similarity=sim,
        )
        out.append((r.uri, drift(metrics, total, label)))
    return out


@dataclass(frozen=True)
class DomainRow:
    """One domain summed over a dataset's current shards: lower bounds, and how much more
    each true count can be (the floors of the shards that did not list the domain)."""

    domain: str
    rows: int
    keyword_nsfw: int
    tag_nsfw: int
    rows_error: int
    keyword_error: int
    tag_error: int
    shards: int  # shards that listed it

    @property
    def exact(self) -> bool:
        """Every count of this row is exact (every current shard listed the domain)."""
        return not (self.rows_error or self.keyword_error or self.tag_error)

    def keyword_rate(self) -> tuple[float, float] | None:
        """The keyword-NSFW share of the domain's rows: (low, high) bounds, equal when exact;
        None without rows."""
        return rate_bounds(self.keyword_nsfw, self.keyword_error, self.rows, self.rows_error)


def _bounds(bounds: tuple[float, float] | None) -> dict[str, float] | None:
    return None if bounds is None else {"low": bounds[0], "high": bounds[1]}


@dataclass(frozen=True)
class DomainReport:
    """The domains contributing most NSFW to a dataset, from the stored top-k sketches."""

    dataset: str
    by: str
    shards: int  # current shards with a URL column (a domain sketch)
    rows: int  # their rows
    keyword_nsfw: int  # their keyword-NSFW rows
    tag_nsfw: int  # their tag-NSFW rows (0 without a tag)
    has_tag: bool
    k: int  # the largest top-k used
    floor_rows: int  # an unlisted domain holds at most this many rows (and so on)
    floor_keyword: int
    floor_tag: int
    top: tuple[DomainRow, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["top"] = [
            {**asdict(row), "exact": row.exact, "keyword_rate": _bounds(row.keyword_rate())}
            for row in self.top
        ]
        return out


DOMAIN_ORDER = {"keyword": "keyword_nsfw", "tag": "tag_nsfw", "rows": "rows"}


def domain_report(
    engine: Engine, dataset: str, *, top: int = 20, by: str = "keyword"
) -> DomainReport:
    """The `top` domains of `dataset` by keyword-NSFW rows (or tag-NSFW rows, or rows),
    summed in SQL over the latest done version of every shard (raises UnknownDataset)."""
    if by not in DOMAIN_ORDER:
        raise ReportError(f"unknown domain order {by!r}; use one of {', '.join(DOMAIN_ORDER)}")
    sm, sd = t.ShardMetricsRow, t.ShardDomain
    with _snapshot(engine) as conn:
        dataset_id = conn.scalar(select(t.Dataset.id).where(t.Dataset.name == dataset))
        if dataset_id is None:
            known = conn.scalars(select(t.Dataset.name).order_by(t.Dataset.name)).all()
            raise UnknownDataset(dataset, known)
        latest = latest_done(dataset_id)
        totals = conn.execute(
            select(
                func.count().label("shards"),
                func.sum(sm.rows).label("rows"),
                func.sum(sm.domain_rest_rows).label("rest_rows"),
                func.sum(sm.domain_rest_keyword).label("rest_keyword"),
                func.sum(sm.domain_rest_tag).label("rest_tag"),
                func.sum(sm.domain_floor_rows).label("floor_rows"),
                func.sum(sm.domain_floor_keyword).label("floor_keyword"),
                func.sum(sm.domain_floor_tag).label("floor_tag"),
                func.max(sm.domain_k).label("k"),
                func.max(case((sm.has_nsfw_tag, literal(1)), else_=literal(0))).label("tag"),
            )
            .join(latest, latest.c.id == sm.shard_id)
            .where(sm.domain_k.is_not(None))
        ).one()
        listed = conn.execute(
            select(
                func.sum(sd.rows).label("rows"),
                func.sum(sd.keyword_nsfw).label("keyword"),
                func.sum(sd.tag_nsfw).label("tag"),
            ).join(latest, latest.c.id == sd.shard_id)
        ).one()
        rows_sum = func.sum(sd.rows)
        order = {"rows": rows_sum, "keyword_nsfw": func.sum(sd.keyword_nsfw)}
        order["tag_nsfw"] = func.sum(sd.tag_nsfw)
        first = order[DOMAIN_ORDER[by]]
        found = conn.execute(
            select(
                sd.domain,
                rows_sum.label("rows"),
                func.sum(sd.keyword_nsfw).label("keyword"),
                func.sum(sd.tag_nsfw).label("tag"),
                func.sum(sm.domain_floor_rows).label("floor_rows"),
                func.sum(sm.domain_floor_keyword).label("floor_keyword"),
                func.sum(sm.domain_floor_tag).label("floor_tag"),
                func.count().label("shards"),
            )
            .join(latest, latest.c.id == sd.shard_id)
            .join(sm, sm.shard_id == sd.shard_id)
            .group_by(sd.domain)
            .order_by(first.desc(), rows_sum.desc(), sd.domain)
            .limit(top)
        ).all()
    floor_rows, floor_kw, floor_tag = (
        _int(totals.floor_rows),
        _int(totals.floor_keyword),
        _int(totals.floor_tag),
    )
    return DomainReport(
        dataset=dataset,
        by=by,
        shards=_int(totals.shards),
        rows=_int(listed.rows) + _int(totals.rest_rows),
        keyword_nsfw=_int(listed.keyword) + _int(totals.rest_keyword),
        tag_nsfw=_int(listed.tag) + _int(totals.rest_tag),
        has_tag=bool(totals.tag),
        k=_int(totals.k),
        floor_rows=floor_rows,
        floor_keyword=floor_kw,
        floor_tag=floor_tag,
        top=tuple(
            DomainRow(
                domain=r.domain,
                rows=_int(r.rows),
                keyword_nsfw=_int(r.keyword),
                tag_nsfw=_int(r.tag),
                rows_error=floor_rows - _int(r.floor_rows),
                keyword_error=floor_kw - _int(r.floor_keyword),
                tag_error=floor_tag - _int(r.floor_tag),
                shards=_int(r.shards),
            )
            for r in found
        ),
    )


def _build(
    conn: Connection, dataset: str, dataset_id: int, latest: CTE, resolve: ProfileResolver
) -> DatasetReport:
    sm = t.ShardMetricsRow
    one, zero = literal(1), literal(0)

    def count_true(condition: Any) -> Any:
        return func.sum(case((condition, one), else_=zero))

    scalars = conn.execute(
        select(
            func.count().label("shards"),
            func.sum(sm.rows).label("rows"),
            func.sum(sm.keyword_nsfw_rows).label("keyword_nsfw_rows"),
            func.count(sm.keyword_nsfw_rows).label("with_keyword"),
            func.sum(sm.paper_keyword_nsfw_rows).label("paper_keyword_nsfw_rows"),
            func.count(sm.paper_keyword_nsfw_rows).label("with_paper"),
            count_true(sm.has_nsfw_tag).label("with_tag"),
            count_true(sm.has_terms).label("with_terms"),
            count_true(and_(sm.has_terms, sm.has_nsfw_tag)).label("with_term_tags"),
            func.count(sm.similarity_count).label("with_similarity"),
            func.count(sm.similarity_threshold.distinct()).label("thresholds"),
            func.min(sm.similarity_threshold).label("threshold_lo"),
            func.max(sm.similarity_threshold).label("threshold_hi"),
            func.sum(sm.similarity_count).label("sim_count"),
            func.sum(sm.similarity_null).label("sim_null"),
            func.sum(sm.similarity_below).label("sim_below"),
            func.min(sm.similarity_min).label("sim_min"),
            func.max(sm.similarity_max).label("sim_max"),
            func.sum(sm.similarity_sum).label("sim_sum"),
            func.sum(sm.hist_underflow).label("underflow"),
            func.sum(sm.hist_overflow).label("overflow"),
            func.count(sm.duplicate_ids).label("with_dup_ids"),
            func.sum(sm.duplicate_ids).label("dup_ids"),
            func.count(sm.duplicate_urls).label("with_dup_urls"),
            func.sum(sm.duplicate_urls).label("dup_urls"),
            func.sum(sm.unsafe_rows).label("unsafe_rows"),
            func.sum(sm.keyword_unsafe_rows).label("keyword_unsafe_rows"),
        ).join(latest, latest.c.id == sm.shard_id)
    ).one()

    # Per-shard JSON columns (nulls, unavailable, notes) are merged here, in URI order.
    per_shard = conn.execute(
        select(latest.c.uri, latest.c.version, sm.rows, sm.profile, sm.lexicon)
        .add_columns(sm.nulls, sm.unavailable, sm.notes, t.Shard.schema_drift)
        .join(sm, sm.shard_id == latest.c.id)
        .join(t.Shard, t.Shard.id == latest.c.id)
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

    tag_rows = conn.execute(
        select(
            t.ShardTagCount.label,
            func.sum(t.ShardTagCount.count),
            func.sum(t.ShardTagCount.keyword_nsfw),
            func.count(t.ShardTagCount.keyword_nsfw),
            func.sum(t.ShardTagCount.unsafe),
            func.count(t.ShardTagCount.unsafe),
        )
        .join(latest, latest.c.id == t.ShardTagCount.shard_id)
        .group_by(t.ShardTagCount.label)
    ).all()
    tt = t.TermTagCount
    term_tag_rows = conn.execute(
        select(tt.term, tt.label, func.sum(tt.count))
        .add_columns(func.sum(tt.keyword_nsfw), func.count(tt.keyword_nsfw), func.count())
        .add_columns(func.sum(tt.paper_keyword_nsfw), func.count(tt.paper_keyword_nsfw))
        .join(latest, latest.c.id == tt.shard_id)
        .group_by(tt.term, tt.label)
    ).all()
    labels = _label_order(
        [r[0] for r in tag_rows] + [r[1] for r in term_tag_rows], profile_names, resolve
    )

    n_shards = _int(scalars.shards)
    tags = _ordered({r[0]: _int(r[1]) for r in tag_rows}, labels) if scalars.with_tag else None
    with_crosstab = any(r[3] for r in tag_rows)
    by_tag = _ordered({r[0]: _int(r[2]) for r in tag_rows}, labels) if with_crosstab else None
    with_unsafe = any(r[5] for r in tag_rows)
    unsafe_by_tag = _ordered({r[0]: _int(r[4]) for r in tag_rows}, labels) if with_unsafe else None
    # Per term and label: all matches, keyword-NSFW matches, the paper's figure; a cross-tab
    # is kept only when every stored shard has it (older rows lack the last two).
    term_tags: dict[str, dict[str, int]] = {}
    term_kw_tags: dict[str, dict[str, int]] | None = {}
    term_paper_tags: dict[str, dict[str, int]] | None = {}
    for term, label, count, kw, kw_n, n, paper, paper_n in term_tag_rows:
        term_tags.setdefault(term, {})[label] = _int(count)
        if term_kw_tags is not None:
            term_kw_tags = None if kw_n != n else term_kw_tags
        if term_kw_tags is not None:
            term_kw_tags.setdefault(term, {})[label] = _int(kw)
        if term_paper_tags is not None:
            term_paper_tags = None if paper_n != n else term_paper_tags
        if term_paper_tags is not None:
            term_paper_tags.setdefault(term, {})[label] = _int(paper)
    if len(lexicon_names) > 1 and scalars.with_terms:
        raise ReportError(
            f"the shards were scanned with different lexicons ({', '.join(lexicon_names)}); "
            "re-ingest them with one (shardwatch ingest --force --lexicon NAME), or select "
            "the lexicon they were scanned with"
        )
    terms = _terms(
        conn, latest, scalars, TermTags(term_tags, term_kw_tags, term_paper_tags), labels
    )
    same_paper = scalars.with_paper == scalars.with_keyword
    total = ShardMetrics(
        rows=_int(scalars.rows),
        shards=n_shards,
        nulls=nulls,
        nsfw_flag_counts=tags,
        keyword_nsfw_rows=_opt_int(scalars.keyword_nsfw_rows),
        paper_keyword_nsfw_rows=_opt_int(scalars.paper_keyword_nsfw_rows) if same_paper else None,
        keyword_nsfw_by_tag=by_tag,
        similarity=_similarity(conn, latest, scalars),
        terms=terms,
        unsafe_rows=_opt_int(scalars.unsafe_rows),
        keyword_unsafe_rows=_opt_int(scalars.keyword_unsafe_rows),
        unsafe_by_tag=unsafe_by_tag,
        duplicates={
            **({"id": _int(scalars.dup_ids)} if scalars.with_dup_ids else {}),
            **({"url": _int(scalars.dup_urls)} if scalars.with_dup_urls else {}),
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


def _similarity(conn: Connection, latest: CTE, scalars: Any) -> SimilarityStats | None:
    if not scalars.with_similarity:
        return None
    if scalars.thresholds > 1:
        raise ReportError(
            "the shards were scanned with different similarity thresholds "
            f"({scalars.threshold_lo} to {scalars.threshold_hi}); re-ingest them with one "
            "profile (shardwatch ingest --force)"
        )
    counts = [0] * HIST_BINS
    bins = conn.execute(
        select(t.SimilarityBin.bin, func.sum(t.SimilarityBin.count))
        .join(latest, latest.c.id == t.SimilarityBin.shard_id)
        .group_by(t.SimilarityBin.bin)
    ).all()
    for index, count in bins:
        counts[index] = _int(count)
    return SimilarityStats(
        threshold=float(scalars.threshold_lo),
        count=_int(scalars.sim_count),
        null=_int(scalars.sim_null),
        below_threshold=_int(scalars.sim_below),
        min=_opt_float(scalars.sim_min),
        max=_opt_float(scalars.sim_max),
        sum=float(scalars.sim_sum or 0.0),
        histogram=Histogram(tuple(counts), _int(scalars.underflow), _int(scalars.overflow)),
    )


@dataclass(frozen=True)
class TermTags:
    """Summed per term and label: the tag among all matches, among keyword-NSFW matches and
    among the paper's keyword-flagged substring rows (None: some shard lacks that one)."""

    matches: Mapping[str, Mapping[str, int]]
    keyword: Mapping[str, Mapping[str, int]] | None
    paper: Mapping[str, Mapping[str, int]] | None


def _terms(
    conn: Connection,
    latest: CTE,
    scalars: Any,
    tags: TermTags,
    labels: Sequence[str],
) -> dict[str, TermStats] | None:
    with_terms = _int(scalars.with_terms)
    if not with_terms:
        return None
    tm = t.TermMetricsRow
    position = func.min(tm.position)
    rows = conn.execute(
        select(
            tm.term,
            tm.mode,
            position.label("position"),
            func.max(tm.position).label("last_position"),
            func.count().label("shards"),
            func.sum(tm.matches).label("matches"),
            func.sum(tm.keyword_nsfw).label("keyword_nsfw"),
            func.sum(tm.substring_matches).label("substring_matches"),
            func.sum(tm.paper_keyword_nsfw).label("paper_keyword_nsfw"),
            func.count(tm.paper_keyword_nsfw).label("with_paper"),
        )
        .join(latest, latest.c.id == tm.shard_id)
        .group_by(tm.term, tm.mode)
        .order_by(position, tm.term, tm.mode)
    ).all()
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
            matches=_int(r.matches),
            keyword_nsfw=_int(r.keyword_nsfw),
            substring_matches=_int(r.substring_matches),
            nsfw_flag_counts=tag_map(tags.matches, r.term),
            keyword_nsfw_by_tag=tag_map(tags.keyword, r.term),
            paper_keyword_nsfw=_int(r.paper_keyword_nsfw) if r.with_paper == r.shards else None,
            paper_keyword_nsfw_by_tag=tag_map(tags.paper, r.term),
        )
        for r in rows
    }


__all__ = [
    "DatasetReport",
    "DomainReport",
    "DomainRow",
    "ProfileResolver",
    "ReportError",
    "ShardEntry",
    "ShardRates",
    "UnknownDataset",
    "dataset_report",
    "dataset_total",
    "domain_report",
    "latest_done",
    "shard_drift",
    "shard_rates",
]
